"""Changes told across instances through real Redis pub/sub: two caches on one database,
each with its own connection; a Redis that does not answer breaks nothing."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.services.hotcache import Fact, HotCache, RedisInvalidations, invalidation_channel
from bot.services.lastseen import LastSeen
from bot.storage.engine import make_sessionmaker
from bot.storage.owners import OwnerStore
from bot.storage.store import Store
from tests.external import redis_url  # noqa: F401 - fixture
from tests.watch.test_outbox import eventually

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ADMIN = 1
# Long enough that only a told change can explain an entry gone during a test.
NO_TTL = 3600.0


class Instance:
    def __init__(self, store: Store, owners: OwnerStore, url: str, channel: str) -> None:
        self.invalidations = RedisInvalidations(url, channel)
        self.cache = HotCache(
            store, owners, LastSeen(store), invalidations=self.invalidations, ttl=NO_TTL
        )
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.cache.listen(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)
        await self.invalidations.close()


@pytest.fixture
async def two(
    engine: AsyncEngine,
    store: Store,
    redis_url: str,  # noqa: F811
) -> AsyncIterator[tuple[Instance, Instance]]:
    owners = OwnerStore(make_sessionmaker(engine))
    channel = invalidation_channel(424242)
    a, b = (Instance(store, owners, redis_url, channel) for _ in range(2))
    try:
        await asyncio.wait_for(asyncio.gather(a.cache.listening(), b.cache.listening()), 10)
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_a_ban_on_one_instance_reaches_the_other(
    two: tuple[Instance, Instance], engine: AsyncEngine
) -> None:
    a, b = two
    owners = OwnerStore(make_sessionmaker(engine))
    assert not (await a.cache.access(7)).banned and not (await b.cache.access(7)).banned
    await owners.set_access(7, admin_id=ADMIN, now=NOW, banned=True)
    assert not (await b.cache.access(7)).banned  # cached: the database alone does not tell
    await a.cache.access_changed(7)

    async def b_sees_it() -> bool:
        return (await b.cache.access(7)).banned

    await eventually(b_sees_it)


async def test_a_language_chosen_on_one_instance_reaches_the_other(
    two: tuple[Instance, Instance],
) -> None:
    a, b = two
    assert await a.cache.chat_seen(5, 5, "en", NOW) is None
    assert await b.cache.chat_seen(5, 5, "en", NOW) is None
    await a.cache.set_chat_language(5, "ru", NOW)
    assert await a.cache.chat_seen(5, 5, "en", NOW) == "ru"

    async def b_speaks_it() -> bool:
        return await b.cache.chat_seen(5, 5, "en", NOW) == "ru"

    await eventually(b_speaks_it)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_redis_away_breaks_nothing_and_is_said_once(
    engine: AsyncEngine,
    store: Store,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owners = OwnerStore(make_sessionmaker(engine))
    invalidations = RedisInvalidations(f"redis://127.0.0.1:{closed_port()}/0", "x")
    cache = HotCache(
        store, owners, LastSeen(store), invalidations=invalidations, retry_seconds=0.01
    )
    stop = asyncio.Event()
    attempts = 0
    listen = invalidations.listen

    async def counted(heard: Callable[[Fact, int], None], ready: Callable[[], None]) -> None:
        nonlocal attempts
        attempts += 1
        await listen(heard, ready)

    monkeypatch.setattr(invalidations, "listen", counted)
    with caplog.at_level(logging.WARNING):
        task = asyncio.create_task(cache.listen(stop))
        await eventually(lambda: attempts >= 3)  # it keeps trying
        await owners.set_access(7, admin_id=ADMIN, now=NOW, banned=True)
        await cache.access_changed(7)  # the change cannot be told: no error for the caller
        assert (await cache.access(7)).banned
        assert await cache.chat_seen(5, 5, "en", NOW) is None
        stop.set()
        await asyncio.wait_for(task, 10)
    await invalidations.close()
    heard = [r for r in caplog.records if "changes are not heard" in r.getMessage()]
    told = [r for r in caplog.records if "not told to other instances" in r.getMessage()]
    assert len(heard) == 1 and len(told) == 1
