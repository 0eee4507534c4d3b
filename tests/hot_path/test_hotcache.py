"""HotCache on its own: hits cost no read, the TTL bounds staleness, the size is bounded, a
change drops the entry at once, and a read that raced a change does not bring it back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.services.hotcache import MAX_ENTRIES, TTL_SECONDS, HotCache
from bot.services.lastseen import LastSeen
from bot.storage.engine import make_sessionmaker
from bot.storage.models import Chat
from bot.storage.owners import Access, OwnerStore
from bot.storage.store import Store

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ADMIN = 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingOwners(OwnerStore):
    """The real store, counting access reads; `hold` keeps a read waiting until released."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(make_sessionmaker(engine))
        self.reads = 0
        self.hold: asyncio.Event | None = None
        self.reading = asyncio.Event()

    async def access(self, user_id: int) -> Access:
        self.reads += 1
        found = await super().access(user_id)
        if self.hold is not None:
            self.reading.set()
            await self.hold.wait()
        return found


class CountingStore(Store):
    def __init__(self, store: Store) -> None:
        super().__init__(store._sessionmaker, store._cipher)
        self.touches = 0

    async def touch_chat(
        self, chat_id: int, user_id: int | None, language_code: str | None, now: datetime
    ) -> str | None:
        self.touches += 1
        return await super().touch_chat(chat_id, user_id, language_code, now)


async def chat_row(engine: AsyncEngine, chat_id: int) -> Chat | None:
    async with make_sessionmaker(engine)() as db:
        return await db.get(Chat, chat_id)


def make(
    store: Store,
    owners: OwnerStore,
    clock: Clock,
    *,
    ttl: float = TTL_SECONDS,
    max_entries: int = MAX_ENTRIES,
) -> tuple[HotCache, CountingStore, LastSeen]:
    counting = CountingStore(store)
    last_seen = LastSeen(counting)
    cache = HotCache(counting, owners, last_seen, ttl=ttl, max_entries=max_entries, clock=clock)
    return cache, counting, last_seen


async def test_access_is_read_once_then_served_until_the_ttl(
    engine: AsyncEngine, store: Store
) -> None:
    owners, clock = CountingOwners(engine), Clock()
    cache, _, _ = make(store, owners, clock, ttl=30)
    await owners.set_access(7, admin_id=ADMIN, now=NOW, banned=True)
    for _ in range(5):
        assert (await cache.access(7)).banned
    assert owners.reads == 1
    # Changed behind the cache's back (another instance, no Redis): stale until the TTL.
    await owners.set_access(7, admin_id=ADMIN, now=NOW, banned=False)
    clock.now += 29
    assert (await cache.access(7)).banned
    clock.now += 2
    assert not (await cache.access(7)).banned
    assert owners.reads == 2


async def test_a_change_made_here_is_seen_at_once(engine: AsyncEngine, store: Store) -> None:
    owners, clock = CountingOwners(engine), Clock()
    cache, _, _ = make(store, owners, clock)
    assert not (await cache.access(7)).banned
    await owners.set_access(7, admin_id=ADMIN, now=NOW, banned=True)
    await cache.access_changed(7)
    assert (await cache.access(7)).banned


async def test_a_read_that_raced_a_change_is_not_kept(engine: AsyncEngine, store: Store) -> None:
    owners, clock = CountingOwners(engine), Clock()
    cache, _, _ = make(store, owners, clock)
    owners.hold = asyncio.Event()
    reading = asyncio.create_task(cache.access(7))
    await owners.reading.wait()  # it read "not banned" and has not returned yet
    await owners.set_access(7, admin_id=ADMIN, now=NOW, banned=True)
    await cache.access_changed(7)
    owners.hold.set()
    assert not (await reading).banned  # what it read, but not kept:
    owners.hold = None
    assert (await cache.access(7)).banned
    assert owners.reads == 2


async def test_size_is_bounded_least_recently_used_go_first(
    engine: AsyncEngine, store: Store
) -> None:
    owners, clock = CountingOwners(engine), Clock()
    cache, counting, _ = make(store, owners, clock, max_entries=3)
    for user in range(100):
        await cache.access(user)
        await cache.chat_seen(user, user, "en", NOW)
    assert len(cache._access) == 3 and len(cache._chats) == 3
    reads, touches = owners.reads, counting.touches
    await cache.access(99)
    await cache.chat_seen(99, 99, "en", NOW)
    assert (owners.reads, counting.touches) == (reads, touches)  # recent: still there
    await cache.access(0)
    await cache.chat_seen(0, 0, "en", NOW)
    assert (owners.reads, counting.touches) == (reads + 1, touches + 1)  # evicted long ago


async def test_a_chat_is_written_at_once_the_first_time_then_in_batches(
    engine: AsyncEngine, store: Store
) -> None:
    owners, clock = CountingOwners(engine), Clock()
    cache, counting, last_seen = make(store, owners, clock)
    assert await cache.chat_seen(5, 5, "en", NOW) is None
    assert await store.chat_languages(5) == (None, "en")  # the row exists before any handler
    later = NOW + timedelta(minutes=3)
    assert await cache.chat_seen(5, 5, "de", later) is None
    assert counting.touches == 1 and last_seen.pending == 1
    assert await store.chat_languages(5) == (None, "en")  # not yet written
    assert await last_seen.flush() == 1
    assert await store.chat_languages(5) == (None, "de")
    row = await chat_row(engine, 5)
    assert row is not None and row.last_seen_at == later


async def test_language_chosen_here_is_used_at_once(engine: AsyncEngine, store: Store) -> None:
    owners, clock = CountingOwners(engine), Clock()
    cache, counting, _ = make(store, owners, clock)
    assert await cache.chat_seen(5, 5, "en", NOW) is None
    await cache.set_chat_language(5, "ru", NOW)
    assert await cache.chat_seen(5, 5, "en", NOW) == "ru"
    assert counting.touches == 1
    assert await store.chat_languages(5) == ("ru", "en")


async def test_a_forgotten_chat_is_not_written_back(engine: AsyncEngine, store: Store) -> None:
    owners, clock = CountingOwners(engine), Clock()
    cache, counting, last_seen = make(store, owners, clock)
    await cache.chat_seen(5, 5, "en", NOW)
    await cache.chat_seen(5, 5, "en", NOW + timedelta(seconds=1))
    await owners.forget_chat(5, 5)
    await cache.chat_forgotten(5)
    assert last_seen.pending == 0
    await last_seen.flush()
    assert await chat_row(engine, 5) is None
    await cache.chat_seen(5, 5, "en", NOW + timedelta(seconds=2))  # writes again: a new row
    assert counting.touches == 2 and await chat_row(engine, 5) is not None
