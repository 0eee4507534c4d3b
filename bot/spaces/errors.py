"""Every exception the Spaces client raises, in one place.

SpacesError
├── SpacesUnavailable       no usable answer: says nothing about the session
└── SpacesAPIError          Spaces answered with a non-success code
    └── CaptchaRequired     00001 / 00004 (or 01006 sub-code 8) with a picture to solve

Messages carry only the method, the reason or code and the HTTP status: never a SID,
CK, cookie, password or response body. Spaces' own words about an error (`server_text`) ride
on the error for people to read, never in its message.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Literal, get_args

from bot.spaces import codes
from bot.spaces.cookies import LoginCookies

UnavailableReason = Literal["timeout", "network", "http_status", "not_json", "bad_answer"]
UNAVAILABLE_REASONS: frozenset[str] = frozenset(get_args(UnavailableReason))

# Spaces' own explanations are a line or two; a longer text is cut so it cannot flood a chat
# (Telegram's limit is 4096 characters for the whole message).
SERVER_TEXT_MAX_CHARS = 300
_WHITESPACE = re.compile(r"\s+")
# Control, format (bidi overrides, zero-width), surrogate and private-use characters.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co"})


def clean_server_text(value: object) -> str | None:
    """Spaces' own words as plain text to show a person, or None when there are none.

    The site renders them as HTML, so entities are decoded here (the one who shows the text
    escapes it again); line breaks and runs of spaces become one space, invisible and control
    characters go, and a text over SERVER_TEXT_MAX_CHARS is cut with an ellipsis."""
    if not isinstance(value, str):
        return None
    # A margin over the cap for entities and spaces; a megabyte of text is not worth reading.
    text = _WHITESPACE.sub(" ", html.unescape(value[: SERVER_TEXT_MAX_CHARS * 8]))
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _INVISIBLE).strip()
    if len(text) > SERVER_TEXT_MAX_CHARS:
        text = text[: SERVER_TEXT_MAX_CHARS - 1].rstrip() + "\u2026"
    return text or None


class SpacesError(Exception):
    """Base class of every error raised by the Spaces client."""


class SpacesUnavailable(SpacesError):
    """Spaces could not be asked, or gave no usable answer."""

    def __init__(
        self,
        reason: UnavailableReason,
        status: int | None = None,
        *,
        method: str | None = None,
    ) -> None:
        if reason not in UNAVAILABLE_REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        self.reason: UnavailableReason = reason
        self.status = status
        self.method = method
        super().__init__(reason, status)

    def __str__(self) -> str:
        text = f"Spaces unavailable: {self.reason}"
        if self.status is not None:
            text += f" (HTTP {self.status})"
        if self.method:
            text += f" in {self.method}"
        return text

    def __repr__(self) -> str:
        return f"SpacesUnavailable(reason={self.reason!r}, status={self.status!r})"


class SpacesAPIError(SpacesError):
    """Spaces answered with a code other than 00000."""

    def __init__(
        self,
        code: str | int,
        *,
        name: str | None = None,
        method: str | None = None,
        server_text: object = None,
        auth_error: int | None = None,
    ) -> None:
        normalized = codes.normalize_code(code)
        if normalized is None:
            raise ValueError(f"not a Spaces code: {code!r}")
        self.code = normalized
        # 01006's sub-code (the answer's `auth_errror`, sic): what exactly went wrong.
        self.auth_error = auth_error if normalized == codes.AUTH_ERROR else None
        if name is None:
            info = codes.describe(normalized)
            name = info.name if info is not None else None
        self.name = name
        self.method = method
        # Kept out of str()/repr() and so out of logs: the answer's words, maybe personal.
        self.server_text = clean_server_text(server_text)
        super().__init__(normalized)

    @property
    def is_session_gone(self) -> bool:
        return self.code in codes.SESSION_GONE_CODES or self.session_replaced

    @property
    def session_replaced(self) -> bool:
        """01006 sub-code 1: another sign-in took this session's place; it has ended."""
        return self.auth_error == codes.AUTH_DUPLICATE_SESSION

    @property
    def is_rate_limited(self) -> bool:
        return self.code == codes.OFTEN_OPERATION or self.auth_error == codes.AUTH_TOO_FAST

    def __str__(self) -> str:
        text = f"Spaces answered {self.code}"
        if self.name:
            text += f" {self.name}"
        if self.auth_error is not None:
            text += f" (auth error {self.auth_error})"
        if self.method:
            text += f" to {self.method}"
        return text

    def __repr__(self) -> str:
        extra = "" if self.auth_error is None else f", auth_error={self.auth_error!r}"
        return f"{type(self).__name__}(code={self.code!r}, name={self.name!r}{extra})"


class CaptchaRequired(SpacesAPIError):
    """Login needs a captcha answer: fetch `captcha_url`, ask the user, log in with `code`."""

    def __init__(
        self,
        code: str | int,
        captcha_url: str,
        *,
        name: str | None = None,
        method: str | None = None,
        server_text: object = None,
        auth_error: int | None = None,
        cookies: LoginCookies | None = None,
    ) -> None:
        super().__init__(
            code, name=name, method=method, server_text=server_text, auth_error=auth_error
        )
        if self.code not in codes.CAPTCHA_CODES and self.auth_error != codes.AUTH_NEED_CAPTCHA:
            raise ValueError(f"not a captcha code: {self.code}")
        # Kept out of str()/repr(): it is data from Spaces and could carry a query string.
        self.captcha_url = captcha_url
        # What this login attempt must send back with the answer (and the picture request).
        self.cookies = cookies or LoginCookies()

    @property
    def wrong_answer(self) -> bool:
        """True when Spaces rejected the previous answer (00004)."""
        return self.code == codes.WRONG_CAPTCHA
