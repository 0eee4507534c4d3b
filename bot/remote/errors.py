"""What `RemoteService.login` raises when it neither logs in nor asks one more question.

RemoteError                 carries `service` and `text` (the sentence a person reads)
├── ServiceUnavailable      no usable answer: says nothing about the credentials
└── LoginRefused            the service answered no; `reason` says what kind of no

Messages carry the service id, the reason and the service's own code: never a password,
token, session key or response body.
"""

from __future__ import annotations

from bot.remote.types import RefusalReason, Sentence, TransientReason


class RemoteError(Exception):
    def __init__(self, service: str, text: Sentence, detail: str | None = None) -> None:
        self.service = service
        self.text = text
        self.detail = detail  # the service's own code or status, for logs
        super().__init__(service, detail)

    def _describe(self, what: str) -> str:
        return f"{self.service}: {what}" + (f" ({self.detail})" if self.detail else "")

    def __str__(self) -> str:
        return self._describe("error")


class ServiceUnavailable(RemoteError):
    def __init__(
        self, service: str, reason: TransientReason, text: Sentence, detail: str | None = None
    ) -> None:
        super().__init__(service, text, detail)
        self.reason = reason

    def __str__(self) -> str:
        return self._describe(f"unavailable, {self.reason.value}")


class LoginRefused(RemoteError):
    def __init__(
        self, service: str, reason: RefusalReason, text: Sentence, detail: str | None = None
    ) -> None:
        super().__init__(service, text, detail)
        self.reason = reason

    def __str__(self) -> str:
        return self._describe(f"login refused, {self.reason.value}")
