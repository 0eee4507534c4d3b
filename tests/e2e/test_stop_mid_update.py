"""`python -m bot` stopped (SIGTERM) while an update is still being handled: the update is
finished (a login that Spaces answers slowly completes) and answered before anything it
needs closes, with Redis holding its conversation lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.storage.crypto import generate_key
from tests.e2e.test_bot_process import CHAT, BotProcess, bot_env, fakes, say, t  # noqa: F401
from tests.e2e.test_hot_path_process import no_locks
from tests.external import redis_url  # noqa: F401 - fixture
from tests.fakes.spaces_server import FakeSpaces
from tests.fakes.telegram_server import FakeTelegram
from tests.watch.test_outbox import eventually


async def test_an_update_in_hand_at_sigterm_is_finished_and_answered(
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
        await say(tg, "/login", t("login-ask-login")[:30])
        await say(tg, "alice", t("login-ask-password", login="alice")[:15])
        spaces.state.slow_seconds = 2.0  # within the bot's SPACES_TIMEOUT_SECONDS (3)
        spaces.state.set_mode("slow")  # Spaces answers the login, but slowly
        asked = len(spaces.state.calls)
        mark = tg.mark()
        tg.send_message("secret123", chat_id=CHAT)
        await eventually(lambda: len(spaces.state.calls) > asked, limit=30)
        assert bot.proc is not None
        bot.proc.terminate()  # SIGTERM while the password's update waits for Spaces
        # The update is finished: the login went through and the person is told so.
        answer = await tg.wait_for_call(
            "sendMessage",
            predicate=lambda c: c.params.get("chat_id") in (CHAT, str(CHAT)),
            after=mark,
            timeout=30,
        )
        assert "Alice" in (answer.params.get("text") or ""), answer.params
        code = await asyncio.wait_for(bot.wait(), 30)
    finally:
        if bot.proc is not None and bot.proc.returncode is None:
            bot.proc.kill()
            await bot.proc.wait()
    log = bot.stderr.decode()
    assert code == 0, log
    assert "Traceback" not in log and "cut short" not in log, log
    assert await no_locks(redis_url)()  # its conversation lock was released
    # And the session it made is kept: a restart knows it.
    again = BotProcess(env)
    await again.start()
    try:
        await tg.wait_for_call("setMyCommands", after=mark, timeout=60)
        await say(tg, "/status", "Alice")
    finally:
        assert await again.stop() == 0
