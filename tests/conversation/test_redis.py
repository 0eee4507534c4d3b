"""Conversation state in Redis (several bot processes): the flow works, no password in it,
every record expires, and the stray-text marker has its own key."""

from __future__ import annotations

from aiogram.fsm.storage.redis import RedisStorage

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
        raw = b"".join([await storage.redis.get(k) or b"" for k in keys])
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
