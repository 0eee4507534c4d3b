"""`python -m bot` stopped while a login waits for its password, and started again: the
password typed next is deleted and used, as if the bot had never stopped."""

from __future__ import annotations

from pathlib import Path

from bot.storage.crypto import generate_key
from tests.e2e.test_bot_process import CHAT, BotProcess, bot_env, say, t
from tests.fakes.spaces_server import FakeSpaces
from tests.fakes.telegram_server import FakeTelegram


async def test_a_login_survives_a_restart_of_the_process(
    tg: FakeTelegram, fake_spaces: FakeSpaces, tmp_path: Path
) -> None:
    env = bot_env(tg, fake_spaces, tmp_path, generate_key())
    bot = BotProcess(env)
    await bot.start()
    try:
        await tg.wait_for_call("setMyCommands", timeout=60)
        await say(tg, "/login", t("login-ask-login")[:30])
        await say(tg, "alice", "alice")
        assert await bot.stop() == 0

        bot = BotProcess(env)
        await bot.start()
        mark = tg.mark()
        update = tg.send_message("secret123", chat_id=CHAT)
        await tg.wait_for_call(
            "sendMessage",
            predicate=lambda c: "Alice" in (c.params.get("text") or ""),
            after=mark,
            timeout=60,
        )
        deletes = [c for c in tg.calls[mark:] if c.method == "deleteMessage"]
        assert [int(c.params["message_id"]) for c in deletes] == [update["message"]["message_id"]]
        assert len(fake_spaces.state.sids_of(1001)) == 1  # logged in with that password
    finally:
        assert await bot.stop() == 0
    assert "Traceback" not in bot.stderr.decode()
