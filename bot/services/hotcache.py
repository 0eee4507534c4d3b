"""What every update needs before any handler runs, kept in process so that an update costs
no database round trip: a person's access (allowed, banned) and what is known of a private
chat (its row exists, the language it chose with /language).

Two kinds of fact (`Fact`), each in its own bounded cache: at most `MAX_ENTRIES` entries,
the least recently used go first, and none lives longer than `TTL_SECONDS`. A change made
by this process drops the entry here at once; with Redis the change is also published on one
channel per bot and every instance drops its entry. A message missed (Redis away, or no
Redis at all with several instances) delays a change elsewhere by the TTL at most.

A chat's later updates only record when it wrote (`LastSeen`, written in batches); its first
update in this process, or the first after its entry went, is written at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from cachetools import TTLCache

from bot.services.lastseen import LastSeen
from bot.services.watchdog import pause_or_stop
from bot.storage.owners import Access, OwnerStore
from bot.storage.store import Store

log = logging.getLogger(__name__)

# How stale a fact may get on an instance that missed a change (the safety net).
TTL_SECONDS = 30.0
# Per kind of fact; a flood of distinct chats evicts the idle ones, never grows memory.
MAX_ENTRIES = 10_000
REDIS_TIMEOUT_SECONDS = 2.0
MAX_RETRY_SECONDS = 60.0


class Fact(StrEnum):
    """What a cache entry holds, and what a published change names."""

    ACCESS = "access"  # keyed by Telegram user id
    CHAT = "chat"  # keyed by chat id


@dataclass(frozen=True, slots=True)
class KnownChat:
    """A private chat whose row exists, and the language it chose (None: not chosen)."""

    language: str | None


class Invalidations(Protocol):
    """How instances tell each other that a fact changed."""

    async def publish(self, fact: Fact, key: int) -> None:
        """Never raises: a change not told is caught up with by the TTL."""

    async def listen(self, heard: Callable[[Fact, int], None], ready: Callable[[], None]) -> None:
        """Calls `ready` once subscribed, then `heard` for each change another instance
        published; runs until cancelled, raises when the connection fails."""


def invalidation_channel(bot_id: int) -> str:
    return f"spaces-bridge-bot:{bot_id}:hot-cache"


class HotCache:
    def __init__(
        self,
        store: Store,
        owners: OwnerStore,
        last_seen: LastSeen,
        *,
        invalidations: Invalidations | None = None,
        ttl: float = TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        retry_seconds: float = 1.0,
    ) -> None:
        self._store = store
        self._owners = owners
        self._last_seen = last_seen
        self._invalidations = invalidations
        self._access: TTLCache[int, Access, float] = TTLCache(max_entries, ttl, timer=clock)
        self._chats: TTLCache[int, KnownChat, float] = TTLCache(max_entries, ttl, timer=clock)
        # Bumped by every drop: a read that began before a change does not fill the cache.
        self._generation = 0
        self._listening = asyncio.Event()
        self._retry = retry_seconds

    # -- reads on the hot path --------------------------------------------------------------

    async def access(self, user_id: int) -> Access:
        found = self._access.get(user_id)
        if found is not None:
            return found
        generation = self._generation
        access = await self._owners.access(user_id)
        if generation == self._generation:
            self._access[user_id] = access
        return access

    async def chat_seen(
        self, chat_id: int, user_id: int | None, language_code: str | None, at: datetime
    ) -> str | None:
        """The private chat wrote: recorded (at once the first time, so that its row exists
        before any handler runs; in the next batch after that). Returns the language it
        chose with /language, if any."""
        known = self._chats.get(chat_id)
        if known is not None:
            self._last_seen.record(chat_id, user_id, language_code, at)
            return known.language
        generation = self._generation
        language = await self._store.touch_chat(chat_id, user_id, language_code, at)
        self._last_seen.discard(chat_id)  # older than what was just written
        if generation == self._generation:
            self._chats[chat_id] = KnownChat(language)
        return language

    # -- changes ----------------------------------------------------------------------------

    async def set_chat_language(self, chat_id: int, language: str, at: datetime) -> None:
        await self._store.set_chat_language(chat_id, language, at)
        self.drop(Fact.CHAT, chat_id)
        self._chats[chat_id] = KnownChat(language)
        await self._tell(Fact.CHAT, chat_id)

    async def access_changed(self, user_id: int) -> None:
        """Called once an owner's decision about `user_id` is stored."""
        self.drop(Fact.ACCESS, user_id)
        await self._tell(Fact.ACCESS, user_id)

    async def chat_forgotten(self, chat_id: int) -> None:
        """Called once the chat's row is deleted: nothing of it is kept or written later."""
        self.drop(Fact.CHAT, chat_id)
        self._last_seen.discard(chat_id)
        await self._tell(Fact.CHAT, chat_id)

    def drop(self, fact: Fact, key: int) -> None:
        self._generation += 1
        (self._access if fact is Fact.ACCESS else self._chats).pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._access.clear()
        self._chats.clear()

    async def _tell(self, fact: Fact, key: int) -> None:
        if self._invalidations is not None:
            await self._invalidations.publish(fact, key)

    # -- hearing other instances ------------------------------------------------------------

    async def listening(self) -> None:
        """Returns once changes published by other instances are heard."""
        await self._listening.wait()

    async def listen(self, stop: asyncio.Event) -> None:
        """The background task that hears other instances' changes; a lost connection is
        logged once and tried again with backoff, the TTL bounding staleness meanwhile."""
        if self._invalidations is None:
            return
        delay = self._retry
        failing = False

        def ready() -> None:
            nonlocal delay, failing
            # What was published while nobody listened is unknown: start afresh.
            self.clear()
            self._listening.set()
            delay = self._retry
            if failing:
                failing = False
                log.info("hearing other instances' changes again")

        while not stop.is_set():
            error = await _until_stopped(self._invalidations.listen(self.drop, ready), stop)
            self._listening.clear()
            if stop.is_set():
                return
            if not failing:
                failing = True
                log.warning(
                    "other instances' changes are not heard (%s); cached access and "
                    "languages may be up to %.0f s old until Redis answers",
                    error,
                    self._access.ttl,
                )
            await pause_or_stop(stop, delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)


async def _until_stopped(work: Any, stop: asyncio.Event) -> str:
    """Runs `work` until it ends or `stop` is set; says why it ended."""
    task: asyncio.Task[None] = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if task.cancelled():
        return "stopped"
    exc = task.exception()
    return "the subscription ended" if exc is None else _describe(exc)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class RedisInvalidations:
    """Changes told over Redis pub/sub, one channel per bot; each instance skips its own."""

    def __init__(self, url: str, channel: str) -> None:
        from redis.asyncio import Redis  # the redis extra; checked at startup (check_redis)

        self._redis = Redis.from_url(
            url,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            health_check_interval=30,
        )
        self._channel = channel
        self._sender = secrets.token_hex(6)
        self._failing = False

    async def publish(self, fact: Fact, key: int) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.publish(self._channel, f"{self._sender} {fact.value} {key}")
        except (RedisError, OSError, TimeoutError) as exc:
            if not self._failing:
                self._failing = True
                log.warning(
                    "a change was not told to other instances (%s); they see it within the "
                    "cache's TTL",
                    _describe(exc),
                )
            return
        self._failing = False

    async def listen(self, heard: Callable[[Fact, int], None], ready: Callable[[], None]) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._channel)
            ready()
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    self._hear(message.get("data"), heard)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped

    def _hear(self, data: object, heard: Callable[[Fact, int], None]) -> None:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        try:
            sender, fact, key = text.split()
            change = Fact(fact), int(key)
        except ValueError:
            log.warning("ignoring an unreadable cache change on %s", self._channel)
            return
        if sender != self._sender:
            heard(*change)

    async def close(self) -> None:
        await self._redis.aclose()
