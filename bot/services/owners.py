"""The owners' decisions about people, each written to the audit log."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from bot.services.account import AccountService
from bot.services.clock import utcnow
from bot.services.hotcache import HotCache
from bot.storage.owners import AuditRecord, OwnerStore, Stats

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BanResult:
    sessions_ended: int


class OwnerService:
    def __init__(self, owners: OwnerStore, accounts: AccountService, hot_cache: HotCache) -> None:
        self._owners = owners
        self._accounts = accounts
        self._hot_cache = hot_cache

    async def allow(self, admin_id: int, user_id: int) -> None:
        await self._owners.set_access(user_id, admin_id=admin_id, now=utcnow(), allowed=True)
        await self._hot_cache.access_changed(user_id)
        await self._owners.audit(admin_id, "allow", utcnow(), target=str(user_id))

    async def deny(self, admin_id: int, user_id: int) -> None:
        await self._owners.set_access(user_id, admin_id=admin_id, now=utcnow(), allowed=False)
        await self._hot_cache.access_changed(user_id)
        await self._owners.audit(admin_id, "deny", utcnow(), target=str(user_id))

    async def ban(self, admin_id: int, user_id: int) -> BanResult:
        """Ban, then log out and delete every session that person linked."""
        await self._owners.set_access(user_id, admin_id=admin_id, now=utcnow(), banned=True)
        # Before the sessions are ended: the next update is refused even if that takes long.
        await self._hot_cache.access_changed(user_id)
        ended = 0
        for chat_id in sorted(set(await self._owners.chats_of_user(user_id))):
            for account in await self._accounts.accounts(chat_id):
                await self._accounts.logout(chat_id, account)
                ended += 1
        await self._owners.audit(admin_id, "ban", utcnow(), target=str(user_id), detail=str(ended))
        return BanResult(sessions_ended=ended)

    async def unban(self, admin_id: int, user_id: int) -> None:
        await self._owners.set_access(user_id, admin_id=admin_id, now=utcnow(), banned=False)
        await self._hot_cache.access_changed(user_id)
        await self._owners.audit(admin_id, "unban", utcnow(), target=str(user_id))

    async def record(self, admin_id: int, action: str, detail: str | None = None) -> None:
        await self._owners.audit(admin_id, action, utcnow(), detail=detail)

    async def audit_log(self, limit: int = 20) -> list[AuditRecord]:
        return await self._owners.latest_audit(limit)

    async def stats(self, now: datetime | None = None) -> Stats:
        return await self._owners.stats(now or utcnow())
