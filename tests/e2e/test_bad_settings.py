"""`python -m bot` with a wrong setting: exit status 2, one line naming it, no traceback,
and Telegram is never asked (each is found before it)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import EXAMPLE_BOT_TOKEN
from bot.storage.crypto import generate_key
from tests.e2e.test_bot_process import BotProcess, bot_env
from tests.fakes.spaces_server import FakeSpaces
from tests.fakes.telegram_server import FakeTelegram


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


@pytest.mark.parametrize(
    "name", ["BOT_TOKEN", "DATABASE_URL", "DATA_DIR", "REDIS_URL", "HEALTH_PORT"]
)
async def test_a_bad_setting_stops_the_bot_with_one_line(
    tg: FakeTelegram, fake_spaces: FakeSpaces, tmp_path: Path, taken_port: int, name: str
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    value = {
        "BOT_TOKEN": EXAMPLE_BOT_TOKEN,
        "DATABASE_URL": f"postgresql+asyncpg://bot:pw@127.0.0.1:{closed_port()}/bot",
        "DATA_DIR": str(a_file / "data"),  # under a file: no folder can be made there
        "REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0",
        "HEALTH_PORT": str(taken_port),
    }[name]
    bot = BotProcess({**bot_env(tg, fake_spaces, tmp_path, generate_key()), name: value})
    await bot.start()
    try:
        code = await bot.wait()
    finally:
        if bot.proc is not None and bot.proc.returncode is None:
            bot.proc.kill()  # it did not stop by itself: never leave it running
            await bot.proc.wait()
    log = bot.stderr.decode()
    lines = [line for line in log.splitlines() if line.strip()]
    assert code == 2, log
    assert len(lines) == 1 and name in lines[0], log
    assert "Traceback" not in log and ":pw@" not in log
    assert [c for c in tg.calls if c.method == "getMe"] == []  # found before Telegram


async def test_a_second_bot_on_the_same_sqlite_file_is_refused_in_one_line(
    tg: FakeTelegram, fake_spaces: FakeSpaces, tmp_path: Path
) -> None:
    env = bot_env(tg, fake_spaces, tmp_path, generate_key())
    first = BotProcess(env)
    await first.start()
    try:
        await tg.wait_for_call("setMyCommands", timeout=60)
        second = BotProcess(env)
        await second.start()
        code = await second.wait()
        log = second.stderr.decode()
        lines = [line for line in log.splitlines() if line.strip()]
        assert code == 2, log
        assert len(lines) == 1 and "SQLite" in lines[0] and "PostgreSQL" in lines[0], log
        assert str(first.proc.pid if first.proc else "") in lines[0]  # who holds it
        # The first one goes on untouched, and once it has stopped the file is free again.
        assert first.proc is not None and first.proc.returncode is None
    finally:
        assert await first.stop() == 0
    again = BotProcess(env)
    await again.start()
    try:
        mark = tg.mark()
        await tg.wait_for_call("setMyCommands", after=mark, timeout=60)
    finally:
        assert await again.stop() == 0
