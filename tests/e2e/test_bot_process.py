"""`python -m bot` as its own process against a fake Telegram and a fake Spaces on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from bot.locales import build_i18n
from bot.storage.crypto import generate_key
from bot.storage.engine import create_engine, downgrade
from tests.fakes.spaces_server import FakeSpaces
from tests.fakes.telegram_server import ApiCall, FakeTelegram

ROOT = Path(__file__).resolve().parents[2]
CHAT = 777
I18N = build_i18n()


def t(key: str, **params: object) -> str:
    """The sentence as the bot words it; about Spaces unless `service` says otherwise."""
    params.setdefault("service", "Spaces")
    return I18N.text(key, "en", **params)


class BotProcess:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.env = env
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr = b""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *self.args,
            cwd=self.env["BOT_CWD"],
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        _, self.stderr = await asyncio.wait_for(self.proc.communicate(), 20)
        return self.proc.returncode  # type: ignore[return-value]

    async def wait(self) -> int:
        assert self.proc is not None
        _, self.stderr = await asyncio.wait_for(self.proc.communicate(), 30)
        return self.proc.returncode  # type: ignore[return-value]


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTelegram, FakeSpaces]]:
    async with FakeTelegram() as tg, FakeSpaces() as spaces:
        yield tg, spaces


def bot_env(tg: FakeTelegram, spaces: FakeSpaces, workdir: Path, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_URL", "_KEY", "TOKEN"))}
    env.update(
        BOT_CWD=str(workdir),
        PYTHONPATH=str(ROOT),
        BOT_TOKEN=tg.token,
        TELEGRAM_API_URL=tg.url,
        SPACES_BASE_URL=spaces.url,
        SPACES_TIMEOUT_SECONDS="3",
        DATA_DIR=str(workdir / "data"),
        ENCRYPTION_KEY=key,
        LOG_LEVEL="INFO",
    )
    return env


async def say(
    tg: FakeTelegram, text: str, expect: str | None = None, method: str = "sendMessage"
) -> ApiCall:
    mark = tg.mark()
    tg.send_message(text, chat_id=CHAT)

    def matches(call: ApiCall) -> bool:
        if call.params.get("chat_id") not in (CHAT, str(CHAT)):
            return False
        body = call.params.get("text") or call.params.get("caption") or ""
        return expect is None or expect in body

    return await tg.wait_for_call(method, predicate=matches, after=mark, timeout=45)


async def test_login_captcha_status_logout_and_restart(
    fakes: tuple[FakeTelegram, FakeSpaces], tmp_path: Path
) -> None:
    tg, spaces = fakes
    key = generate_key()
    env = bot_env(tg, spaces, tmp_path, key)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        health_port = probe.getsockname()[1]
    env["HEALTH_PORT"] = str(health_port)
    bot = BotProcess(env)
    await bot.start()
    try:
        await tg.wait_for_call("setMyCommands", timeout=60)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{health_port}") as health:
            for _ in range(50):
                with contextlib.suppress(httpx.TransportError):
                    if (await health.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            ready = await health.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["database"] == "ok"
        # plain login
        await say(tg, "/login", t("login-ask-login")[:30])
        await say(tg, "alice", "alice")
        reply = await say(tg, "secret123", "Alice")
        assert "deleteMessage" in [c.method for c in tg.calls]
        # status, live
        reply = await say(tg, "/status", "Alice")
        assert "1001" in reply.params["text"]

        # stop and start again: the session survives the restart
        assert await bot.stop() == 0
        bot = BotProcess(env)
        await bot.start()
        checks = spaces.state.calls_summary()["counts"].get("check", 0)
        await say(tg, "/status", "Alice")
        assert spaces.state.calls_summary()["counts"]["check"] == checks + 1

        # login again through a captcha
        spaces.state.set_captcha("alice", True, "4242")
        await say(tg, "/login", t("login-ask-login")[:30])
        await say(tg, "alice", "alice")
        await say(tg, "secret123", t("captcha-ask"), method="sendPhoto")
        await say(tg, "9999", t("captcha-wrong"), method="sendPhoto")
        await say(tg, "4242", "Alice")
        assert len(spaces.state.sids_of(1001)) == 1  # the first session was logged out

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{health_port}") as health:
            metrics = (await health.get("/metrics")).text
        assert 'spaces_bot_updates_total{type="message"}' in metrics
        assert 'spaces_bot_sessions{state="active"} 1.0' in metrics

        # logout ends it at Spaces
        await say(tg, "/logout", t("logout-done", nickname="Alice"))
        assert spaces.state.sids_of(1001) == []
        await say(tg, "/status", t("status-not-linked"))
    finally:
        code = await bot.stop()
    assert code == 0
    log = bot.stderr.decode()
    assert "Traceback" not in log
    sids = {call.sid for call in spaces.state.calls if call.sid}
    assert sids  # the checks and the logout carried the sessions' SIDs
    for secret in (tg.token, "secret123", key, *sids):
        assert secret not in log
    db = (tmp_path / "data" / "bot.sqlite3").read_bytes()
    for secret in ("secret123", *sids):
        assert secret.encode() not in db


async def test_wrong_key_exits_2_with_one_line_and_changes_nothing(
    fakes: tuple[FakeTelegram, FakeSpaces], tmp_path: Path
) -> None:
    tg, spaces = fakes
    env = bot_env(tg, spaces, tmp_path, generate_key())
    bot = BotProcess(env)
    await bot.start()
    await tg.wait_for_call("setMyCommands", timeout=60)
    assert await bot.stop(signal.SIGINT) == 0
    db = tmp_path / "data" / "bot.sqlite3"
    before = db.read_bytes()

    bot = BotProcess({**env, "ENCRYPTION_KEY": generate_key()})
    await bot.start()
    assert await bot.wait() == 2
    lines = [line for line in bot.stderr.decode().splitlines() if line.strip()]
    assert len(lines) == 1 and "ENCRYPTION_KEY" in lines[0] and "Traceback" not in lines[0]
    assert db.read_bytes() == before


async def test_a_deleted_database_is_refused_until_told_it_is_new(
    fakes: tuple[FakeTelegram, FakeSpaces], tmp_path: Path
) -> None:
    tg, spaces = fakes
    env = bot_env(tg, spaces, tmp_path, "")
    del env["ENCRYPTION_KEY"]  # the key is generated into DATA_DIR
    bot = BotProcess(env)
    await bot.start()
    await tg.wait_for_call("setMyCommands", timeout=60)
    assert await bot.stop() == 0
    db = tmp_path / "data" / "bot.sqlite3"
    db.unlink()

    bot = BotProcess(env)
    await bot.start()
    assert await bot.wait() == 2
    lines = [line for line in bot.stderr.decode().splitlines() if line.strip()]
    assert len(lines) == 1 and "--new-database" in lines[0], lines
    assert not db.exists()

    bot = BotProcess(env, "--new-database")
    await bot.start()
    mark = tg.mark()
    await tg.wait_for_call("setMyCommands", after=mark, timeout=60)
    assert await bot.stop() == 0
    assert db.exists()


def dump(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return "\n".join(conn.iterdump())


async def test_a_wrong_key_stops_before_a_pending_migration(
    fakes: tuple[FakeTelegram, FakeSpaces], tmp_path: Path
) -> None:
    tg, spaces = fakes
    env = bot_env(tg, spaces, tmp_path, generate_key())
    bot = BotProcess(env)
    await bot.start()
    await tg.wait_for_call("setMyCommands", timeout=60)
    assert await bot.stop() == 0
    db = tmp_path / "data" / "bot.sqlite3"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (head,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    # As if the database came from a bot older than the newest migration.
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    await downgrade(engine, "-1")
    await engine.dispose()
    before = dump(db)

    bot = BotProcess({**env, "ENCRYPTION_KEY": generate_key()})
    await bot.start()
    assert await bot.wait() == 2
    assert "ENCRYPTION_KEY" in bot.stderr.decode()
    assert dump(db) == before
    assert f"'{head}'" not in before


async def test_expiry_is_reported_within_two_intervals_and_an_outage_says_nothing(
    fakes: tuple[FakeTelegram, FakeSpaces], tmp_path: Path
) -> None:
    tg, spaces = fakes
    interval = 2.0
    env = bot_env(tg, spaces, tmp_path, generate_key())
    env["CHECK_INTERVAL_SECONDS"] = str(interval)
    bot = BotProcess(env)
    await bot.start()
    try:
        await tg.wait_for_call("setMyCommands", timeout=60)
        await say(tg, "/login", t("login-ask-login")[:30])
        await say(tg, "alice", "alice")
        await say(tg, "secret123", "Alice")

        # Spaces down for several intervals: checks fail, nobody hears about it.
        spaces.state.set_mode("http500")
        mark = tg.mark()
        checks = spaces.state.calls_summary()["counts"].get("check", 0)
        await asyncio.sleep(3 * interval)
        assert spaces.state.calls_summary()["counts"].get("check", 0) > checks
        assert tg.sent_messages(after=mark) == []

        # Back up, then the session ends at Spaces: one notice, within two intervals.
        spaces.state.set_mode("ok")
        await asyncio.sleep(interval)
        mark = tg.mark()
        spaces.state.expire(nid=1001)
        notice = await tg.wait_for_call(
            "sendMessage",
            predicate=lambda c: "Alice" in (c.params.get("text") or ""),
            after=mark,
            timeout=2 * interval + 1.0,
        )
        relogin = notice.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        assert relogin.startswith("relogin:")  # names the account it logs in to again
        await asyncio.sleep(2 * interval)
        assert len(tg.sent_messages(CHAT, after=mark)) == 1

        # The button logs in again as the known nickname: only the password is asked.
        mark = tg.mark()
        tg.press_button(relogin, chat_id=CHAT)
        await tg.wait_for_call(
            "sendMessage", predicate=lambda c: "Alice" in (c.params.get("text") or ""), after=mark
        )
        await say(tg, "secret123", t("login-success", nickname="Alice", user_id=1001)[:20])
        reply = await say(tg, "/status", "Alice")
        assert t("spaces-status-online") in reply.params["text"]
    finally:
        code = await bot.stop()
    assert code == 0


async def test_a_refused_token_exits_2_with_one_line(
    fakes: tuple[FakeTelegram, FakeSpaces], tmp_path: Path
) -> None:
    tg, spaces = fakes
    env = bot_env(tg, spaces, tmp_path, generate_key())
    bot = BotProcess({**env, "BOT_TOKEN": "999:AAnotTheTokenTheFakeTelegramKnows000"})
    await bot.start()
    assert await bot.wait() == 2
    log = bot.stderr.decode()
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "BOT_TOKEN" in errors[0], log
    assert "Traceback" not in log and "notTheToken" not in log


async def test_sigterm_while_starting_exits_0(
    fakes: tuple[FakeTelegram, FakeSpaces], tmp_path: Path
) -> None:
    tg, spaces = fakes
    bot = BotProcess(bot_env(tg, spaces, tmp_path, generate_key()))
    await bot.start()
    assert bot.proc is not None
    await catches_sigterm(bot.proc.pid)  # python -m bot has begun; its imports take seconds
    assert await bot.stop() == 0


async def catches_sigterm(pid: int) -> None:
    """Wait until the process has its own SIGTERM handler (SigCgt in /proc), i.e. until our
    code runs: before that no program can choose what a signal does."""
    if sys.platform != "linux":
        await asyncio.sleep(1.0)
        return
    loop = asyncio.get_running_loop()
    status = Path(f"/proc/{pid}/status")
    deadline = loop.time() + 20.0
    while loop.time() < deadline:
        for line in status.read_text().splitlines():  # noqa: ASYNC240 - a /proc file
            if line.startswith("SigCgt:") and int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1:
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the bot never installed its SIGTERM handler")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_a_gzip_bomb_and_a_dripping_body_are_failed_logins(
    fakes: tuple[FakeTelegram, FakeSpaces], tmp_path: Path
) -> None:
    """1 GiB in a few kB, then a body that never ends: each is one failed login, and the
    bot stays small and keeps answering."""
    if sys.platform != "linux":
        pytest.skip("reads the bot's memory from /proc")
    tg, spaces = fakes
    env = {**bot_env(tg, spaces, tmp_path, generate_key()), "FLOOD_MAX_MESSAGES": "100"}
    bot = BotProcess(env)
    await bot.start()
    try:
        await tg.wait_for_call("setMyCommands", timeout=60)
        assert bot.proc is not None
        before = peak_rss_mib(bot.proc.pid)
        failed = t("login-failed", reason="")[:20]
        for mode in ("gzipbomb", "drip"):
            spaces.state.set_mode(mode)
            await say(tg, "/login", t("login-ask-login")[:30])
            await say(tg, "alice", "alice")
            await say(tg, "secret123", failed)
        spaces.state.set_mode("ok")
        await say(tg, "/login", t("login-ask-login")[:30])
        await say(tg, "alice", "alice")
        await say(tg, "secret123", "Alice")
        grown = peak_rss_mib(bot.proc.pid) - before
    finally:
        assert await bot.stop() == 0
    assert grown < 100, f"peak memory grew by {grown:.0f} MiB"
    assert "Traceback" not in bot.stderr.decode()


def text_to(chat: int, expect: str) -> Callable[[ApiCall], bool]:
    def matches(call: ApiCall) -> bool:
        return call.params.get("chat_id") == chat and expect in (call.params.get("text") or "")

    return matches


async def test_simultaneous_wrong_passwords_reach_spaces_at_most_the_limit(
    fakes: tuple[FakeTelegram, FakeSpaces], tmp_path: Path
) -> None:
    tg, spaces = fakes
    bot = BotProcess(bot_env(tg, spaces, tmp_path, generate_key()))
    chats = [9000 + n for n in range(40)]
    await bot.start()
    try:
        await tg.wait_for_call("setMyCommands", timeout=60)
        ask_password = t("login-ask-password", login="alice")[:15]
        for chat in chats:
            for text, expect in (("/login", t("login-ask-login")[:30]), ("alice", ask_password)):
                mark = tg.mark()
                tg.send_message(text, chat_id=chat)
                await tg.wait_for_call(
                    "sendMessage",
                    predicate=text_to(chat, expect),
                    after=mark,
                    timeout=45,
                )
        mark = tg.mark()
        for chat in chats:  # all at once: the bot polls them in one batch
            tg.send_message("wrong-password", chat_id=chat)
        for _ in range(300):
            answered = {c.params.get("chat_id") for c in tg.sent_messages(after=mark)}
            if answered >= set(chats):
                break
            await asyncio.sleep(0.1)
        assert answered >= set(chats)
    finally:
        assert await bot.stop() == 0
    assert spaces.state.calls_summary()["counts"]["login"] == 5  # LOGIN_MAX_FAILURES


async def test_a_person_in_russian_retries_a_wrong_password_under_the_flood_limit(
    fakes: tuple[FakeTelegram, FakeSpaces], tmp_path: Path
) -> None:
    """From outside: menus per kind of chat, a wrong password kept at the login, and a
    reply Telegram refused with 429 that still arrives."""
    tg, spaces = fakes

    def ru(key: str, locale: str, **params: object) -> str:
        return I18N.text(key, locale, **{"service": "Spaces", **params})

    async def say_ru(text: str, expect: str) -> ApiCall:
        mark = tg.mark()
        tg.send_message(text, chat_id=CHAT, language_code="ru")
        return await tg.wait_for_call(
            "sendMessage",
            predicate=lambda c: expect in (c.params.get("text") or "") and c.ok,
            after=mark,
            timeout=45,
        )

    bot = BotProcess(bot_env(tg, spaces, tmp_path, generate_key()))
    await bot.start()
    try:
        await tg.wait_for_call("setMyCommands", timeout=60)
        await asyncio.sleep(0.5)  # the rest of the menus
        groups = {c["command"] for c in tg.commands({"type": "all_group_chats"}, "ru")}
        assert groups and not groups & {"status", "logout", "forget"}
        await say_ru("/login", ru("login-ask-login", "ru")[:30])
        await say_ru("alice", "alice")
        asked = await say_ru("не тот", ru("login-wrong-password", "ru", login="alice")[:30])
        again = next(
            b["callback_data"]
            for row in asked.params["reply_markup"]["inline_keyboard"]
            for b in row
            if b["text"] == I18N.plain("button-password-again", "ru")
        )
        tg.fail_next(
            "sendMessage", error_code=429, description="Too Many Requests: retry after 1",
            retry_after=1, chat_id=CHAT,
        )  # fmt: skip
        mark = tg.mark()
        tg.press_button(again, chat_id=CHAT, language_code="ru")
        await tg.wait_for_call(
            "sendMessage", predicate=lambda c: c.ok and "alice" in c.params["text"], after=mark
        )
        assert [c.ok for c in tg.calls_of("sendMessage", after=mark)] == [False, True]
        await say_ru("secret123", "Alice")
        assert len(spaces.state.sessions) == 1
    finally:
        code = await bot.stop()
    assert code == 0
