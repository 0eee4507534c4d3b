"""sendspace as a `RemoteService`: its login, check and logout in the boundary's words.

auth.checkSession decides a session: ``ok`` confirms it; ``expired``, error 6 (session bad)
and error 7 (not authenticated) end it; anything else is transient.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from bot.remote import (
    CheckOutcome,
    Confirmed,
    Ended,
    EndReason,
    LoggedIn,
    LoginRefused,
    LogoutOutcome,
    RemoteService,
    RemoteSession,
    Secrets,
    Sentence,
    ServiceInfo,
    ServiceUnavailable,
    Step,
    Transient,
    TransientReason,
)
from bot.sendspace import codes
from bot.sendspace.client import SendspaceClient, SessionStatus
from bot.sendspace.errors import SendspaceAPIError, SendspaceError, SendspaceUnavailable

SERVICE_ID: Final = "sendspace"
INFO: Final = ServiceInfo(SERVICE_ID, "sendspace", (Step.LOGIN_NAME, Step.PASSWORD))
SESSION_KEY: Final = "session_key"  # the one secret a sendspace session has

# Answers are checked here so that nothing absurd is ever sent.
USER_NAME_MAX_CHARS: Final = 64
PASSWORD_MAX_CHARS: Final = 128
_BYTES_PER_MB: Final = 1024 * 1024
_ENDED_BY_CODE: Final = {
    codes.SESSION_BAD: EndReason.NOT_FOUND,
    codes.SESSION_NOT_AUTH: EndReason.NOT_AUTHENTICATED,
}


class SendspaceService(RemoteService):
    def __init__(self, client: SendspaceClient) -> None:
        self._client = client

    @property
    def info(self) -> ServiceInfo:
        return INFO

    def accept(self, step: Step, text: str) -> str | None:
        if step is Step.LOGIN_NAME:
            value = text.strip()
            if (
                not value
                or len(value) > USER_NAME_MAX_CHARS
                or not value.isprintable()
                or any(char.isspace() for char in value)
                or value.startswith("/")  # a command typed by mistake
            ):
                return None
            return value
        if step is Step.PASSWORD:
            if not text.strip() or len(text) > PASSWORD_MAX_CHARS or not text.isprintable():
                return None
            return text
        return None  # sendspace asks nothing else

    async def login(
        self, answers: Mapping[Step, str], *, attempt: Secrets | None = None
    ) -> LoggedIn:
        # One round (createToken, login): sendspace never asks a further step.
        user_name, password = answers[Step.LOGIN_NAME], answers[Step.PASSWORD]
        try:
            login = await self._client.login(user_name, password)
        except SendspaceUnavailable as exc:
            raise ServiceUnavailable(SERVICE_ID, exc.reason, exc.text, _detail(exc)) from None
        except SendspaceAPIError as exc:
            if exc.code == codes.SYSTEM_MAINTENANCE:
                raise ServiceUnavailable(
                    SERVICE_ID, TransientReason.SERVICE_ERROR, exc.text, _detail(exc)
                ) from None
            raise LoginRefused(
                SERVICE_ID, codes.login_refusal(exc.code), exc.text, _detail(exc)
            ) from None
        return LoggedIn(
            RemoteSession(
                service=SERVICE_ID,
                # sendspace user names are letters and digits; one account, however typed.
                account_id=user_name.lower(),
                display_name=user_name,
                secrets={SESSION_KEY: login.session_key},
            )
        )

    async def check(self, secrets: Secrets, *, detailed: bool = False) -> CheckOutcome:
        try:
            status = await self._client.check_session(_session_key(secrets))
        except SendspaceUnavailable as exc:
            return Transient(exc.reason, exc.text, _detail(exc))
        except SendspaceAPIError as exc:
            ended = _ENDED_BY_CODE.get(exc.code)
            if ended is not None:
                return Ended(ended, _detail(exc))
            return Transient(TransientReason.SERVICE_ERROR, exc.text, _detail(exc))
        if not status.alive:
            return Ended(EndReason.EXPIRED, "expired")
        return Confirmed(details=_details(status) if detailed else ())

    async def logout(self, secrets: Secrets) -> LogoutOutcome:
        try:
            await self._client.logout(_session_key(secrets))
        except SendspaceAPIError as exc:
            if exc.is_session_gone:
                return LogoutOutcome.ALREADY_ENDED
            return LogoutOutcome.NOT_CONFIRMED
        except SendspaceError:
            return LogoutOutcome.NOT_CONFIRMED
        return LogoutOutcome.LOGGED_OUT


def _session_key(secrets: Secrets) -> str:
    key = secrets.get(SESSION_KEY)
    if not key:
        # A row of another service, or damaged: a bug to be logged, not a verdict.
        raise ValueError("not a sendspace session")
    return key


def _detail(exc: SendspaceError) -> str:
    if isinstance(exc, SendspaceAPIError):
        return f"error {exc.code}"
    if isinstance(exc, SendspaceUnavailable) and exc.status is not None:
        return f"HTTP {exc.status}"
    return type(exc).__name__


def _details(status: SessionStatus) -> tuple[Sentence, ...]:
    lines: list[Sentence] = []
    for kind, left in (("disk", status.diskspace_left), ("bandwidth", status.bandwidth_left)):
        if left is None or left < -1:
            continue
        if left == -1:
            lines.append(Sentence(f"sendspace-status-{kind}-unlimited"))
        else:
            lines.append(
                Sentence(f"sendspace-status-{kind}-left", {"megabytes": left // _BYTES_PER_MB})
            )
    return tuple(lines)
