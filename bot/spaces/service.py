"""Spaces as a `RemoteService`: SpacesClient's login, check and logout in the boundary's words.

Only 01001, 01004, 01005 and 01006/1 (another sign-in took its place) on `check` end a
session; every other answer (HTTP errors, timeouts, HTML, broken JSON, 00007, other codes)
is transient. What a person may type is checked here (`accept`) before anything is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from bot.remote import (
    CheckOutcome,
    Confirmed,
    Ended,
    EndReason,
    LoggedIn,
    LoginRefused,
    LoginResult,
    LogoutOutcome,
    NextStep,
    OffersSignInLinks,
    RefusalReason,
    RemoteService,
    RemoteSession,
    Secrets,
    Sentence,
    ServiceInfo,
    ServiceUnavailable,
    SignInLink,
    Step,
    TellsOwners,
    Transient,
    TransientReason,
)
from bot.spaces import codes
from bot.spaces.client import SpacesClient
from bot.spaces.cookies import LoginCookies
from bot.spaces.errors import CaptchaRequired, SpacesAPIError, SpacesError, SpacesUnavailable
from bot.spaces.types import Account

log = logging.getLogger(__name__)

SERVICE_ID: Final = "spaces"
INFO: Final = ServiceInfo(SERVICE_ID, "Spaces", (Step.LOGIN_NAME, Step.PASSWORD))
SID: Final = "sid"
CK: Final = "ck"
COOKIES: Final = "cookies"  # a login attempt's own cookies, between captcha steps

_TRANSIENT: Final = {
    "timeout": TransientReason.TIMEOUT,
    "network": TransientReason.NETWORK,
    "http_status": TransientReason.HTTP_STATUS,
    "not_json": TransientReason.NOT_DATA,
    "bad_answer": TransientReason.BAD_ANSWER,
}
_ENDED: Final = {
    codes.AUTH_REQUIRED: EndReason.NOT_AUTHENTICATED,
    codes.SESSION_NOT_FOUND: EndReason.NOT_FOUND,
    codes.USER_MODEL_NOT_CONSTRUCTED: EndReason.NOT_FOUND,
}
# What a person may type is checked here, so that nothing absurd is ever sent to Spaces.
LOGIN_MAX_CHARS: Final = 64
PASSWORD_MAX_CHARS: Final = 128
CAPTCHA_MAX_CHARS: Final = 16
_ONLINE: Final = {True: "spaces-status-online", False: "spaces-status-offline"}


class SpacesService(RemoteService, OffersSignInLinks, TellsOwners):
    def __init__(self, client: SpacesClient) -> None:
        self._client = client

    @property
    def info(self) -> ServiceInfo:
        return INFO

    def accept(self, step: Step, text: str) -> str | None:
        if step is Step.LOGIN_NAME:
            return clean_login(text)
        if step is Step.PASSWORD:
            return clean_password(text)
        if step is Step.CAPTCHA:
            return clean_captcha(text)
        return None

    async def login(
        self, answers: Mapping[Step, str], *, attempt: Secrets | None = None
    ) -> LoginResult:
        cookies = LoginCookies.load(attempt[COOKIES]) if attempt and COOKIES in attempt else None
        try:
            account = await self._client.login(
                answers[Step.LOGIN_NAME],
                answers[Step.PASSWORD],
                captcha_code=answers.get(Step.CAPTCHA),
                cookies=cookies,
            )
        except CaptchaRequired as challenge:
            try:
                picture = await self._client.fetch_captcha(
                    challenge.captcha_url, cookies=challenge.cookies
                )
            except SpacesUnavailable as exc:
                # Said as what it is: a picture check that cannot be shown (foreign host,
                # private address, not an image, too big, unreachable).
                raise ServiceUnavailable(
                    SERVICE_ID,
                    _TRANSIENT[exc.reason],
                    Sentence("captcha-unavailable"),
                    f"captcha picture: {exc.reason}",
                ) from None
            return NextStep(
                Step.CAPTCHA,
                picture=picture,
                wrong_answer=challenge.wrong_answer,
                attempt={COOKIES: challenge.cookies.dump()} if challenge.cookies else {},
            )
        except SpacesUnavailable as exc:
            raise _unavailable(exc) from None
        except SpacesAPIError as exc:
            if exc.is_rate_limited:
                reason = RefusalReason.RATE_LIMITED
            elif exc.code == codes.WRONG_LOGIN_OR_PASSWORD:
                reason = RefusalReason.BAD_CREDENTIALS
            elif exc.code == codes.USER_NOT_FOUND:
                reason = RefusalReason.UNKNOWN_ACCOUNT
            elif exc.auth_error == codes.AUTH_ACCOUNT_BLOCKED:
                reason = RefusalReason.BLOCKED
            else:
                reason = RefusalReason.REFUSED
            raise LoginRefused(
                SERVICE_ID, reason, error_sentence(exc), _detail(exc), service_text=exc.server_text
            ) from None
        return LoggedIn(
            RemoteSession(
                service=SERVICE_ID,
                account_id=str(account.user_id),
                display_name=account.nickname,
                secrets={SID: account.sid, CK: account.ck},
            )
        )

    async def check(self, secrets: Secrets, *, detailed: bool = False) -> CheckOutcome:
        sid = _sid(secrets)
        try:
            account = await self._client.check(sid)
        except SpacesUnavailable as exc:
            return Transient(_TRANSIENT[exc.reason], unavailable_sentence(exc), exc.reason)
        except SpacesAPIError as exc:
            ended = _ended(exc)
            if ended is not None:
                return Ended(ended, _detail(exc))
            reason = (
                TransientReason.RATE_LIMITED
                if exc.is_rate_limited
                else TransientReason.SERVICE_ERROR
            )
            return Transient(reason, error_sentence(exc), _detail(exc), exc.server_text)
        renewed = None
        if account.ck and account.ck != secrets.get(CK):
            renewed = {SID: sid, CK: account.ck}  # the CSRF value moved on
        details = await self._details(account) if detailed else ()
        return Confirmed(display_name=account.nickname, details=details, renewed=renewed)

    async def logout(self, secrets: Secrets) -> LogoutOutcome:
        try:
            await self._client.logout(_sid(secrets))
        except SpacesAPIError as exc:
            if exc.is_session_gone:
                return LogoutOutcome.ALREADY_ENDED
            return LogoutOutcome.NOT_CONFIRMED
        except SpacesError:
            return LogoutOutcome.NOT_CONFIRMED
        return LogoutOutcome.LOGGED_OUT

    async def sign_in_links(self) -> list[SignInLink]:
        try:
            # Only links into Spaces (any of its mirrors) come back: an answer is data.
            links = await self._client.oauth_links()
        except SpacesError as exc:
            log.info("social sign-in links unavailable: %s", exc)
            return []
        return [SignInLink(link.provider, link.url) for link in links]

    def owner_facts(self) -> tuple[Sentence, ...]:
        # Which configured mirror answered last (the one requests go to now).
        return (Sentence("admin-stats-mirror", {"mirror": self._client.base_url}),)

    async def _details(self, account: Account) -> tuple[Sentence, ...]:
        lines = [] if account.is_online is None else [Sentence(_ONLINE[account.is_online])]
        counters = account.counters
        if counters is None:  # the check answer had none: ask for them
            try:
                counters = await self._client.top_counts(account.sid)
            except SpacesError:
                return tuple(lines)  # the session is confirmed; only the counts are missing
        counts = {"mail": counters.mail, "journal": counters.journal, "feed": counters.feed}
        lines.append(Sentence("status-counters", counts))
        return tuple(lines)


def clean_login(text: str | None) -> str | None:
    # Phones are often typed with spaces; no Spaces login contains any.
    value = "".join((text or "").split())
    if not value or len(value) > LOGIN_MAX_CHARS or not value.isprintable():
        return None
    if value.startswith("/"):
        return None  # a command typed by mistake, never a Spaces login
    return value


def clean_password(text: str | None) -> str | None:
    value = text or ""
    if not value.strip() or len(value) > PASSWORD_MAX_CHARS or not value.isprintable():
        return None
    return value


def clean_captcha(text: str | None) -> str | None:
    value = "".join((text or "").split())
    if not value or len(value) > CAPTCHA_MAX_CHARS or not value.isalnum():
        return None
    return value


def error_sentence(error: SpacesAPIError) -> Sentence:
    """What a person reads for a Spaces answer code (01006's sub-code says more)."""
    if error.auth_error in codes.AUTH_ERROR_SUBCODES:
        return Sentence(f"spaces-auth-error-{error.auth_error}")
    if codes.describe(error.code) is not None:
        return Sentence(f"spaces-code-{error.code}")
    return Sentence("spaces-code-unknown", {"code": error.code})


def unavailable_sentence(error: SpacesUnavailable) -> Sentence:
    return Sentence(f"spaces-unavailable-{error.reason}")


def _ended(error: SpacesAPIError) -> EndReason | None:
    if error.session_replaced:
        return EndReason.REPLACED
    return _ENDED.get(error.code)


def _detail(error: SpacesAPIError) -> str:
    return error.code if error.auth_error is None else f"{error.code}/{error.auth_error}"


def _unavailable(error: SpacesUnavailable) -> ServiceUnavailable:
    detail = error.reason if error.status is None else f"HTTP {error.status}"
    return ServiceUnavailable(
        SERVICE_ID, _TRANSIENT[error.reason], unavailable_sentence(error), detail
    )


def _sid(secrets: Secrets) -> str:
    sid = secrets.get(SID)
    if not sid:
        # A row of another service, or damaged: a bug to be logged, not a verdict.
        raise ValueError("not a Spaces session")
    return sid
