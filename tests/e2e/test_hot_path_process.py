"""`python -m bot` with REDIS_URL: a ban told on the bot's channel by another instance applies
to the next update, and the last seen still waiting in the batch is written at SIGTERM."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from redis.asyncio import Redis

from bot.services.hotcache import Fact, RedisInvalidations, invalidation_channel
from bot.storage.crypto import generate_key
from tests.e2e.test_bot_process import CHAT, BotProcess, bot_env, fakes, say, t  # noqa: F401
from tests.external import redis_url  # noqa: F401 - fixture
from tests.fakes.spaces_server import FakeSpaces
from tests.fakes.telegram_server import FakeTelegram
from tests.watch.test_outbox import eventually


def no_locks(url: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        client = Redis.from_url(url)
        try:
            return not await client.keys("*lock*")
        finally:
            await client.aclose()

    return check


def chat_row(tmp_path: Path) -> tuple[str | None, str, str]:
    with sqlite3.connect(tmp_path / "data" / "bot.sqlite3") as db:
        found = db.execute(
            "SELECT language_code, first_seen_at, last_seen_at FROM chats WHERE chat_id = ?",
            (CHAT,),
        ).fetchone()
    assert found is not None
    return found[0], found[1], found[2]


async def test_a_ban_told_by_another_instance_and_the_last_batch_at_sigterm(
    fakes: tuple[FakeTelegram, FakeSpaces],  # noqa: F811
    tmp_path: Path,
    redis_url: str,  # noqa: F811
) -> None:
    tg, spaces = fakes
    env = bot_env(tg, spaces, tmp_path, generate_key())
    env["REDIS_URL"] = redis_url
    bot = BotProcess(env)
    await bot.start()
    try:
        await tg.wait_for_call("setMyCommands", timeout=60)
        await say(tg, "/status", t("status-not-linked"))  # the chat's row is written now
        mark = tg.mark()
        tg.send_message("/status", chat_id=CHAT, language_code="de")  # recorded for the batch
        await tg.wait_for_call("sendMessage", after=mark, timeout=45)
        # Its access is cached now. Another instance bans the person in the database...
        with sqlite3.connect(tmp_path / "data" / "bot.sqlite3") as db:
            db.execute(
                "INSERT INTO people (user_id, allowed, banned, updated_at, updated_by) "
                "VALUES (?, 0, 1, ?, 1)",
                (CHAT, datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")),
            )
        # ...and tells the others on the bot's channel.
        other = RedisInvalidations(redis_url, invalidation_channel(int(tg.token.split(":")[0])))
        try:
            await other.publish(Fact.ACCESS, CHAT)
        finally:
            await other.close()
        await say(tg, "/status", t("access-banned", user_id=CHAT))
        # Stopped only once the update is done: its conversation lock in Redis is released.
        await eventually(no_locks(redis_url))
    finally:
        code = await bot.stop()
    assert code == 0
    assert "Traceback" not in bot.stderr.decode()
    assert chat_row(tmp_path)[0] == "de"
