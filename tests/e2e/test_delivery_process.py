"""`python -m bot` stopped with SIGTERM in the middle of a burst of expiry notices and
started again: every chat is told exactly once."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.storage.crypto import Cipher, generate_key
from bot.storage.engine import create_engine, make_sessionmaker, migrate
from bot.storage.store import Store
from tests.conftest import spaces_session
from tests.e2e.test_bot_process import BotProcess, bot_env, fakes  # noqa: F401  (fixture)
from tests.fakes.spaces_server import FakeSpaces
from tests.fakes.telegram_server import FakeTelegram

CHATS = range(5001, 5061)  # 60 chats whose sessions Spaces no longer knows


async def seed(data_dir: Path, key: str) -> None:
    """The database of a bot that linked these chats earlier (the SIDs are unknown to the
    fake Spaces, so the first sweep finds every session ended)."""
    engine = create_engine(f"sqlite+aiosqlite:///{(data_dir / 'bot.sqlite3').as_posix()}")
    try:
        await migrate(engine)
        store = Store(make_sessionmaker(engine), Cipher.from_strings([key]))
        await store.verify_or_create_canary()
        now = datetime.now(UTC)
        for chat_id in CHATS:
            session = spaces_session(f"{chat_id:016d}", f"user{chat_id}", nid=chat_id)
            await store.save_session(chat_id, chat_id, session, now, next_check_at=now)
    finally:
        await engine.dispose()


def told(tg: FakeTelegram) -> list[int]:
    return [len(tg.sent_messages(chat_id)) for chat_id in CHATS]


async def until(condition, limit: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.05)


async def test_sigterm_mid_burst_then_restart_tells_every_chat_exactly_once(
    fakes: tuple[FakeTelegram, FakeSpaces],  # noqa: F811
    tmp_path: Path,
) -> None:
    tg, spaces = fakes
    key = generate_key()
    env = bot_env(tg, spaces, tmp_path, key)
    env["TELEGRAM_RATE_PER_SECOND"] = "5"  # a burst of 60 takes 12 s: time to stop it midway
    env["SPACES_RATE_PER_SECOND"] = "0"  # the one sweep finds all 60 ended at once
    (tmp_path / "data").mkdir()
    await seed(tmp_path / "data", key)

    first = BotProcess(env)
    await first.start()
    await until(lambda: sum(told(tg)) >= 10, 60)
    stopped_at = time.monotonic()
    assert await first.stop(signal.SIGTERM) == 0
    assert time.monotonic() - stopped_at < 10
    after_stop = told(tg)
    assert 10 <= sum(after_stop) < len(CHATS)  # stopped mid-burst
    assert max(after_stop) == 1

    second = BotProcess(env)
    await second.start()
    try:
        await until(lambda: sum(told(tg)) >= len(CHATS), 60)
        await asyncio.sleep(1.0)  # a few more rounds of the outbox: nothing goes out twice
    finally:
        assert await second.stop(signal.SIGTERM) == 0
    assert told(tg) == [1] * len(CHATS)
    with sqlite3.connect(tmp_path / "data" / "bot.sqlite3") as db:
        states = dict(db.execute("SELECT notice, count(*) FROM remote_sessions GROUP BY notice"))
    assert states == {"sent": len(CHATS)}
