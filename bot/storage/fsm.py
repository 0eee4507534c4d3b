"""Conversation state (aiogram's FSM) in the bot's own database, so a restart loses no step.

Each record expires `ttl` after its last write: an expired record reads as empty and is
deleted when met; all expired records are purged at most once per `purge_every` during a
write, so the table never needs a background task to stay small.

aiogram reads the state before every update's handler. Where this process is the database's
only user (SQLite), the storage keeps what it read or wrote in a bounded in-process copy, so
an update of a chat with nothing going on costs no database read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from cachetools import LRUCache
from sqlalchemy import ColumnElement, and_, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.clock import utcnow
from bot.storage.models import ConversationRecord

log = logging.getLogger(__name__)

# A conversation nobody touched for a day is over; the login flow's own limits are shorter.
DEFAULT_TTL_SECONDS = 86_400.0
PURGE_EVERY_SECONDS = 600.0

_NO_THREAD = 0
_NO_BUSINESS = ""


def _key_columns(key: StorageKey) -> dict[str, Any]:
    return {
        "bot_id": key.bot_id,
        "chat_id": key.chat_id,
        "user_id": key.user_id,
        "thread_id": key.thread_id if key.thread_id is not None else _NO_THREAD,
        "business_connection_id": key.business_connection_id or _NO_BUSINESS,
        "destiny": key.destiny,
    }


def _where(key: StorageKey) -> ColumnElement[bool]:
    return and_(
        *(getattr(ConversationRecord, name) == value for name, value in _key_columns(key).items())
    )


_KEY_NAMES = ("bot_id", "chat_id", "user_id", "thread_id", "business_connection_id", "destiny")
# Built once with parameters: it runs for every update, and building the WHERE each time
# cost about as much as the read itself.
_READ = select(
    ConversationRecord.state, ConversationRecord.data, ConversationRecord.expires_at
).where(*(getattr(ConversationRecord, name) == bindparam(f"key_{name}") for name in _KEY_NAMES))


def _read_params(key: StorageKey) -> dict[str, Any]:
    return {f"key_{name}": value for name, value in _key_columns(key).items()}


# state, data, expiry of a record as stored; None for no record.
_Record = tuple[str | None, str | None, datetime]


class DatabaseStorage(BaseStorage):
    """An aiogram `BaseStorage` on the bot's SQLAlchemy database (SQLite or PostgreSQL)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        purge_every_seconds: float = PURGE_EVERY_SECONDS,
        clock: Callable[[], datetime] = utcnow,
        cache_size: int = 0,
    ) -> None:
        """`cache_size` > 0 keeps that many records in process: only for a database that
        no other process writes conversations to (another's write would go unseen)."""
        self._sessionmaker = sessionmaker
        self._ttl = timedelta(seconds=ttl_seconds)
        self._purge_every = timedelta(seconds=purge_every_seconds)
        self._clock = clock
        self._next_purge_at: datetime | None = None
        # One writer per conversation at a time: aiogram runs a person's updates as
        # concurrent tasks, and update_data's read-modify-write would otherwise lose a
        # field written in between (MemoryStorage never awaits, so it never does).
        self._locks: weakref.WeakValueDictionary[StorageKey, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._cache: LRUCache[StorageKey, _Record | None] | None = (
            LRUCache(cache_size) if cache_size > 0 else None
        )
        # Bumped after every write: a read that began before it does not fill the cache.
        self._writes = 0

    def _lock(self, key: StorageKey) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        async with self._lock(key):
            await self._write(key, state=value)

    async def get_state(self, key: StorageKey) -> str | None:
        record = await self._read(key)
        return None if record is None else record[0]

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        async with self._lock(key):
            await self._write(key, data=json.dumps(dict(data)) if data else None)

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        async with self._lock(key):
            current = await self.get_data(key)
            current.update(data)
            await self._write(key, data=json.dumps(current) if current else None)
            return current.copy()

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        record = await self._read(key)
        if record is None or not record[1]:
            return {}
        loaded = json.loads(record[1])
        return loaded if isinstance(loaded, dict) else {}

    async def close(self) -> None:
        """The engine belongs to the application, which disposes of it."""

    async def purge_expired(self) -> int:
        """Deletes every expired record; returns how many there were."""
        async with self._sessionmaker.begin() as session:
            result = await session.execute(
                delete(ConversationRecord).where(ConversationRecord.expires_at <= self._clock())
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def _read(self, key: StorageKey) -> tuple[str | None, str | None] | None:
        now = self._clock()
        cache = self._cache
        if cache is not None and key in cache:
            cached = cache[key]
            if cached is None:
                return None
            if cached[2] > now:
                return cached[0], cached[1]
        writes = self._writes
        record = await self._read_stored(key, now)
        if cache is not None and writes == self._writes:
            cache[key] = record
        return None if record is None else (record[0], record[1])

    async def _read_stored(self, key: StorageKey, now: datetime) -> _Record | None:
        async with self._sessionmaker() as session:
            row = (await session.execute(_READ, _read_params(key))).one_or_none()
            if row is None:
                return None
            if row.expires_at <= now:
                await session.execute(
                    delete(ConversationRecord).where(
                        _where(key), ConversationRecord.expires_at <= now
                    )
                )
                await session.commit()
                return None
            return row.state, row.data, row.expires_at

    async def _write(self, key: StorageKey, **values: str | None) -> None:
        now = self._clock()
        try:
            await self._write_once(key, now, values)
        except IntegrityError:
            # Two updates of one person inserted the same new record at once: the
            # record exists now, so the second try updates it.
            await self._write_once(key, now, values)
        finally:
            self._forget(key)
        if self._next_purge_at is None or now >= self._next_purge_at:
            self._next_purge_at = now + self._purge_every
            purged = await self.purge_expired()
            if purged:
                log.debug("purged %d expired conversation record(s)", purged)

    def _forget(self, key: StorageKey) -> None:
        """After a write (done or failed): the next read of `key` asks the database."""
        self._writes += 1
        if self._cache is not None:
            self._cache.pop(key, None)

    async def _write_once(
        self, key: StorageKey, now: datetime, values: dict[str, str | None]
    ) -> None:
        """Sets the given columns (state and/or data) and renews the expiry, in one
        transaction; a record left with neither state nor data is deleted."""
        expires_at = now + self._ttl
        async with self._sessionmaker.begin() as session:
            # An expired record must not lend its old state or data to the new one.
            await session.execute(
                delete(ConversationRecord).where(_where(key), ConversationRecord.expires_at <= now)
            )
            changed = await session.execute(
                update(ConversationRecord)
                .where(_where(key))
                .values(expires_at=expires_at, **values)
            )
            if not getattr(changed, "rowcount", 0) and any(v is not None for v in values.values()):
                session.add(
                    ConversationRecord(**_key_columns(key), expires_at=expires_at, **values)
                )
            await session.execute(
                delete(ConversationRecord).where(
                    _where(key),
                    ConversationRecord.state.is_(None),
                    ConversationRecord.data.is_(None),
                )
            )
