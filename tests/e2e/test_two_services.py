"""`python -m bot` with one chat linked to Spaces and to sendspace, as a person would try it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from bot.storage.crypto import generate_key
from tests.e2e.test_bot_process import CHAT, BotProcess, bot_env, say, t
from tests.fakes.sendspace_server import API_KEY, FakeSendspace, md5_hex
from tests.fakes.spaces_server import FakeSpaces
from tests.fakes.telegram_server import FakeTelegram

PASSWORD = "s3cret-Pass"  # the fake sendspace's account "alice"


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTelegram, FakeSpaces, FakeSendspace]]:
    async with FakeTelegram() as tg, FakeSpaces() as spaces, FakeSendspace() as sendspace:
        yield tg, spaces, sendspace


async def test_one_chat_linked_to_spaces_and_sendspace(
    fakes: tuple[FakeTelegram, FakeSpaces, FakeSendspace], tmp_path: Path
) -> None:
    tg, spaces, sendspace = fakes
    interval = 2.0
    key = generate_key()
    env = bot_env(tg, spaces, tmp_path, key)
    env.update(
        SENDSPACE_API_KEY=API_KEY,
        SENDSPACE_BASE_URL=sendspace.url,
        CHECK_INTERVAL_SECONDS=str(interval),
        FLOOD_MAX_MESSAGES="100",
    )
    bot = BotProcess(env)
    await bot.start()
    try:
        await tg.wait_for_call("setMyCommands", timeout=20)
        await say(tg, "/login spaces", t("login-ask-login")[:30])
        await say(tg, "alice", "alice")
        await say(tg, "secret123", "Alice")

        await say(tg, "/login sendspace", t("login-ask-login", service="sendspace")[:30])
        await say(tg, "alice", "alice")
        mark = tg.mark()
        password = tg.send_message(PASSWORD, chat_id=CHAT)
        await tg.wait_for_call(
            "sendMessage",
            predicate=lambda c: "sendspace" in (c.params.get("text") or ""),
            after=mark,
            timeout=15,
        )
        deleted = [c.params["message_id"] for c in tg.calls_of("deleteMessage", after=mark)]
        assert deleted == [password["message"]["message_id"]]
        # Only the tokened password reached sendspace, never the password or its md5.
        calls = list(sendspace.state.calls)
        assert PASSWORD not in repr(calls) and md5_hex(PASSWORD) not in repr(calls)
        [login] = [c for c in calls if c.method == "auth.login"]
        token = login.params["token"]
        assert login.params["tokened_password"] == md5_hex(token + md5_hex(PASSWORD))
        [session_key] = list(sendspace.state.live_sessions())

        reply = await say(tg, "/status", "sendspace")
        text = reply.params["text"]
        assert "Spaces" in text and "Alice" in text and "alice" in text

        # The sendspace session ends: told once, naming sendspace; Spaces goes on.
        mark = tg.mark()
        sendspace.state.expire(user="alice")
        notice = await tg.wait_for_call(
            "sendMessage",
            predicate=lambda c: "sendspace" in (c.params.get("text") or ""),
            after=mark,
            timeout=3 * interval + 2.0,
        )
        assert "alice" in notice.params["text"]
        spaces_checks = spaces.state.calls_summary()["counts"].get("check", 0)
        await asyncio.sleep(2 * interval)
        assert len(tg.sent_messages(CHAT, after=mark)) == 1
        assert spaces.state.calls_summary()["counts"].get("check", 0) > spaces_checks
        assert spaces.state.sids_of(1001)  # the Spaces session is alive and untouched
        reply = await say(tg, "/status", "sendspace")
        assert t("spaces-status-online") in reply.params["text"]
    finally:
        code = await bot.stop()
    assert code == 0
    log = bot.stderr.decode()
    assert "Traceback" not in log
    for secret in (PASSWORD, session_key, key, tg.token):
        assert secret not in log
    db = tmp_path / "data" / "bot.sqlite3"
    assert session_key.encode() not in db.read_bytes()
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT service, account_id, state FROM remote_sessions").fetchall()
    assert sorted(rows) == [("sendspace", "alice", "ended"), ("spaces", "1001", "active")]
