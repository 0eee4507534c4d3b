"""The bot processes sharing this database, each with a lease it keeps renewing.

Work a process claims (a session's check, an expiry notice, a broadcast) carries its id;
the others take it over only once that process's lease has run out (see base.orphaned).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, insert, select, update

from bot.domain import Lease
from bot.storage.base import INSTANCES, StoreBase


class InstanceStore(StoreBase):
    async def hold_lease(self, lease: Lease, now: datetime) -> bool:
        """Extend this process's lease; False when its row had to be made again (first
        call, or the others took it for dead after a long pause and removed it)."""
        i = INSTANCES.c
        async with self._sessionmaker.begin() as db:
            renewed = await db.execute(
                update(INSTANCES).where(i.id == lease.owner).values(lease_until=lease.until)
            )
            if getattr(renewed, "rowcount", 0):
                return True
            await db.execute(
                insert(INSTANCES).values(id=lease.owner, started_at=now, lease_until=lease.until)
            )
            return False

    async def drop_lease(self, owner: str) -> None:
        """On a clean stop, once this process's claims are given back."""
        async with self._sessionmaker.begin() as db:
            await db.execute(delete(INSTANCES).where(INSTANCES.c.id == owner))

    async def forget_other_instances(self, owner: str) -> int:
        """Only when this process is known to be the only one (SQLite's lock file): the
        rows others left behind are dead, so their work is taken over at once."""
        async with self._sessionmaker.begin() as db:
            result = await db.execute(delete(INSTANCES).where(INSTANCES.c.id != owner))
            return getattr(result, "rowcount", 0) or 0

    async def prune_instances(self, before: datetime) -> int:
        """Rows of processes whose lease ran out long ago (their work was taken over)."""
        async with self._sessionmaker.begin() as db:
            result = await db.execute(delete(INSTANCES).where(INSTANCES.c.lease_until < before))
            return getattr(result, "rowcount", 0) or 0

    async def live_instance_count(self, now: datetime) -> int:
        query = select(func.count()).select_from(INSTANCES).where(INSTANCES.c.lease_until >= now)
        async with self._sessionmaker() as db:
            return int(await db.scalar(query) or 0)
