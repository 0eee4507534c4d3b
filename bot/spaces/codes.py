"""The catalogue of Spaces response codes: the published neoapi doc plus the site's own client.

The doc lists 152 codes; the site's web client (spaces-dev/spaces-tracker,
spaces/JS/spacesLib.js, object `Codes`) knows 19 more, marked below. Names repeat across
sections with different numbers (ERR_SPAM_CONTROL is 00030, 02003 and 15003), so everything
is keyed by the 5-digit code string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

SUCCESS: Final = "00000"
NEED_CAPTCHA: Final = "00001"
UNKNOWN_METHOD: Final = "00002"
USER_NOT_FOUND: Final = "00003"
WRONG_CAPTCHA: Final = "00004"
OFTEN_OPERATION: Final = "00007"
AUTH_REQUIRED: Final = "01001"
EMPTY_LOGIN_OR_PASSWORD: Final = "01002"
WRONG_LOGIN_OR_PASSWORD: Final = "01003"
SESSION_NOT_FOUND: Final = "01004"
USER_MODEL_NOT_CONSTRUCTED: Final = "01005"
AUTH_ERROR: Final = "01006"
ALREADY_LOGGED_IN: Final = "01007"

# 01006's sub-codes (`auth_errror`, sic), as the site's own client names them.
AUTH_DUPLICATE_SESSION: Final = 1
AUTH_INVALID_COOKIE: Final = 2
AUTH_TOO_FAST: Final = 3
AUTH_ACCOUNT_BLOCKED: Final = 4
AUTH_XSRF: Final = 5
AUTH_DUPLICATE_REQUEST: Final = 6
AUTH_PHONE_DIGITS: Final = 7
AUTH_NEED_CAPTCHA: Final = 8
AUTH_ERROR_SUBCODES: Final = frozenset(range(1, 9))

# 01001 is what clients actually see for an expired/unknown SID; 01004/01005 are documented.
SESSION_GONE_CODES: Final = frozenset(
    {AUTH_REQUIRED, SESSION_NOT_FOUND, USER_MODEL_NOT_CONSTRUCTED}
)
CAPTCHA_CODES: Final = frozenset({NEED_CAPTCHA, WRONG_CAPTCHA})


@dataclass(frozen=True, slots=True)
class CodeInfo:
    code: str
    name: str
    section: str


# Section by section as in the doc's "Response Codes" tables; "site" marks a code only the
# site's own client knows. 02004 is in the doc but no longer in the site's `Codes`.
_TABLE: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "common": (
        ("00000", "SUCCESS"),
        ("00001", "ERR_NEED_CAPTCHA"),
        ("00002", "ERR_UNKNOWN_METHOD"),
        ("00003", "ERR_USER_NOT_FOUND"),
        ("00004", "ERR_WRONG_CAPTCHA_CODE"),
        ("00005", "ERR_EMPTY_MESSAGE"),
        ("00006", "ERR_UNKNOWN_ERROR"),
        ("00007", "ERR_OFTEN_OPERATION"),
        ("00008", "ERR_WRONG_CK"),
        ("00009", "ERR_SMS_NOT_SEND"),
        ("00010", "ERR_UNKNOWN_ERROR_PLEASE_RETRY"),
        ("00011", "ERR_FORBIDDEN"),
        ("00012", "ERR_BAD_REQUEST"),
        ("00013", "ERR_NEED_CONFIRM_ACTION"),
        ("00014", "ERR_USER_IN_YOUR_BLACKLIST"),
        ("00015", "ERR_YOU_IN_USER_BLACKLIST"),
        ("00016", "ERR_MESSAGE_TOO_LONG"),
        ("00017", "ERR_MESSAGE_WITH_UNPAID_STICKERS"),
        ("00018", "ERR_GCM"),
        ("00019", "ERR_USER_ACT_PHONE_NOT_FOUND"),
        ("00020", "ERR_OBJECT_NOT_FOUND"),
        ("00021", "ERR_USER_IS_OWNER"),
        ("00022", "ERR_COMM_NOT_FOUND"),
        ("00023", "ERR_WRONG_EMAIL"),
        ("00024", "ERR_WRONG_PHONE"),
        ("00025", "ERR_USER_IS_BLOCKED"),
        ("00026", "ERR_USER_IS_FROZEN"),
        ("00027", "ERR_APP_NOT_FOUND"),
        ("00028", "ERR_WML"),
        ("00029", "ERR_ADULT_CONTENT"),
        ("00030", "ERR_SPAM_CONTROL"),
        ("00031", "ERR_WRONG_OWNER"),
        ("00032", "ERR_NOT_ENOUGH_KARMA"),
        ("00033", "ERR_SMALL_RATE"),
        ("00034", "ERR_URL_NOT_FOUND"),
        ("00035", "ERR_YOU_ARE_BANNED"),
        ("00036", "ERR_OBJECT_BLOCKED"),  # site
        ("00037", "ERR_ALREADY_DONE"),  # site
    ),
    "auth": (
        ("01001", "ERR_AUTH_REQUIRED"),
        ("01002", "ERR_EMPTY_LOGIN_OR_PASSWORD"),
        ("01003", "ERR_WRONG_LOGIN_OR_PASSWORD"),
        ("01004", "ERR_SESSION_NOT_FOUND"),
        ("01005", "ERR_USER_MODEL_NOT_CONSTRUCTED"),
        ("01006", "ERR_AUTH_ERROR"),
        ("01007", "ERR_ALREADY_LOGGED_IN"),
        ("01008", "ERR_ACTIVATION_REQUIRED"),
        ("01009", "ERR_ACCOUNT_UNFREEZE"),  # site
    ),
    "mail": (
        ("02001", "ERR_CONTACT_NOT_FOUND"),
        ("02002", "ERR_MESSAGE_ERROR"),
        ("02003", "ERR_SPAM_CONTROL"),
        ("02004", "ERR_ADMIN_SEND_DENIED"),
        ("02005", "ERR_GARBAGE_IS_CLEARING"),
        ("02006", "ERR_CONTACT_IS_SWAPPING"),
        ("02007", "ERR_MESSAGE_NOT_FOUND"),
        ("02008", "ERR_WRONG_EMAIL_FORMAT"),
        ("02009", "ERR_MESSAGE_SEND_DENIED"),
        ("02010", "ERR_DUP_MESSAGE"),
        ("02011", "ERR_WRONG_PHONE_FORMAT"),
        ("02012", "ERR_TOO_LARGE_ATTACHES_WEIGHT"),
        ("02013", "ERR_SPAMING_INNER_CONTACT"),
        ("02014", "ERR_TALK_NOT_FOUND"),
        ("02015", "ERR_TALK_MEMBER_NOT_FOUND"),  # site
    ),
    "reg": (
        ("03001", "ERR_WRONG_CONTACT"),
        ("03002", "ERR_CONTACT_ALREADY_USED"),
        ("03003", "ERR_CONTACT_ALREADY_REGISTERED"),
        ("03004", "ERR_IP_LIMIT_EXCEEDED"),
        ("03005", "ERR_DOMAIN_LIMIT_EXCEEDED"),  # site
        ("03006", "ERR_ACTIVATION_NOT_FOUND"),  # site
        ("03007", "ERR_RESTORE_TYPE_REQUIRED"),  # site
        ("03008", "ERR_WRONG_CODE"),  # site
    ),
    "friends": (
        ("04001", "ERR_HIS_LIMIT_EXCEEDED"),
        ("04002", "ERR_YOUR_LIMIT_EXCEEDED"),
        ("04003", "ERR_OFFER_EXISTS"),
        ("04004", "ERR_ALREADY_FRIENDS"),
        ("04005", "ERR_OFFER_BLOCKED"),
        ("04006", "ERR_FRIEND_NOT_FOUND"),
        ("04007", "ERR_PENDING_NOT_FOUND"),
        ("04008", "ERR_FROM"),
        ("04009", "ERR_EMAIL_USED"),
        ("04010", "ERR_INVITE_EXISTS"),
        ("04011", "ERR_OFFER_RESTRICTED"),  # site
        ("04012", "ERR_SYNC_DECLINED"),  # site
        ("04013", "ERR_SYNC_NOT_EXIST"),  # site
    ),
    "chat": (
        ("05001", "ERR_ATTACH_SEND_DENIED"),
        ("05002", "ERR_ROOM_NOT_FOUND"),
        ("05003", "ERR_CONTACT_DENIED"),
        ("05004", "ERR_BANNED"),
        ("05005", "ERR_NEWBIE"),
        ("05006", "ERR_FORBIDDEN"),
        ("05007", "ERR_SHUTUP"),
        ("05008", "ERR_MESSAGE_PARAMS"),
        ("05009", "ERR_SPAM"),
        ("05010", "ERR_DUP_MESSAGE"),
        ("05011", "ERR_COMPLAIN"),
        ("05012", "ERR_MESSAGE_NOT_FOUND"),
        ("05013", "ERR_USER_ISNT_FRIEND"),
        ("05014", "ERR_SMILES_LIMIT_EXCEED"),  # site
    ),
    "forum": (
        ("06001", "ERR_COMMENT_NOT_FOUND"),
        ("06002", "ERR_TOPIC_NOT_FOUND"),
        ("06003", "ERR_FORUM_NOT_FOUND"),
        ("06004", "ERR_FORUM_IN_GARBAGE"),
        ("06005", "ERR_NEED_RULE_READ"),  # site
    ),
    "trash": (
        ("07001", "ERR_OBJ_DELETED"),
        ("07002", "ERR_OBJ_RESTORED"),
    ),
    "voting": (
        ("08001", "ERR_VOTE_NOT_FOUND"),
        ("08002", "ERR_CANT_DISLIKE"),  # site
    ),
    "files": (
        ("09001", "ERR_DIR_ACCESS_DENIED"),
        ("09002", "ERR_FILE_NOT_FOUND"),
        ("09003", "ERR_RESOLUTION_NOT_AVAILABLE"),
        ("09004", "ERR_WRONG_SIZE"),
        ("09005", "ERR_BAD_VIDEO_CONVERTER_KEY"),
        ("09006", "ERR_UPLOAD_ERROR"),
        ("09007", "ERR_FILE_IS_BLOCKED"),  # site
        ("09008", "ERR_WRONG_TYPE"),
        ("09009", "ERR_DIR_NOT_FOUND"),
        ("09010", "ERR_WRONG_TEMP_ID"),
        ("09011", "ERR_STRANGER_FILE"),
        ("09012", "ERR_EDIT"),
        ("09013", "ERR_CANT_LOAD_PIC"),
        ("09014", "ERR_CANT_LOAD_LINK"),  # site
        ("09015", "ERR_COLLECTION_NOT_FOUND"),
        ("09016", "ERR_YOUR_FILE"),
        ("09017", "ERR_YOUR_COLLECTION"),
        ("09018", "ERR_NOT_CONVERTED"),  # site
    ),
    "search": (("10001", "ERR_BAD_QUERY"),),
    "lenta": (
        ("11001", "ERR_SUBSCR_NOT_FOUND"),
        ("11002", "ERR_AUTHOR_IS_PRIVATE_GROUP"),
        ("11003", "ERR_SUBSCR_ALREADY_EXISTS"),
    ),
    "gifts": (("12001", "ERR_GIFT_NOT_FOUND"),),
    "services": (
        ("13001", "ERR_COUNTRY_NOT_FOUND"),
        ("13002", "ERR_REGION_NOT_FOUND"),
        ("13003", "ERR_CITY_NOT_FOUND"),
        ("13004", "ERR_UNIVERSITY_NOT_FOUND"),
        ("13005", "ERR_FACULTY_NOT_FOUND"),
        ("13006", "ERR_MOBILE_BRAND_NOT_FOUND"),
        ("13007", "ERR_GHOST_NOT_FOUND"),
        ("13008", "ERR_GHOST_UNCHANGED"),
        ("13009", "ERR_NOT_ENOUGH_MONEY"),  # site
    ),
    "complaints": (
        ("14001", "ERR_WRONG_TYPE"),
        ("14002", "ERR_WRONG_REASON"),
        ("14003", "ERR_COMPLAIN_DENIED"),
        ("14004", "ERR_COMPLAINTS_EXIST"),
        ("14005", "ERR_TIME_EXCEED"),
        ("14006", "ERR_CNT_EXCEED"),
    ),
    "blacklist": (
        ("15001", "ERR_WRONG_TYPE"),
        ("15002", "ERR_OBJECT_NOT_FOUND"),
        ("15003", "ERR_SPAM_CONTROL"),
    ),
    "polls": (
        ("16001", "ERR_POLL_EXIST"),
        ("16002", "ERR_ACCESS_DENIED"),
        ("16003", "ERR_WRONG_OWNER"),
        ("16004", "ERR_WRONG_END_TIME"),
        ("16005", "ERR_WRONG_VARIANT"),
        ("16006", "ERR_VARIANTS_CNT"),
        ("16007", "ERR_POLL_ISNT_VALIDATE"),
        ("16008", "ERR_POLL_NOT_FOUND"),
        ("16009", "ERR_SMALL_RATE"),
        ("16010", "ALREADY_VOTED"),
        ("16011", "ERR_VOTING"),
    ),
    "attaches": (
        ("17001", "ERR_ATTACH_NOT_FOUND"),
        ("17002", "ERR_TYPE_ISNT_SUPPORTED"),
        ("17003", "ERR_PARENT_NOT_FOUND"),
        ("17004", "ERR_ATTACH_ALREADY_EXIST"),
        ("17005", "ERR_WRONG_OWNER"),
        ("17006", "ERR_MAX_COUNT"),
        ("17007", "ERR_CHECK_ATTACH"),
    ),
    "comm": (
        ("18001", "ERR_BLOCKED"),
        ("18002", "ERR_ACCESS_DENIED"),
    ),
    "comments": (
        ("19001", "ERR_INVALID"),
        ("19002", "ERR_NOT_FOUND"),
        ("19003", "ERR_EDIT_TIME"),
    ),
    "journal": (("20001", "ERR_RECORD_NOT_FOUND"),),  # site
}

CODES: Final[Mapping[str, CodeInfo]] = MappingProxyType(
    {
        code: CodeInfo(code=code, name=name, section=section)
        for section, rows in _TABLE.items()
        for code, name in rows
    }
)

SECTIONS: Final[tuple[str, ...]] = tuple(_TABLE)


def normalize_code(value: object) -> str | None:
    """Return `value` as the 5-digit code string, or None when it is not a code.

    The doc calls `code` an int while the site sends zero-padded strings; accept both.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 5:
        return None
    return text.zfill(5)


def describe(code: str) -> CodeInfo | None:
    """The catalogue entry for `code` (an int-like string is normalised first)."""
    normalized = normalize_code(code)
    return CODES.get(normalized) if normalized is not None else None
