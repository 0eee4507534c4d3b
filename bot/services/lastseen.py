"""When each known chat last wrote, held in memory and written in batches.

A chat's first update in this process is written at once (`HotCache.chat_seen`): its row
must exist before any handler runs. Every later update of it only records here; a flusher
writes everything recorded every `FLUSH_SECONDS` in one statement, and once more on stop.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from bot.services.watchdog import pause_or_stop
from bot.storage.base import fault_name, is_row_fault
from bot.storage.chats import SeenChat

log = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0
# A batch this large is written without waiting for the interval.
FLUSH_AT = 2_000
# After a failed write, wait this long at most before the next try.
MAX_RETRY_SECONDS = 60.0


class SeenWriter(Protocol):
    async def record_seen(self, seen: list[SeenChat]) -> None: ...


class LastSeen:
    def __init__(
        self,
        store: SeenWriter,
        *,
        every: float = FLUSH_SECONDS,
        flush_at: int = FLUSH_AT,
        max_retry: float = MAX_RETRY_SECONDS,
    ) -> None:
        self._store = store
        self._every = every
        self._flush_at = flush_at
        self._max_retry = max_retry
        self._pending: dict[int, SeenChat] = {}
        self._full = asyncio.Event()
        self._failing = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    def record(
        self, chat_id: int, user_id: int | None, language_code: str | None, at: datetime
    ) -> None:
        self._pending[chat_id] = SeenChat(chat_id, user_id, language_code, at)
        if len(self._pending) >= self._flush_at:
            self._full.set()

    def discard(self, chat_id: int) -> None:
        """What was recorded for the chat goes unwritten (it was written at once, or the
        chat was forgotten)."""
        self._pending.pop(chat_id, None)

    async def flush(self) -> int:
        """Writes what is pending; returns how many chats. On a database error what was
        taken is put back (news recorded meanwhile wins) and the error is raised."""
        taken, self._pending = self._pending, {}
        if not taken:
            return 0
        try:
            await self._write(list(taken.values()))
        except BaseException:
            self._pending = {**taken, **self._pending}
            raise
        return len(taken)

    async def _write(self, batch: list[SeenChat]) -> None:
        try:
            await self._store.record_seen(batch)
        except SQLAlchemyError as exc:
            if not is_row_fault(exc):
                raise
            # One value the database refuses must not hold back every other chat forever.
            for one in batch:
                try:
                    await self._store.record_seen([one])
                except SQLAlchemyError as row_exc:
                    if not is_row_fault(row_exc):
                        raise
                    log.warning(
                        "last seen of chat %s not written (%s)", one.chat_id, fault_name(row_exc)
                    )

    async def run(self, stop: asyncio.Event) -> None:
        """The flusher: every `every` seconds (sooner when a batch is full), backing off
        while the database fails, and a last flush once `stop` is set."""
        delay = self._every
        while not stop.is_set():
            await pause_or_stop(stop, delay, self._full)
            self._full.clear()
            if stop.is_set():
                break
            delay = self._every if await self._flush_logged() else min(delay * 2, self._max_retry)
        if not await self._flush_logged() and self._pending:
            log.error("stopping: the last seen of %d chat(s) was not written", len(self._pending))

    async def _flush_logged(self) -> bool:
        """One flush; a failure is logged once until a flush works again."""
        try:
            await self.flush()
        except Exception as exc:
            if not self._failing:
                self._failing = True
                name = fault_name(exc) if isinstance(exc, SQLAlchemyError) else type(exc).__name__
                log.warning(
                    "last seen of %d chat(s) not written (%s); trying again later",
                    len(self._pending),
                    name,
                )
            return False
        if self._failing:
            self._failing = False
            log.info("last seen written again")
        return True
