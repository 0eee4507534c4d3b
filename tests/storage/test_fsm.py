"""Conversation state in the bot's database: aiogram's storage contract, expiry, purge."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.engine import create_engine, make_sessionmaker, migrate
from bot.storage.fsm import DatabaseStorage
from bot.storage.models import ConversationRecord
from tests.external import pg_url  # noqa: F401 - fixture

KEY = StorageKey(bot_id=42, chat_id=7, user_id=7)
START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=[0, 100], ids=["uncached", "kept-in-process"])
def cache_size(request: pytest.FixtureRequest) -> int:
    """Every contract holds alike with and without the in-process copy (SQLite's)."""
    return int(request.param)


async def rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count = select(func.count(ConversationRecord.chat_id))
        return int((await conn.execute(count)).scalar_one())


async def test_state_and_data_round_trip_and_empty_records_disappear(
    engine: AsyncEngine, cache_size: int
) -> None:
    storage = DatabaseStorage(make_sessionmaker(engine), cache_size=cache_size)
    assert await storage.get_state(KEY) is None and await storage.get_data(KEY) == {}
    await storage.set_state(KEY, State("password", group_name="LoginFlow"))
    await storage.update_data(KEY, {"login": "alice"})
    assert await storage.get_state(KEY) == "LoginFlow:password"
    assert await storage.get_data(KEY) == {"login": "alice"}
    await storage.set_state(KEY, None)
    assert await storage.get_data(KEY) == {"login": "alice"}  # data outlives the state
    await storage.set_data(KEY, {})
    assert await rows(engine) == 0


async def test_every_part_of_the_key_counts(engine: AsyncEngine, cache_size: int) -> None:
    storage = DatabaseStorage(make_sessionmaker(engine), cache_size=cache_size)
    keys = [
        KEY,
        StorageKey(bot_id=43, chat_id=7, user_id=7),
        StorageKey(bot_id=42, chat_id=8, user_id=7),
        StorageKey(bot_id=42, chat_id=7, user_id=8),
        StorageKey(bot_id=42, chat_id=7, user_id=7, thread_id=5),
        StorageKey(bot_id=42, chat_id=7, user_id=7, business_connection_id="b1"),
        StorageKey(bot_id=42, chat_id=7, user_id=7, destiny="other"),
    ]
    for number, key in enumerate(keys):
        await storage.set_state(key, f"s{number}")
    assert [await storage.get_state(key) for key in keys] == [f"s{n}" for n in range(len(keys))]


async def test_records_expire_and_an_expired_one_lends_nothing(
    engine: AsyncEngine, cache_size: int
) -> None:
    clock = Clock()
    storage = DatabaseStorage(
        make_sessionmaker(engine), ttl_seconds=60, clock=clock, cache_size=cache_size
    )
    await storage.set_state(KEY, "LoginFlow:password")
    await storage.set_data(KEY, {"login": "alice"})
    clock.now += timedelta(seconds=59)
    assert await storage.get_state(KEY) == "LoginFlow:password"
    await storage.set_state(KEY, "LoginFlow:captcha")  # a write renews the expiry
    clock.now += timedelta(seconds=59)
    assert await storage.get_data(KEY) == {"login": "alice"}
    clock.now += timedelta(seconds=2)
    # Written again after expiry: the old data does not come back with the new state.
    await storage.set_state(KEY, "LoginFlow:login")
    assert await storage.get_data(KEY) == {}
    clock.now += timedelta(seconds=61)
    assert await storage.get_state(KEY) is None
    assert await rows(engine) == 0  # deleted when met


async def test_expired_records_of_others_are_purged_now_and_then(
    engine: AsyncEngine, cache_size: int
) -> None:
    clock = Clock()
    storage = DatabaseStorage(
        make_sessionmaker(engine),
        ttl_seconds=60,
        purge_every_seconds=600,
        clock=clock,
        cache_size=cache_size,
    )
    for chat in range(5):
        await storage.set_state(StorageKey(bot_id=1, chat_id=chat, user_id=chat), "s")
    clock.now += timedelta(seconds=120)
    await storage.set_state(KEY, "s")  # within the purge interval: nothing purged yet
    assert await rows(engine) == 6
    clock.now += timedelta(seconds=600)
    await storage.set_state(KEY, "t")
    assert await rows(engine) == 1
    assert await storage.get_state(KEY) == "t"


async def test_the_same_storage_on_postgresql(pg_url: str) -> None:  # noqa: F811
    engine = create_engine(pg_url)
    try:
        await migrate(engine)
        clock = Clock()
        storage = DatabaseStorage(make_sessionmaker(engine), ttl_seconds=60, clock=clock)
        await storage.set_state(KEY, "LoginFlow:password")
        await storage.update_data(KEY, {"login": "alice", "n": 1})
        # another process, a new storage on the same database, continues the conversation
        again = DatabaseStorage(make_sessionmaker(engine), ttl_seconds=60, clock=clock)
        assert await again.get_state(KEY) == "LoginFlow:password"
        assert await again.get_data(KEY) == {"login": "alice", "n": 1}
        clock.now += timedelta(seconds=61)
        assert await again.get_state(KEY) is None
        assert await storage.purge_expired() == 0  # already deleted when read
    finally:
        await engine.dispose()


async def test_concurrent_updates_of_one_conversation_lose_nothing(
    engine: AsyncEngine, cache_size: int
) -> None:
    """aiogram runs a person's updates as concurrent tasks: each field written survives."""
    storage = DatabaseStorage(make_sessionmaker(engine), cache_size=cache_size)
    await storage.set_state(KEY, "LoginFlow:login")
    await asyncio.gather(*(storage.update_data(KEY, {f"field{n}": n}) for n in range(12)))
    assert await storage.get_data(KEY) == {f"field{n}": n for n in range(12)}


async def test_kept_in_process_a_record_is_read_once_and_a_write_is_seen(
    engine: AsyncEngine,
) -> None:
    clock = Clock()
    storage = DatabaseStorage(
        make_sessionmaker(engine), ttl_seconds=60, clock=clock, cache_size=100
    )
    reads: list[str] = []

    def note(*args: object) -> None:
        if str(args[2]).lstrip().upper().startswith("SELECT"):
            reads.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        for _ in range(3):  # a chat with nothing going on: one read, then none
            assert await storage.get_state(KEY) is None
        assert len(reads) == 1
        await storage.set_state(KEY, "LoginFlow:login")
        await storage.update_data(KEY, {"login": "alice"})
        assert await storage.get_state(KEY) == "LoginFlow:login"
        assert await storage.get_data(KEY) == {"login": "alice"}
        clock.now += timedelta(seconds=61)  # the copy expires with the record
        assert await storage.get_state(KEY) is None
        assert await rows(engine) == 0
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)


async def test_kept_in_process_a_read_that_raced_a_write_is_not_kept(
    engine: AsyncEngine,
) -> None:
    storage = DatabaseStorage(make_sessionmaker(engine), cache_size=100)
    started, release = asyncio.Event(), asyncio.Event()
    read_stored = storage._read_stored

    async def slow_read(key: StorageKey, now: datetime) -> object:
        found = await read_stored(key, now)
        started.set()
        await release.wait()
        return found

    storage._read_stored = slow_read  # type: ignore[assignment,method-assign]
    reading = asyncio.create_task(storage.get_state(KEY))
    await started.wait()  # it read "no record" and has not returned yet
    storage._read_stored = read_stored  # type: ignore[method-assign]
    await storage.set_state(KEY, "LoginFlow:login")
    release.set()
    assert await reading is None
    assert await storage.get_state(KEY) == "LoginFlow:login"
