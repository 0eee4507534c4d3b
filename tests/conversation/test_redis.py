"""Conversation state in Redis (several bot processes): the flow works, no password in it."""

from __future__ import annotations

from aiogram.fsm.storage.redis import RedisStorage

from bot.app import build_dispatcher
from bot.handlers.login import LoginFlow
from tests.conftest import only_session
from tests.conversation.conftest import CHAT, Harness
from tests.external import redis_url  # noqa: F401 - fixture


async def test_login_with_captcha_through_redis(h: Harness, redis_url: str) -> None:  # noqa: F811
    storage = RedisStorage.from_url(redis_url)
    try:
        h.dp = build_dispatcher(h.services, storage)
        h.spaces.state.set_captcha("alice", True, "4242")
        await h.say("/login")
        await h.say("alice")
        await h.say("secret123")
        assert await h.state() == LoginFlow.captcha.state
        raw = b"".join([await storage.redis.get(k) or b"" for k in await storage.redis.keys("*")])
        assert raw and b"secret123" not in raw
        # another process (a second Dispatcher on the same Redis) continues the conversation
        h.dp = build_dispatcher(h.services, RedisStorage(storage.redis))
        await h.say("4242")
        assert await h.state() is None
        assert await only_session(h.store, CHAT) is not None
    finally:
        await storage.close()
