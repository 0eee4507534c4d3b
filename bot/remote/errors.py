"""What `RemoteService.login` raises when it neither logs in nor asks one more question.

RemoteError                 carries `service`, `text` (the sentence a person reads) and
│                           `service_text` (the service's own words, shown quoted after it)
├── ServiceUnavailable      no usable answer: says nothing about the credentials
└── LoginRefused            the service answered no; `reason` says what kind of no

Messages carry the service id, the reason and the service's own code: never a password,
token, session key or response body.
"""

from __future__ import annotations

from bot.remote.types import RefusalReason, Sentence, TransientReason


class RemoteError(Exception):
    def __init__(
        self,
        service: str,
        text: Sentence,
        detail: str | None = None,
        *,
        service_text: str | None = None,
    ) -> None:
        self.service = service
        self.text = text
        self.detail = detail  # the service's own code or status, for logs
        # The service's own words about the error, already cleaned by the adapter; never in
        # str() or logs (it is the service's text, not ours).
        self.service_text = service_text
        super().__init__(service, detail)

    def _describe(self, what: str) -> str:
        return f"{self.service}: {what}" + (f" ({self.detail})" if self.detail else "")

    def __str__(self) -> str:
        return self._describe("error")


class ServiceUnavailable(RemoteError):
    def __init__(
        self,
        service: str,
        reason: TransientReason,
        text: Sentence,
        detail: str | None = None,
        *,
        service_text: str | None = None,
    ) -> None:
        super().__init__(service, text, detail, service_text=service_text)
        self.reason = reason

    def __str__(self) -> str:
        return self._describe(f"unavailable, {self.reason.value}")


class LoginRefused(RemoteError):
    def __init__(
        self,
        service: str,
        reason: RefusalReason,
        text: Sentence,
        detail: str | None = None,
        *,
        service_text: str | None = None,
    ) -> None:
        super().__init__(service, text, detail, service_text=service_text)
        self.reason = reason

    def __str__(self) -> str:
        return self._describe(f"login refused, {self.reason.value}")
