"""Logging a chat in to a service: the answers in, a linked session or one more step out."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from bot.domain import AccountKey, LinkedSession, SessionState, StoredAccount
from bot.remote import (
    LoggedIn,
    LoginRefused,
    NextStep,
    OffersSignInLinks,
    RefusalReason,
    RemoteService,
    Secrets,
    SignInLink,
    Step,
)
from bot.services.clock import utcnow
from bot.services.guard import LoginAttempt, LoginGuard
from bot.services.registry import ServiceRegistry
from bot.storage.crypto import Cipher, DecryptError
from bot.storage.store import SessionUnreadable, Store

log = logging.getLogger(__name__)

# How long a secret answer (a password) may wait, sealed, for the next step (a captcha).
PENDING_SECRET_SECONDS = 300
# Sign-in links through other networks rarely change; kept this long, /login never waits.
SIGN_IN_LINKS_TTL_SECONDS = 600.0
# Refusals that say the credentials were wrong: these count towards the brute-force limit.
_COUNTED = frozenset({RefusalReason.BAD_CREDENTIALS, RefusalReason.UNKNOWN_ACCOUNT})


@dataclass(frozen=True, slots=True)
class Linked:
    session: LinkedSession
    # The chat already held a session of this same account; it was replaced (and logged
    # out at the service when it was another session).
    replaced: bool


class LoginNotSaved(Exception):
    """The service accepted the login but the session could not be stored; it was logged
    out there again."""


class PendingExpired(Exception):
    """What a waiting step kept is too old or no longer opens: start again."""


class PasswordSeal:
    """Keeps a login's secret answers, and the attempt's own state (e.g. captcha cookies),
    sealed — bound to the chat and to what they are, time-limited — while a step waits."""

    def __init__(self, cipher: Cipher, ttl_seconds: float = PENDING_SECRET_SECONDS) -> None:
        self._cipher = cipher
        self._ttl = ttl_seconds

    def seal(self, chat_id: int, step: Step, answer: str) -> str:
        return self._seal(chat_id, f"pending_{step.value}", answer)

    def open(self, chat_id: int, step: Step, token: object) -> str:
        return self._open(chat_id, f"pending_{step.value}", token)

    def seal_attempt(self, chat_id: int, attempt: Secrets) -> str | None:
        """None when the attempt keeps nothing."""
        if not attempt:
            return None
        return self._seal(chat_id, "pending_attempt", json.dumps(dict(attempt)))

    def open_attempt(self, chat_id: int, token: object) -> dict[str, str]:
        """No token: the attempt kept nothing. A token that does not open: PendingExpired."""
        if not token:
            return {}
        try:
            value = json.loads(self._open(chat_id, "pending_attempt", token))
        except ValueError:
            raise PendingExpired from None
        if not isinstance(value, dict):
            raise PendingExpired
        return {str(k): str(v) for k, v in value.items()}

    def _seal(self, chat_id: int, purpose: str, secret: str) -> str:
        expires = int(time.time() + self._ttl)
        return self._cipher.encrypt(f"{expires}:{secret}", context=f"fsm:{chat_id}:{purpose}")

    def _open(self, chat_id: int, purpose: str, token: object) -> str:
        if not isinstance(token, str) or not token:
            raise PendingExpired
        try:
            plain = self._cipher.decrypt(token, context=f"fsm:{chat_id}:{purpose}")
        except DecryptError:
            raise PendingExpired from None
        expires, _, secret = plain.partition(":")
        if not expires.isdigit() or int(expires) < time.time():
            raise PendingExpired
        return secret


def guard_name(service_id: str, answers: Mapping[Step, str]) -> str:
    """What the brute-force limit counts per service besides the person: the login name."""
    return f"{service_id}:{answers.get(Step.LOGIN_NAME, '')}"


class LoginService:
    def __init__(
        self,
        services: ServiceRegistry,
        store: Store,
        check_interval: float,
        guard: LoginGuard | None = None,
        seal: PasswordSeal | None = None,
    ) -> None:
        self.services = services
        self.seal = seal  # keeps secret answers while a login waits for its next step
        self._store = store
        self._check_interval = timedelta(seconds=check_interval)
        self._guard = guard
        self._links: dict[str, tuple[float, list[SignInLink]]] = {}

    def cached_sign_in_links(self, service_id: str) -> list[SignInLink] | None:
        """Links fetched lately, or None when they must be asked for; [] when the service
        has none."""
        if not isinstance(self.services.get(service_id), OffersSignInLinks):
            return []
        cached = self._links.get(service_id)
        if cached is None or time.monotonic() - cached[0] > SIGN_IN_LINKS_TTL_SECONDS:
            return None
        return cached[1]

    async def sign_in_links(self, service_id: str) -> list[SignInLink]:
        cached = self.cached_sign_in_links(service_id)
        if cached is not None:
            return cached
        service = self.services.get(service_id)
        if not isinstance(service, OffersSignInLinks):
            return []
        links = await service.sign_in_links()
        if links:
            self._links[service_id] = (time.monotonic(), links)
        return links

    async def ensure_not_locked(
        self, telegram_user_id: int, service_id: str, answers: Mapping[Step, str]
    ) -> None:
        """Raises LoginLocked when this person or this login has failed too often lately."""
        if self._guard is not None:
            await self._guard.check(telegram_user_id, guard_name(service_id, answers))

    async def login(
        self,
        *,
        chat_id: int,
        telegram_user_id: int,
        service: RemoteService,
        answers: Mapping[Step, str],
        attempt: Secrets | None = None,
    ) -> Linked | NextStep:
        """Raises LoginRefused / ServiceUnavailable for every answer that is neither a
        session nor a further step, LoginLocked (sending nothing) after too many failed
        attempts, and LoginNotSaved when the service said yes but the session could not be
        stored. `attempt` is the previous NextStep's."""
        service_id = service.info.id
        counted = await self._reserve(telegram_user_id, guard_name(service_id, answers))
        try:
            result = await service.login(answers, attempt=attempt)
        except LoginRefused as exc:
            await self._settle(counted, failed=exc.reason in _COUNTED)
            raise
        except BaseException:  # unreachable, or the person's update was cancelled
            await self._settle(counted, failed=False)
            raise
        if isinstance(result, NextStep):
            await self._settle(counted, failed=False)  # says nothing about the password
            return result
        assert isinstance(result, LoggedIn)
        try:
            return await self._link(chat_id, telegram_user_id, service, result, counted)
        except Exception as exc:
            # The service holds a live session nobody will ever see or end: end it now.
            log.error(
                "chat %s: signed in at %s but the session could not be saved (%s); logging it out",
                chat_id,
                service_id,
                type(exc).__name__,
            )
            outcome = await service.logout(result.session.secrets)
            if not outcome.ended:
                log.warning("the unsaved %s session stays open: %s", service_id, outcome.value)
            raise LoginNotSaved from None

    async def _reserve(self, telegram_user_id: int, name: str) -> LoginAttempt | None:
        if self._guard is None:
            return None
        return await self._guard.reserve(telegram_user_id, name)

    async def _settle(self, counted: LoginAttempt | None, *, failed: bool) -> None:
        """Wrong credentials keep the attempt counted; any other outcome gives it back."""
        if self._guard is None or counted is None:
            return
        try:
            if failed:
                await self._guard.failed(counted)
            else:
                await self._guard.undecided(counted)
        except Exception:
            # The attempt simply stays counted, the safe side of the limit.
            log.exception("a login attempt could not be settled")

    async def _link(
        self,
        chat_id: int,
        telegram_user_id: int,
        service: RemoteService,
        result: LoggedIn,
        counted: LoginAttempt | None,
    ) -> Linked:
        if self._guard is not None and counted is not None:
            await self._guard.succeeded(counted)
        remote = result.session
        key = AccountKey(remote.service, remote.account_id)
        replaced = await self._end_previous(chat_id, service, key, remote.secrets)
        now = utcnow()
        session = await self._store.save_session(
            chat_id, telegram_user_id, remote, now, next_check_at=now + self._check_interval
        )
        log.info("chat %s linked to a %s account", chat_id, service.info.id)
        return Linked(session=session, replaced=replaced)

    async def known_account(self, chat_id: int, tag: str) -> StoredAccount | None:
        """The chat's account behind a button's tag, ended or not (to log in again as it)."""
        for account in await self._store.accounts(chat_id):
            if account.key.tag == tag:
                return account
        return None

    async def accounts(self, chat_id: int) -> list[StoredAccount]:
        return await self._store.accounts(chat_id)

    async def _end_previous(
        self, chat_id: int, service: RemoteService, key: AccountKey, new: Secrets
    ) -> bool:
        """The chat's earlier session of this same account, logged out at the service when
        it is another one; the chat's other sessions are not touched."""
        try:
            old = await self._store.get_session(chat_id, key)
        except SessionUnreadable:
            log.warning("chat %s had an unreadable %s session; replacing it", chat_id, key.service)
            return False  # nothing could be logged out
        if old is None or dict(old.secrets) == dict(new):
            return False
        if old.state is SessionState.ENDED:
            return False  # nothing live was replaced: this is the way back after an expiry
        outcome = await service.logout(old.secrets)
        if not outcome.ended:
            log.info(
                "old %s session of chat %s not logged out: %s", key.service, chat_id, outcome.value
            )
        return True
