"""The sendspace API's error codes, as the doc's "Errors" table lists them.

Each code has a sentence in bot/locales/*/LC_MESSAGES/sendspace_codes.po under
``sendspace-code-<number>``; a code outside the table is told with its number.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from bot.remote import RefusalReason, Sentence

SESSION_BAD: Final = 6  # "Session expired or not found"
SESSION_NOT_AUTH: Final = 7  # "Session not authenticated"
AUTHENTICATION_FAILURE: Final = 8  # wrong user name or password
SYSTEM_MAINTENANCE: Final = 15

# Only these end a session: anything else on auth.checkSession says nothing about it.
SESSION_GONE_CODES: Final = frozenset({SESSION_BAD, SESSION_NOT_AUTH})

CODES: Final[Mapping[int, str]] = MappingProxyType(
    {
        1: "API_ERROR_NO_METHOD",
        2: "API_ERROR_UNKNOWN_METHOD",
        3: "API_ERROR_SESSION_KEY_MISSING",
        4: "API_ERROR_PARAMETER_MISSING",
        5: "API_ERROR_BAD_API_VERSION",
        6: "API_ERROR_SESSION_BAD",
        7: "API_ERROR_SESSION_NOT_AUTH",
        8: "API_ERROR_AUTHENTICATION_FAILURE",
        9: "API_ERROR_FILE_NOT_FOUND",
        10: "API_ERROR_FOLDER_NOT_FOUND",
        11: "API_ERROR_PERMISSION_DENIED",
        12: "API_ERROR_DOWNLOAD_TEMP_ERROR",
        13: "API_ERROR_UPLOAD_TEMP_ERROR",
        14: "API_ERROR_FOLDER_NOT_EMPTY",
        15: "API_ERROR_SYSTEM_MAINTENANCE",
        16: "API_ERROR_INVALID_PARAMETER",
        17: "API_ERROR_HTTPS_FORBIDDEN",
        18: "API_ERROR_UNKNOWN_API_KEY",
        19: "API_ERROR_PRO_EXPIRED",
        20: "API_ERROR_PRO_DISKSPACE_LIMIT",
        21: "API_ERROR_PARAMETER_BAD_VALUE",
        22: "API_ERROR_BAD_PASSWORD",
        23: "API_ERROR_BANDWIDTH_LIMIT",
        24: "API_ERROR_INVALID_EMAIL",
        25: "API_ERROR_OUTDATED_VERSION",
        26: "API_ERROR_INVALID_FILE_URL",
        27: "API_ERROR_REGISTRATION_ERROR",
        28: "API_ERROR_CONTACT_EXISTS",
        29: "API_ERROR_CONTACT_NOT_EXISTS",
        30: "API_ERROR_TOO_MANY_SESSIONS",
        31: "API_ERROR_BAD_TARGET_FOLDER",
        32: "API_ERROR_CONTACTS_LIMIT",
        33: "API_ERROR_FOLDER_IS_PRIVATE",
    }
)

# What a refused login means for the bot; codes not listed are plain refusals.
_LOGIN_REFUSALS: Final[Mapping[int, RefusalReason]] = MappingProxyType(
    {
        AUTHENTICATION_FAILURE: RefusalReason.BAD_CREDENTIALS,
        # The bot's request or setup is wrong: its owner has to act, not the person.
        1: RefusalReason.MISCONFIGURED,
        2: RefusalReason.MISCONFIGURED,
        3: RefusalReason.MISCONFIGURED,
        4: RefusalReason.MISCONFIGURED,
        5: RefusalReason.MISCONFIGURED,
        16: RefusalReason.MISCONFIGURED,
        17: RefusalReason.MISCONFIGURED,
        18: RefusalReason.MISCONFIGURED,
        21: RefusalReason.MISCONFIGURED,
        25: RefusalReason.MISCONFIGURED,
    }
)


def name_of(code: int) -> str | None:
    return CODES.get(code)


def login_refusal(code: int) -> RefusalReason:
    return _LOGIN_REFUSALS.get(code, RefusalReason.REFUSED)


def sentence(code: int) -> Sentence:
    """What a person reads for `code`."""
    if code in CODES:
        return Sentence(f"sendspace-code-{code}")
    return Sentence("sendspace-code-unknown", {"code": code})
