"""This bot process among the others on one database: its lease, and taking over the work of
processes that stopped without finishing it.

Every process holds a lease in the database and renews it well before it runs out. Work a
process claims (a session's check, an expiry notice, a broadcast) names it; a process whose
lease ran out is taken for dead, and the others settle its notices and report its broadcasts
(its session checks need nothing: their own lease brings them back on due).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from bot.domain import Lease
from bot.services.clock import utcnow
from bot.services.watchdog import DATABASE_STEP_SECONDS, Heartbeat, pause_or_stop, within
from bot.storage.store import Store

log = logging.getLogger(__name__)

# How long the others wait for a silent process before they take over its work; it renews
# every quarter of this, so three renewals in a row may fail before it counts as dead.
LEASE_SECONDS = 60.0
# Rows of processes dead this long are removed (their work was taken over long before).
FORGET_AFTER = timedelta(days=1)


def new_instance_id() -> str:
    """Readable in the database and the logs: host, process and a random part (a restarted
    container may reuse both host name and pid)."""
    host = socket.gethostname()[:40] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


class InstanceLease:
    def __init__(
        self,
        store: Store,
        instance: str,
        *,
        takeovers: Sequence[Callable[[], Awaitable[object]]] = (),
        lease_seconds: float = LEASE_SECONDS,
        database_step_seconds: float = DATABASE_STEP_SECONDS,
    ) -> None:
        self._store = store
        self.id = instance
        self._takeovers = list(takeovers)
        self._lease = lease_seconds
        self._db_seconds = min(database_step_seconds, lease_seconds / 4)
        self.heartbeat = Heartbeat()

    def add_takeover(self, takeover: Callable[[], Awaitable[object]]) -> None:
        self._takeovers.append(takeover)

    def _next_lease(self) -> Lease:
        return Lease(self.id, utcnow() + timedelta(seconds=self._lease))

    async def join(self, *, sole: bool = False) -> None:
        """Take a lease before any work is claimed. `sole`: this process is known to be the
        only one on the database (SQLite), so rows others left behind are dead already."""
        await self._store.hold_lease(self._next_lease(), utcnow())
        if sole:
            forgotten = await self._store.forget_other_instances(self.id)
            if forgotten:
                log.info("work of %d earlier process(es) on this database is taken over", forgotten)
        self.heartbeat.beat()

    async def run(self, stop: asyncio.Event) -> None:
        """Renew the lease and take over dead processes' work until `stop` is set."""
        failures = 0
        while not stop.is_set():
            try:
                await self._upkeep()
                if failures:
                    log.info("the instance lease is renewed again")
                failures = 0
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.warning(
                        "renewing the instance lease failed (%s); the others take over this "
                        "process's claims if it stays so for %g s",
                        type(exc).__name__,
                        self._lease,
                    )
            await pause_or_stop(stop, self._lease / 4 if not failures else 2.0)

    async def _upkeep(self) -> None:
        kept = await within(
            "renewing the instance lease",
            self._db_seconds,
            self._store.hold_lease(self._next_lease(), utcnow()),
        )
        if not kept:
            # Its claims may have been settled meanwhile; each claim is checked before use.
            log.warning("this process's lease had run out; it holds a new one")
        self.heartbeat.beat()
        for takeover in self._takeovers:
            try:
                await takeover()
            except Exception:
                log.exception("taking over the work of a stopped process failed")
        await self._store.prune_instances(utcnow() - FORGET_AFTER)

    async def leave(self) -> None:
        """On a clean stop, after its claims were given back: the others need not wait."""
        try:
            await within(
                "giving up the instance lease", self._db_seconds, self._store.drop_lease(self.id)
            )
        except Exception as exc:
            log.warning("the instance lease was not given up (%s); it runs out by itself", exc)
