"""What a chat's linked account looks like now, and ending it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.domain import LinkedSession
from bot.services.clock import utcnow
from bot.spaces import Account, Counters, SpacesAPIError, SpacesClient, SpacesError
from bot.storage.owners import OwnerStore
from bot.storage.store import SessionUnreadable, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NotLinked:
    pass


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A session is stored but cannot be decrypted (a key was dropped or the row damaged)."""


@dataclass(frozen=True, slots=True)
class Active:
    session: LinkedSession
    account: Account
    counters: Counters | None


@dataclass(frozen=True, slots=True)
class Gone:
    """Spaces says the session no longer exists (expired, logged out elsewhere)."""

    session: LinkedSession
    replaced: bool = False  # another sign-in to the account took its place (01006, 1)


@dataclass(frozen=True, slots=True)
class Unconfirmed:
    """Spaces could not confirm the session now; it is kept."""

    session: LinkedSession
    error: SpacesError


StatusReport = NotLinked | Unreadable | Active | Gone | Unconfirmed


@dataclass(frozen=True, slots=True)
class LogoutResult:
    was_linked: bool
    nickname: str | None
    ended_at_spaces: bool


class AccountService:
    def __init__(self, spaces: SpacesClient, store: Store, owners: OwnerStore) -> None:
        self._spaces = spaces
        self._store = store
        self._owners = owners

    async def status(self, chat_id: int) -> StatusReport:
        try:
            session = await self._store.get_session(chat_id)
        except SessionUnreadable:
            return Unreadable()
        if session is None:
            return NotLinked()
        try:
            account = await self._spaces.check(session.sid)
        except SpacesAPIError as exc:
            if exc.is_session_gone:
                # The person sees it right here, so no separate notice follows.
                await self._store.end_session(chat_id, session.sid, utcnow(), notify=False)
                return Gone(session, replaced=exc.session_replaced)
            return Unconfirmed(session, exc)
        except SpacesError as exc:
            return Unconfirmed(session, exc)
        now = utcnow()
        await self._store.confirm_session(chat_id, session.sid, account, now)
        session = await self._store.get_session(chat_id) or session
        # The check answer carries them; getTopCounts only for an answer that did not.
        counters: Counters | None = account.counters
        if counters is None:
            try:
                counters = await self._spaces.top_counts(session.sid)
            except SpacesError as exc:
                log.debug("counters unavailable for chat %s: %s", chat_id, exc)
        return Active(session, account, counters)

    async def logout(self, chat_id: int) -> LogoutResult:
        """End the session at Spaces if it answers, and forget it here in any case."""
        try:
            session = await self._store.get_session(chat_id)
        except SessionUnreadable:
            await self._store.delete_session(chat_id)
            return LogoutResult(was_linked=True, nickname=None, ended_at_spaces=False)
        if session is None:
            return LogoutResult(was_linked=False, nickname=None, ended_at_spaces=False)
        ended = True
        try:
            await self._spaces.logout(session.sid)
        except SpacesAPIError as exc:
            # A session Spaces no longer knows is ended all the same.
            ended = exc.is_session_gone
        except SpacesError as exc:
            log.info("logout of chat %s not confirmed by Spaces: %s", chat_id, exc)
            ended = False
        await self._store.delete_session(chat_id)
        return LogoutResult(was_linked=True, nickname=session.nickname, ended_at_spaces=ended)

    async def forget(self, chat_id: int, telegram_user_id: int) -> LogoutResult:
        """Everything the bot holds about the chat goes: the session (logged out at Spaces
        first), the chat's record and its failed-login history."""
        result = await self.logout(chat_id)
        await self._owners.forget_chat(chat_id, telegram_user_id)
        log.info("chat %s asked to be forgotten", chat_id)
        return result
