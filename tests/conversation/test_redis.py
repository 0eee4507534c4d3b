"""Conversation state in Redis (several bot processes): the flow works, no password in it,
every record expires, the stray-text marker has its own key, and one person's updates are
handled one at a time across processes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiogram import Dispatcher
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from aiogram.types import TelegramObject, Update

from bot.app import build_dispatcher, build_fsm_storage
from bot.config import Settings
from bot.handlers.login import LoginFlow
from tests.conftest import only_session
from tests.conversation.conftest import CHAT, Harness, texts
from tests.external import redis_url  # noqa: F401 - fixture


def redis_storage(h: Harness, url: str) -> RedisStorage:
    settings: Settings = h.services.settings.model_copy(
        update={"redis_url": url, "conversation_ttl_seconds": 600}
    )
    storage = build_fsm_storage(settings, sessionmaker=None)  # type: ignore[arg-type]
    assert isinstance(storage, RedisStorage)
    return storage


async def test_login_with_captcha_through_redis(h: Harness, redis_url: str) -> None:  # noqa: F811
    storage = redis_storage(h, redis_url)
    again = redis_storage(h, redis_url)
    try:
        h.dp = build_dispatcher(h.services, storage)
        h.spaces.state.set_captcha("alice", True, "4242")
        await h.say("/login")
        await h.say("alice")
        await h.say("secret123")
        assert await h.state() == LoginFlow.captcha.state
        keys = await storage.redis.keys("*")
        # The storage's client does not decode responses: values come back as bytes.
        raw = b"".join([cast(bytes | None, await storage.redis.get(k)) or b"" for k in keys])
        assert raw and b"secret123" not in raw
        ttls = [await storage.redis.ttl(k) for k in keys]
        assert all(0 < ttl <= 600 for ttl in ttls), ttls
        # another process (a second Dispatcher on the same Redis) continues the conversation
        h.dp = build_dispatcher(h.services, again)
        await h.say("4242")
        assert await h.state() is None
        assert await only_session(h.store, CHAT) is not None
    finally:
        await storage.close()
        await again.close()


async def test_unasked_text_after_a_login_step_is_deleted_with_redis(
    h: Harness,
    redis_url: str,  # noqa: F811
) -> None:
    storage = redis_storage(h, redis_url)
    try:
        h.dp = build_dispatcher(h.services, storage)
        await h.say("/login")
        await h.say("/cancel")
        calls = await h.say("secret123")
        assert calls[0].method == "deleteMessage"
        assert texts(calls) == [h.t("stray-text-deleted")]
    finally:
        await storage.close()


Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


async def test_two_dispatchers_on_one_redis_take_one_persons_updates_in_turn(
    h: Harness,
    redis_url: str,  # noqa: F811
) -> None:
    storages = [redis_storage(h, redis_url), redis_storage(h, redis_url)]
    order: list[str] = []
    gate = asyncio.Event()
    entered = asyncio.Event()

    def recorder(name: str) -> Callable[[Handler, TelegramObject, dict[str, Any]], Any]:
        # Added after the Dispatcher's own FSM middleware, so it runs inside the lock.
        async def record(handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
            chat = data["event_chat"].id
            order.append(f"{name} {chat} in")
            if name == "first":
                entered.set()
                await gate.wait()
            try:
                return await handler(event, data)
            finally:
                order.append(f"{name} {chat} out")

        return record

    try:
        dps: list[Dispatcher] = []
        for name, storage in zip(("first", "second"), storages, strict=True):
            dp = build_dispatcher(h.services, storage)
            assert isinstance(dp.fsm.events_isolation, RedisEventIsolation)
            dp.update.outer_middleware(recorder(name))
            dps.append(dp)

        def feed(dp: Dispatcher, chat_id: int) -> asyncio.Task[Any]:
            raw = h.tg.send_message("/help", chat_id=chat_id)
            update = Update.model_validate(raw, context={"bot": h.bot})
            return asyncio.create_task(dp.feed_update(h.bot, update))

        first = feed(dps[0], CHAT)
        await asyncio.wait_for(entered.wait(), 10)
        second = feed(dps[1], CHAT)
        await feed(dps[1], CHAT + 1)  # somebody else is not held up
        await asyncio.sleep(0.5)  # time enough for the second update to reach the lock
        assert order == [f"first {CHAT} in", f"second {CHAT + 1} in", f"second {CHAT + 1} out"]
        gate.set()
        await asyncio.gather(first, second)
        assert order[3:] == [f"first {CHAT} out", f"second {CHAT} in", f"second {CHAT} out"]
    finally:
        gate.set()
        for storage in storages:
            await storage.close()


async def test_a_login_hopping_between_two_dispatchers_works(
    h: Harness,
    redis_url: str,  # noqa: F811
) -> None:
    storages = [redis_storage(h, redis_url), redis_storage(h, redis_url)]
    try:
        dps = [build_dispatcher(h.services, storage) for storage in storages]
        h.spaces.state.set_captcha("alice", True, "4242")
        for turn, text in enumerate(["/login", "alice", "secret123", "4242"]):
            h.dp = dps[turn % 2]  # every message lands on the other instance
            await h.say(text)
        assert await h.state() is None
        assert await only_session(h.store, CHAT) is not None
    finally:
        for storage in storages:
            await storage.close()
