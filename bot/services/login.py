"""Logging a chat in to Spaces: credentials in, a linked session or a captcha out."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from bot.domain import LinkedSession
from bot.services.clock import utcnow
from bot.services.guard import LoginAttempt, LoginGuard
from bot.spaces import (
    Account,
    CaptchaRequired,
    LoginCookies,
    OAuthLink,
    SpacesAPIError,
    SpacesClient,
    SpacesError,
    SpacesUnavailable,
    codes,
)
from bot.storage.crypto import Cipher, DecryptError
from bot.storage.store import SessionUnreadable, Store

log = logging.getLogger(__name__)

# Credentials are checked here so that nothing absurd is ever sent to Spaces.
LOGIN_MAX_CHARS = 64
PASSWORD_MAX_CHARS = 128
CAPTCHA_MAX_CHARS = 16
# How long a password may wait, encrypted, for the person to solve a captcha.
PENDING_PASSWORD_SECONDS = 300
# The social sign-in links rarely change; kept this long, /login never waits for them.
OAUTH_LINKS_TTL_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class LoggedIn:
    session: LinkedSession
    replaced_nickname: str | None


@dataclass(frozen=True, slots=True)
class CaptchaChallenge:
    image: bytes = field(repr=False)
    wrong_answer: bool
    # What this attempt must send back with the answer: keep it with the attempt (sealed).
    cookies: LoginCookies = field(default_factory=LoginCookies, repr=False)


class LoginNotSaved(Exception):
    """Spaces accepted the login but the session could not be stored; it was logged out."""


class PendingExpired(Exception):
    """The password kept for a captcha is too old or no longer opens: ask for it again."""


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


class PasswordSeal:
    """Keeps a password, and the login attempt's cookies, encrypted (bound to the chat and
    to what they are, time-limited) while a captcha waits."""

    def __init__(self, cipher: Cipher, ttl_seconds: float = PENDING_PASSWORD_SECONDS) -> None:
        self._cipher = cipher
        self._ttl = ttl_seconds

    def seal(self, chat_id: int, password: str) -> str:
        return self._seal(chat_id, "pending_password", password)

    def open(self, chat_id: int, token: str | None) -> str:
        return self._open(chat_id, "pending_password", token)

    def seal_cookies(self, chat_id: int, cookies: LoginCookies) -> str | None:
        """None when the attempt has no cookies: nothing to keep."""
        return self._seal(chat_id, "pending_cookies", cookies.dump()) if cookies else None

    def open_cookies(self, chat_id: int, token: str | None) -> LoginCookies:
        """No token: the attempt had no cookies. A token that does not open: PendingExpired."""
        if not token:
            return LoginCookies()
        return LoginCookies.load(self._open(chat_id, "pending_cookies", token))

    def _seal(self, chat_id: int, purpose: str, secret: str) -> str:
        expires = int(time.time() + self._ttl)
        return self._cipher.encrypt(f"{expires}:{secret}", context=f"fsm:{chat_id}:{purpose}")

    def _open(self, chat_id: int, purpose: str, token: str | None) -> str:
        if not token:
            raise PendingExpired
        try:
            plain = self._cipher.decrypt(token, context=f"fsm:{chat_id}:{purpose}")
        except DecryptError:
            raise PendingExpired from None
        expires, _, secret = plain.partition(":")
        if not expires.isdigit() or int(expires) < time.time():
            raise PendingExpired
        return secret


# Answers that mean the credentials were wrong: these count towards the brute-force limit.
_FAILED_CREDENTIALS = frozenset({codes.USER_NOT_FOUND, codes.WRONG_LOGIN_OR_PASSWORD})


class LoginService:
    def __init__(
        self,
        spaces: SpacesClient,
        store: Store,
        check_interval: float,
        guard: LoginGuard | None = None,
    ) -> None:
        self._spaces = spaces
        self._store = store
        self._check_interval = timedelta(seconds=check_interval)
        self._guard = guard
        self._links: tuple[float, list[OAuthLink]] | None = None

    def cached_oauth_links(self) -> list[OAuthLink] | None:
        """The social sign-in links fetched lately, or None when they must be asked for."""
        if self._links is None or time.monotonic() - self._links[0] > OAUTH_LINKS_TTL_SECONDS:
            return None
        return self._links[1]

    async def oauth_links(self) -> list[OAuthLink]:
        """Social sign-in links, or none when Spaces cannot give them now."""
        cached = self.cached_oauth_links()
        if cached is not None:
            return cached
        try:
            # Only links into Spaces (any of its mirrors) come back: an answer is data.
            links = await self._spaces.oauth_links()
        except SpacesError as exc:
            log.info("social sign-in links unavailable: %s", exc)
            return []
        self._links = (time.monotonic(), links)
        return links

    async def login(
        self,
        *,
        chat_id: int,
        telegram_user_id: int,
        login: str,
        password: str,
        captcha_code: str | None = None,
        cookies: LoginCookies | None = None,
    ) -> LoggedIn | CaptchaChallenge:
        """Raises SpacesError for every answer that is neither a session nor a captcha,
        LoginLocked (sending nothing to Spaces) after too many failed attempts, and
        LoginNotSaved when Spaces said yes but the session could not be stored. `cookies`
        are the attempt's own, from its previous CaptchaChallenge."""
        attempt = await self._reserve(telegram_user_id, login)
        try:
            account = await self._spaces.login(
                login, password, captcha_code=captcha_code, cookies=cookies
            )
        except SpacesAPIError as exc:
            wrong_password = exc.code in _FAILED_CREDENTIALS
            await self._settle(attempt, failed=wrong_password)
            if not isinstance(exc, CaptchaRequired):
                raise
            try:
                image = await self._spaces.fetch_captcha(exc.captcha_url, cookies=exc.cookies)
            except SpacesUnavailable as failure:
                # Said as what it is: a picture check that cannot be shown (foreign host,
                # private address, not an image, too big, unreachable).
                log.info("captcha picture for chat %s not shown: %s", chat_id, failure)
                raise exc from None
            return CaptchaChallenge(image=image, wrong_answer=exc.wrong_answer, cookies=exc.cookies)
        except BaseException:  # Spaces unreachable, or the person's update was cancelled
            await self._settle(attempt, failed=False)
            raise
        try:
            return await self._link(chat_id, telegram_user_id, account, attempt)
        except Exception as exc:
            # Spaces holds a live session nobody will ever see or end: end it now.
            log.error(
                "chat %s: signed in at Spaces but the session could not be saved (%s); "
                "logging it out",
                chat_id,
                type(exc).__name__,
            )
            try:
                await self._spaces.logout(account.sid)
            except SpacesError as logout_error:
                log.warning("the unsaved session stays open at Spaces: %s", logout_error)
            raise LoginNotSaved from None

    async def _reserve(self, telegram_user_id: int, login: str) -> LoginAttempt | None:
        if self._guard is None:
            return None
        return await self._guard.reserve(telegram_user_id, login)

    async def _settle(self, attempt: LoginAttempt | None, *, failed: bool) -> None:
        """A wrong password keeps the attempt counted; any other outcome gives it back."""
        if self._guard is None or attempt is None:
            return
        try:
            if failed:
                await self._guard.failed(attempt)
            else:
                await self._guard.undecided(attempt)
        except Exception:
            # The attempt simply stays counted, the safe side of the limit.
            log.exception("a login attempt could not be settled")

    async def _link(
        self,
        chat_id: int,
        telegram_user_id: int,
        account: Account,
        attempt: LoginAttempt | None,
    ) -> LoggedIn:
        if self._guard is not None and attempt is not None:
            await self._guard.succeeded(attempt)
        replaced = await self._end_previous(chat_id, new_sid=account.sid)
        now = utcnow()
        session = await self._store.save_session(
            chat_id, telegram_user_id, account, now, next_check_at=now + self._check_interval
        )
        log.info("chat %s linked to Spaces user %s", chat_id, account.user_id)
        return LoggedIn(session=session, replaced_nickname=replaced)

    async def ensure_not_locked(self, telegram_user_id: int, login: str) -> None:
        """Raises LoginLocked when this person or this login has failed too often lately."""
        if self._guard is not None:
            await self._guard.check(telegram_user_id, login)

    async def known_nickname(self, chat_id: int) -> str | None:
        """The nickname of the chat's session, ended or not (to log in again as it)."""
        try:
            session = await self._store.get_session(chat_id)
        except SessionUnreadable:
            return None
        return None if session is None else session.nickname

    async def _end_previous(self, chat_id: int, *, new_sid: str) -> str | None:
        try:
            old = await self._store.get_session(chat_id)
        except SessionUnreadable:
            log.warning("chat %s had an unreadable session; replacing it", chat_id)
            return None
        if old is None or old.sid == new_sid:
            return None if old is None else old.nickname
        try:
            await self._spaces.logout(old.sid)
        except SpacesError as exc:
            log.info("old session of chat %s not logged out at Spaces: %s", chat_id, exc)
        return old.nickname
