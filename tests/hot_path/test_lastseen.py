"""Last seen written in batches: one statement per flush, a last flush on stop, nothing lost
while the database fails, one bad row never holds back the others, and the rules of the
batched write on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.services.lastseen import LastSeen
from bot.storage.crypto import Cipher
from bot.storage.engine import create_engine, make_sessionmaker, migrate
from bot.storage.models import Chat
from bot.storage.owners import OwnerStore
from bot.storage.store import Store
from tests.external import pg_url  # noqa: F401 - fixture
from tests.watch.test_outbox import eventually

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def row(engine: AsyncEngine, chat_id: int) -> Chat | None:
    async with make_sessionmaker(engine)() as db:
        return await db.get(Chat, chat_id)


class DatabaseLocked(Exception):
    pass


class FailingStore(Store):
    """Refuses `failures` writes as a sick database would, then writes; or refuses rows of
    `bad_chats` as a value the database will not take."""

    def __init__(self, store: Store, failures: int = 0, bad_chats: frozenset[int] = frozenset()):
        super().__init__(store._sessionmaker, store._cipher)
        self.failures = failures
        self.bad_chats = bad_chats
        self.calls = 0

    async def record_seen(self, seen: Sequence[object]) -> None:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise OperationalError("UPDATE chats", {}, DatabaseLocked("database is locked"))
        if any(getattr(s, "chat_id", None) in self.bad_chats for s in seen):
            raise DataError("UPDATE chats", {}, Exception("value too long"))
        await super().record_seen(seen)  # type: ignore[arg-type]


async def seen_chats(store: Store, *chat_ids: int) -> None:
    for chat_id in chat_ids:
        await store.touch_chat(chat_id, chat_id, "en", NOW)


async def test_one_statement_per_flush(engine: AsyncEngine, store: Store) -> None:
    await seen_chats(store, *range(1, 51))
    last_seen = LastSeen(store)
    later = NOW + timedelta(minutes=1)
    for chat_id in range(1, 51):
        last_seen.record(chat_id, chat_id, "ru", later)
    statements: list[str] = []
    listener = lambda *a: statements.append(a[2])  # noqa: E731
    event.listen(engine.sync_engine, "before_cursor_execute", listener)
    try:
        assert await last_seen.flush() == 50
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", listener)
    assert len(statements) == 1 and statements[0].lstrip().upper().startswith("UPDATE")
    for chat_id in (1, 50):
        found = await row(engine, chat_id)
        assert found is not None
        assert (found.last_seen_at, found.language_code, found.first_seen_at) == (later, "ru", NOW)


async def test_the_last_batch_is_written_on_stop(engine: AsyncEngine, store: Store) -> None:
    await seen_chats(store, 1)
    last_seen = LastSeen(store, every=3600)  # no flush comes on its own during the test
    stop = asyncio.Event()
    flusher = asyncio.create_task(last_seen.run(stop))
    await asyncio.sleep(0)
    later = NOW + timedelta(minutes=5)
    last_seen.record(1, 1, "de", later)
    stop.set()
    await asyncio.wait_for(flusher, 10)
    found = await row(engine, 1)
    assert found is not None and (found.last_seen_at, found.language_code) == (later, "de")
    assert last_seen.pending == 0


async def test_a_database_error_keeps_the_batch_and_it_is_written_later(
    engine: AsyncEngine, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await seen_chats(store, 1, 2)
    failing = FailingStore(store, failures=3)
    last_seen = LastSeen(failing, every=0.01, max_retry=0.02)
    later = NOW + timedelta(minutes=5)
    last_seen.record(1, 1, "de", later)
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="bot.services.lastseen"):
        flusher = asyncio.create_task(last_seen.run(stop))
        await eventually(lambda: failing.failures == 0)  # each failed try counts down
        last_seen.record(2, 2, "fr", later)  # news recorded while it failed
        await eventually(lambda: last_seen.pending == 0)
        stop.set()
        await asyncio.wait_for(flusher, 10)
    for chat_id, language in ((1, "de"), (2, "fr")):
        found = await row(engine, chat_id)
        assert found is not None and (found.last_seen_at, found.language_code) == (later, language)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "DatabaseLocked" in warnings[0].getMessage()
    assert any("written again" in r.getMessage() for r in caplog.records)


async def test_a_failed_flush_puts_the_batch_back_and_newer_news_wins(store: Store) -> None:
    await seen_chats(store, 1)
    failing = FailingStore(store, failures=1)
    last_seen = LastSeen(failing)
    last_seen.record(1, 1, "de", NOW)
    with pytest.raises(OperationalError):
        await last_seen.flush()
    last_seen.record(1, 1, "fr", NOW + timedelta(seconds=1))
    assert last_seen.pending == 1
    assert await last_seen.flush() == 1
    assert await store.chat_languages(1) == (None, "fr")


async def test_one_refused_row_does_not_hold_back_the_others(
    engine: AsyncEngine, store: Store
) -> None:
    await seen_chats(store, 1, 2, 3)
    failing = FailingStore(store, bad_chats=frozenset({2}))
    last_seen = LastSeen(failing)
    for chat_id in (1, 2, 3):
        last_seen.record(chat_id, chat_id, "ru", NOW + timedelta(minutes=1))
    assert await last_seen.flush() == 3
    assert [await store.chat_languages(c) for c in (1, 2, 3)] == [
        (None, "ru"),
        (None, "en"),
        (None, "ru"),
    ]
    assert last_seen.pending == 0


async def check_batched_write_rules(store: Store, owners: OwnerStore) -> None:
    """What touch_chat keeps, written later: later facts already stored win."""
    await seen_chats(store, 1, 2, 3, 4)
    t0, t1, t2 = NOW + timedelta(minutes=1), NOW + timedelta(minutes=2), NOW + timedelta(minutes=3)
    await store.mark_chat_blocked(1, t0)  # blocked, then wrote again: reachable again
    await store.mark_chat_blocked(2, t2)  # wrote, then blocked: the block stands
    await store.touch_chat(3, 3, "en", t2)  # written at once later: not moved back
    await owners.forget_chat(4, 4)  # forgotten meanwhile: not brought back
    batch = LastSeen(store)
    for chat_id in (1, 2, 3, 4):
        batch.record(chat_id, chat_id, "ru", t1)
    await batch.flush()
    rows = {c: await row_of(store, c) for c in (1, 2, 3, 4)}
    assert rows[1] is not None and rows[1].blocked_at is None and rows[1].last_seen_at == t1
    assert rows[2] is not None and rows[2].blocked_at == t2 and rows[2].last_seen_at == t1
    assert rows[3] is not None and rows[3].last_seen_at == t2
    assert rows[4] is None
    stats = await owners.stats(t2)
    assert stats.blocked_chats == 1 and stats.people_total == 3


async def row_of(store: Store, chat_id: int) -> Chat | None:
    async with store._sessionmaker() as db:
        return await db.get(Chat, chat_id)


async def test_batched_write_rules_on_sqlite(engine: AsyncEngine, store: Store) -> None:
    await check_batched_write_rules(store, OwnerStore(make_sessionmaker(engine)))


async def test_batched_write_rules_on_postgresql(pg_url: str, cipher: Cipher) -> None:  # noqa: F811
    engine = create_engine(pg_url)
    try:
        await migrate(engine)
        sessionmaker = make_sessionmaker(engine)
        await check_batched_write_rules(Store(sessionmaker, cipher), OwnerStore(sessionmaker))
    finally:
        await engine.dispose()
