"""Every exception the Spaces client raises, in one place.

SpacesError
├── SpacesUnavailable       no usable answer: says nothing about the session
└── SpacesAPIError          Spaces answered with a non-success code
    └── CaptchaRequired     00001 / 00004 with a picture to solve

Messages carry only the method, the reason or code and the HTTP status: never a SID,
CK, cookie, password or response body.
"""

from __future__ import annotations

from typing import Literal, get_args

from bot.spaces import codes

UnavailableReason = Literal["timeout", "network", "http_status", "not_json", "bad_answer"]
UNAVAILABLE_REASONS: frozenset[str] = frozenset(get_args(UnavailableReason))


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
    ) -> None:
        normalized = codes.normalize_code(code)
        if normalized is None:
            raise ValueError(f"not a Spaces code: {code!r}")
        self.code = normalized
        if name is None:
            info = codes.describe(normalized)
            name = info.name if info is not None else None
        self.name = name
        self.method = method
        super().__init__(normalized)

    @property
    def is_session_gone(self) -> bool:
        return self.code in codes.SESSION_GONE_CODES

    @property
    def is_rate_limited(self) -> bool:
        return self.code == codes.OFTEN_OPERATION

    def __str__(self) -> str:
        text = f"Spaces answered {self.code}"
        if self.name:
            text += f" {self.name}"
        if self.method:
            text += f" to {self.method}"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, name={self.name!r})"


class CaptchaRequired(SpacesAPIError):
    """Login needs a captcha answer: fetch `captcha_url`, ask the user, log in with `code`."""

    def __init__(
        self,
        code: str | int,
        captcha_url: str,
        *,
        name: str | None = None,
        method: str | None = None,
    ) -> None:
        super().__init__(code, name=name, method=method)
        if self.code not in codes.CAPTCHA_CODES:
            raise ValueError(f"not a captcha code: {self.code}")
        # Kept out of str()/repr(): it is data from Spaces and could carry a query string.
        self.captcha_url = captcha_url

    @property
    def wrong_answer(self) -> bool:
        """True when Spaces rejected the previous answer (00004)."""
        return self.code == codes.WRONG_CAPTCHA
