"""Every exception the sendspace client raises, in one place.

SendspaceError
├── SendspaceUnavailable    no usable answer (reason: a TransientReason): says nothing
│                           about the session
└── SendspaceAPIError       sendspace answered status="fail" with an error code

Messages carry only the method, the reason or code and the HTTP status: never the API key,
a token, a session key, a password or a response body.
"""

from __future__ import annotations

from typing import Final

from bot.remote import Sentence, TransientReason
from bot.sendspace import codes

# The reasons this client raises; the others of TransientReason belong to other layers.
UNAVAILABLE_REASONS: Final = frozenset(
    {
        TransientReason.TIMEOUT,
        TransientReason.NETWORK,
        TransientReason.HTTP_STATUS,
        TransientReason.NOT_DATA,
        TransientReason.BAD_ANSWER,
    }
)


class SendspaceError(Exception):
    """Base class of every error raised by the sendspace client."""

    @property
    def text(self) -> Sentence:
        raise NotImplementedError


class SendspaceUnavailable(SendspaceError):
    def __init__(
        self, reason: TransientReason, status: int | None = None, *, method: str | None = None
    ) -> None:
        if reason not in UNAVAILABLE_REASONS:
            raise ValueError(f"not a reason the sendspace client gives: {reason!r}")
        self.reason = reason
        self.status = status
        self.method = method
        super().__init__(reason, status)

    @property
    def text(self) -> Sentence:
        return Sentence(f"sendspace-unavailable-{self.reason.value}")

    def __str__(self) -> str:
        text = f"sendspace unavailable: {self.reason.value}"
        if self.status is not None:
            text += f" (HTTP {self.status})"
        if self.method:
            text += f" in {self.method}"
        return text

    def __repr__(self) -> str:
        return f"SendspaceUnavailable(reason={self.reason.value!r}, status={self.status!r})"


class SendspaceAPIError(SendspaceError):
    def __init__(self, code: int, *, method: str | None = None) -> None:
        self.code = code
        self.name = codes.name_of(code)
        self.method = method
        super().__init__(code)

    @property
    def is_session_gone(self) -> bool:
        return self.code in codes.SESSION_GONE_CODES

    @property
    def text(self) -> Sentence:
        return codes.sentence(self.code)

    def __str__(self) -> str:
        text = f"sendspace answered error {self.code}"
        if self.name:
            text += f" {self.name}"
        if self.method:
            text += f" to {self.method}"
        return text

    def __repr__(self) -> str:
        return f"SendspaceAPIError(code={self.code!r}, name={self.name!r})"
