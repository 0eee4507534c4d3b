"""What a chat's linked accounts look like now, and ending them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.domain import StoredAccount
from bot.remote import CheckOutcome, Confirmed, Ended, LogoutOutcome
from bot.services.clock import utcnow
from bot.services.hotcache import HotCache
from bot.services.registry import ServiceRegistry
from bot.storage.owners import OwnerStore
from bot.storage.store import SessionUnreadable, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """The session is stored but cannot be decrypted (a key was dropped or the row damaged)."""


@dataclass(frozen=True, slots=True)
class NotSetUp:
    """The session's service is no longer set up in this bot (its key was removed)."""


@dataclass(frozen=True, slots=True)
class AccountStatus:
    """One linked account as /status shows it; `account` is read after the check."""

    account: StoredAccount
    outcome: CheckOutcome | Unreadable | NotSetUp


@dataclass(frozen=True, slots=True)
class LogoutResult:
    account: StoredAccount
    readable: bool  # False: the secrets no longer opened, so only forgotten here
    outcome: LogoutOutcome


class AccountService:
    def __init__(
        self, services: ServiceRegistry, store: Store, owners: OwnerStore, hot_cache: HotCache
    ) -> None:
        self._services = services
        self._store = store
        self._owners = owners
        self._hot_cache = hot_cache

    async def accounts(self, chat_id: int) -> list[StoredAccount]:
        return await self._store.accounts(chat_id)

    async def status(self, chat_id: int) -> list[AccountStatus]:
        """Every account of the chat, each asked at its service now."""
        return [await self._status_of(chat_id, a) for a in await self._store.accounts(chat_id)]

    async def _status_of(self, chat_id: int, account: StoredAccount) -> AccountStatus:
        service = self._services.get(account.key.service)
        if service is None:
            return AccountStatus(account, NotSetUp())
        try:
            session = await self._store.get_session(chat_id, account.key)
        except SessionUnreadable:
            return AccountStatus(account, Unreadable())
        if session is None:  # logged out meanwhile
            return AccountStatus(account, Unreadable())
        try:
            outcome = await service.check(session.secrets, detailed=True)
        except Exception:
            # `check` never raises for what the service does: this is a bug, logged once.
            log.exception("checking a %s session of chat %s failed", account.key.service, chat_id)
            return AccountStatus(account, Unreadable())
        now = utcnow()
        if isinstance(outcome, Ended):
            # The person sees it right here, so no separate notice follows.
            await self._store.end_session(chat_id, account.key, session.secrets, now, notify=False)
        elif isinstance(outcome, Confirmed):
            await self._store.confirm_session(
                chat_id,
                account.key,
                session.secrets,
                now,
                display_name=outcome.display_name,
                renewed=outcome.renewed,
            )
        fresh = {a.key: a for a in await self._store.accounts(chat_id)}
        return AccountStatus(fresh.get(account.key, account), outcome)

    async def logout(self, chat_id: int, account: StoredAccount) -> LogoutResult:
        """End the session at its service if it answers, and forget it here in any case."""
        service = self._services.get(account.key.service)
        try:
            session = await self._store.get_session(chat_id, account.key)
        except SessionUnreadable:
            session = None
        if session is None or service is None:
            await self._store.delete_session(chat_id, account.key)
            return LogoutResult(account, False, LogoutOutcome.NOT_CONFIRMED)
        outcome = await service.logout(session.secrets)
        if not outcome.ended:
            log.info("logout of a %s session of chat %s not confirmed", service.info.id, chat_id)
        await self._store.delete_session(chat_id, account.key)
        return LogoutResult(account, True, outcome)

    async def forget(self, chat_id: int, telegram_user_id: int) -> list[LogoutResult]:
        """Everything the bot holds about the chat goes: its sessions (each logged out at its
        service first), the chat's record and its failed-login history."""
        results = [await self.logout(chat_id, a) for a in await self._store.accounts(chat_id)]
        await self._owners.forget_chat(chat_id, telegram_user_id)
        await self._hot_cache.chat_forgotten(chat_id)
        log.info("chat %s asked to be forgotten", chat_id)
        return results
