"""Two `python -m bot` in webhook mode behind a round-robin balancer, on one PostgreSQL and
one Redis, tried from outside: a login hops between them, forged POSTs are refused, each
session is checked about once per interval across both, and each expiry is told exactly
once — also when one instance is killed with SIGKILL while it holds checks in hand."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import derive_webhook_secret
from bot.domain import SessionState
from bot.services.watch import WatchConfig
from bot.storage.crypto import Cipher, generate_key
from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.store import Store
from tests.conftest import only_session
from tests.e2e.test_bot_process import CHAT, bot_env, t
from tests.e2e.test_webhook_process import STRANGER, forged_start, free_port
from tests.external import pg_url, redis_url  # noqa: F401 - fixtures
from tests.fakes.balancer import Balancer
from tests.fakes.spaces_server import FakeSpaces, FakeState
from tests.fakes.telegram_server import SECRET_HEADER, ApiCall, FakeTelegram

INTERVAL = 2.5  # CHECK_INTERVAL_SECONDS: short, so several intervals fit in the test
# Two checks of one session closer than this are one session checked twice in an interval
# (the watch spreads checks by ±10 %; a busy machine only makes the gaps longer).
TOO_CLOSE = 0.5 * INTERVAL
HOOK_PATH = "/telegram/hook"
# Chats besides CHAT (alice) that link a Spaces account each: (chat, login, nickname).
# A claim of due sessions is leased for the slowest case of its checks (WatchConfig); these
# keep that short, so the sessions a killed instance held come back within the test.
FAST_CLAIMS = {
    "SPACES_TIMEOUT_SECONDS": "2",
    "CHECK_CONCURRENCY": "256",
    "SPACES_RATE_PER_SECOND": "0",
}
CLAIM_LEASE = WatchConfig(
    interval=INTERVAL, concurrency=256, spaces_rate=0.0, spaces_timeout=2.0
).lease_seconds(0.0)
OTHERS = [(7000 + n, f"user{n}", f"User{n}") for n in range(1, 6)]
PASSWORD = "pw-of-each-user"


class Instance:
    """One `python -m bot` whose log is read as it comes (a long run would fill the pipe)."""

    def __init__(self, name: str, env: dict[str, str], port: int, spaces: FakeSpaces) -> None:
        self.name = name
        self.env = env
        self.port = port
        self.spaces = spaces  # the Spaces mirror this instance asks: checks tell who checked
        self.proc: asyncio.subprocess.Process | None = None
        self.log = bytearray()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=self.env["BOT_CWD"],
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self.log += chunk

    async def ready(self, timeout: float = 90.0) -> None:  # noqa: ASYNC109
        """Until /readyz (served by the webhook's server) answers 200."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as http:
            while True:
                assert self.proc is not None and self.proc.returncode is None, self.text()
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"{self.name} never ready:\n{self.text()}"
                await asyncio.sleep(0.2)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None and self._reader is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), 30)
        await asyncio.wait_for(self._reader, 10)
        return code

    def text(self) -> str:
        return self.log.decode(errors="replace")


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTelegram, FakeSpaces, FakeSpaces]]:
    """Telegram, and Spaces as two mirrors of one site: one per instance."""
    async with (
        FakeTelegram() as tg,
        FakeSpaces() as first,
        FakeSpaces(state=first.state) as second,
    ):
        yield tg, first, second


async def until(what: str, condition: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        await asyncio.sleep(0.05)


async def say(
    tg: FakeTelegram, chat: int, text_: str, expect: str, method: str = "sendMessage"
) -> int:
    """Sends `text_` from `chat` and waits for the answer holding `expect`; the update's id."""
    mark = tg.mark()
    update = tg.send_message(text_, chat_id=chat)

    def answered(call: ApiCall) -> bool:
        body = call.params.get("text") or call.params.get("caption") or ""
        return call.chat_id == chat and expect in body

    await tg.wait_for_call(method, predicate=answered, after=mark, timeout=60)
    return int(update["update_id"])


async def log_in(
    tg: FakeTelegram, chat: int, login: str, nickname: str, *, captcha: str | None = None
) -> list[int]:
    """A whole login through the bot, with a captcha when one is given; its updates' ids."""
    password = "secret123" if login == "alice" else PASSWORD
    ids = [
        await say(tg, chat, "/login", t("login-ask-login")[:30]),
        await say(tg, chat, login, login),
    ]
    if captcha is not None:
        ids.append(await say(tg, chat, password, t("captcha-ask")[:20], method="sendPhoto"))
        password = captcha
    ids.append(await say(tg, chat, password, nickname))
    return ids


def is_notice(call: ApiCall) -> bool:
    """An expiry notice: the message with a "log in again" button."""
    rows = (call.params.get("reply_markup") or {}).get("inline_keyboard") or []
    return any(str(b.get("callback_data", "")).startswith("relogin") for r in rows for b in r)


async def test_two_instances_share_logins_checks_and_notices(
    fakes: tuple[FakeTelegram, FakeSpaces, FakeSpaces],
    pg_url: str,  # noqa: F811
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    tg, spaces_a, spaces_b = fakes
    state = spaces_a.state
    for _, login, nickname in OTHERS:
        state.add_user(login, PASSWORD, 2000 + int(login[4:]), nickname)
    key = generate_key()
    ports = [free_port(), free_port()]
    async with Balancer([f"http://127.0.0.1:{p}" for p in ports]) as lb:
        hook = f"{lb.url}{HOOK_PATH}"
        instances: list[Instance] = []
        for name, port, spaces in zip("ab", ports, (spaces_a, spaces_b), strict=True):
            (tmp_path / name).mkdir()
            env = bot_env(tg, spaces, tmp_path / name, key)
            env.update(
                DATABASE_URL=pg_url,
                REDIS_URL=redis_url,
                WEBHOOK_URL=hook,
                WEBHOOK_PORT=str(port),
                HEALTH_PORT=str(port),
                CHECK_INTERVAL_SECONDS=str(INTERVAL),
                FLOOD_MAX_MESSAGES="100",
                **FAST_CLAIMS,
            )
            instances.append(Instance(name, env, port, spaces))
        engine = create_engine(pg_url)
        db = make_sessionmaker(engine)
        store = Store(db, Cipher.from_strings([key]))
        try:
            await run_scenario(tg, state, lb, instances, store, db)
        except BaseException:
            for instance in instances:  # what each instance said, to tell why
                print(f"--- {instance.name}'s log, the end:\n{instance.text()[-6000:]}")
            raise
        finally:
            codes = [await i.stop(signal.SIGTERM) for i in instances if i.proc is not None]
            await engine.dispose()
    # The one killed in the scenario says -9; the other stopped as asked.
    assert sorted(codes) == [-signal.SIGKILL, 0], codes
    for instance in instances:
        log = instance.text()
        assert "Traceback" not in log, log
        for secret in (tg.token, key, derive_webhook_secret(tg.token), PASSWORD, "secret123"):
            assert secret not in log, f"a secret in {instance.name}'s log"


async def run_scenario(
    tg: FakeTelegram,
    state: FakeState,
    lb: Balancer,
    instances: list[Instance],
    store: Store,
    db: async_sessionmaker[AsyncSession],
) -> None:
    # Both at once on a fresh database: one migrates it, the other waits for that.
    for instance in instances:
        await instance.start()
    for instance in instances:
        await instance.ready()
    registered = tg.calls_of("setWebhook")
    assert len(registered) == 2 and {c.params["url"] for c in registered} == {tg.webhook_url}

    # a. A login whose messages land on both instances in turn, stored once.
    login_updates = await log_in(tg, CHAT, "alice", "Alice")
    assert lb.backends_of(set(login_updates)) == {0, 1}, lb.forwarded
    assert len(state.sids_of(1001)) == 1
    linked = await only_session(store, CHAT)
    assert linked is not None and linked.display_name == "Alice"

    # b. Forged POSTs straight to each instance: refused, never handled (each is answered
    # only once handled, so a forged update that got in would have been answered by now).
    secret = tg.webhook_secret
    assert secret is not None
    async with httpx.AsyncClient() as http:
        for instance in instances:
            url = f"http://127.0.0.1:{instance.port}{HOOK_PATH}"
            for headers in ({}, {SECRET_HEADER: secret[:-1] + ("x" if secret[-1] != "x" else "y")}):
                update = {"update_id": 999_999, **forged_start()}
                forged = await http.post(url, json=update, headers=headers)
                assert forged.status_code in (401, 403), (instance.name, forged.status_code)
    assert tg.sent_messages(STRANGER) == []

    # c. More sessions (one through a captcha answered on the other instance than the one
    # that asked it), then every session checked about once per interval across both.
    state.set_captcha(OTHERS[0][1], True, "4242")
    *_, asked, answered = await log_in(tg, *OTHERS[0], captcha="4242")
    assert lb.backends_of({asked}) != lb.backends_of({answered}), lb.forwarded
    for chat, login, nickname in OTHERS[1:]:
        await log_in(tg, chat, login, nickname)
    sids = {CHAT: state.sids_of(1001)[0]}
    sids |= {chat: state.sids_of(2000 + int(login[4:]))[0] for chat, login, _ in OTHERS}
    assert len(set(sids.values())) == len(sids)

    def checks(sid: str, since: float = 0.0) -> list[float]:
        return [c.at for c in state.calls if c.method == "check" and c.sid == sid and c.at >= since]

    window = time.monotonic()
    await until(
        "every session checked 4 times",
        lambda: all(len(checks(sid, window)) >= 4 for sid in sids.values()),
        timeout=4 * INTERVAL + 60,
    )
    by_mirror = {i.name: sum(c.mirror == i.spaces.url for c in state.calls) for i in instances}
    print(f"\nchecks by instance in the first phase: {by_mirror}")
    assert_no_double_checks(state, sids, instances)

    # d. Spaces ends one session while both run: its chat is told once.
    ended_chat = OTHERS[0][0]
    await expire_and_count_notices(tg, state, store, db, sids, ended_chat)
    del sids[ended_chat]

    # d'. Both mirrors stall; the instance whose check hangs first is killed with SIGKILL
    # holding it. The other carries on: it answers, and checks that session (found ended
    # now) once the dead one's claim ran out (CLAIM_LEASE), and tells its chat once.
    stalled_at = time.monotonic()
    for instance in instances:
        instance.spaces.mirror.set_mode("timeout")
    await until(
        "a check hanging at a stalled mirror",
        lambda: any(c.method == "check" and c.at >= stalled_at for c in state.calls),
        timeout=2 * INTERVAL + 60,
    )
    first = next(c for c in state.calls if c.method == "check" and c.at >= stalled_at)
    victim = next(i for i in instances if i.spaces.url == first.mirror)
    survivor = next(i for i in instances if i is not victim)
    assert await victim.stop(signal.SIGKILL) == -signal.SIGKILL
    killed_at = time.monotonic()
    for instance in instances:
        instance.spaces.mirror.set_mode("ok")
    state.wake_stalled()
    held_chat = next(chat for chat, sid in sids.items() if sid == first.sid)
    print(f"killed {victim.name} holding a check of chat {held_chat}; lease {CLAIM_LEASE} s")

    await say(tg, CHAT, "/help", "/login")  # updates go on, through the survivor
    mark = tg.mark()
    assert state.expire(sid=first.sid) == 1
    await tg.wait_for_call(
        "sendMessage",
        predicate=lambda c: c.chat_id == held_chat and is_notice(c),
        after=mark,
        timeout=CLAIM_LEASE + 60,
    )
    del sids[held_chat]
    await until(
        "the survivor checking every other session twice after the kill",
        lambda: all(len(checks(sid, killed_at)) >= 2 for sid in sids.values()),
        timeout=4 * INTERVAL + 60,
    )
    assert {c.mirror for c in state.calls if c.at > killed_at} == {survivor.spaces.url}
    assert len(tg.sent_messages(held_chat, after=mark)) == 1
    await survivor.ready()  # its watch and outbox go on: it says it is ready
    account = await only_session(store, held_chat)
    assert account is not None and account.state is SessionState.ENDED
    assert await notice_state(db, held_chat) == "sent"


async def expire_and_count_notices(
    tg: FakeTelegram,
    state: FakeState,
    store: Store,
    db: async_sessionmaker[AsyncSession],
    sids: dict[int, str],
    chat: int,
) -> None:
    mark = tg.mark()
    assert state.expire(sid=sids[chat]) == 1
    notice = await tg.wait_for_call(
        "sendMessage",
        predicate=lambda c: c.chat_id == chat and is_notice(c),
        after=mark,
        timeout=3 * INTERVAL + 60,
    )
    told = time.monotonic()
    # Long enough for both instances to have swept everything twice since.
    others = [sid for c, sid in sids.items() if c != chat]
    await until(
        "every other session checked twice after the notice",
        lambda: all(
            sum(c.method == "check" and c.sid == sid and c.at >= told for c in state.calls) >= 2
            for sid in others
        ),
        timeout=4 * INTERVAL + 60,
    )
    sent = tg.sent_messages(chat, after=mark)
    assert len(sent) == 1, [c.summary() for c in sent]
    assert sent[0] is notice
    account = await only_session(store, chat)
    assert account is not None and account.state is SessionState.ENDED
    assert await notice_state(db, chat) == "sent"


def assert_no_double_checks(
    state: FakeState, sids: dict[int, str], instances: list[Instance]
) -> None:
    """No session checked twice within one interval (by either instance, or by both)."""
    name = {i.spaces.url: i.name for i in instances}
    doubles = []
    for chat, sid in sids.items():
        calls = [c for c in state.calls if c.method == "check" and c.sid == sid]
        for before, after in itertools.pairwise(sorted(calls, key=lambda c: c.at)):
            if after.at - before.at < TOO_CLOSE:
                gap = round(after.at - before.at, 3)
                doubles.append((chat, gap, name[before.mirror], name[after.mirror]))
    total = sum(1 for c in state.calls if c.method == "check")
    assert not doubles, (
        f"{len(doubles)} of {total} checks came less than {TOO_CLOSE} s after the previous "
        f"check of the same session (chat, gap in s, by, then by): {doubles}"
    )


async def notice_state(db: async_sessionmaker[AsyncSession], chat: int) -> str:
    """The notice column as stored (the Store tells no one's notice state)."""
    async with db() as session:
        row = await session.execute(
            text("SELECT notice FROM remote_sessions WHERE chat_id = :chat"), {"chat": chat}
        )
        return str(row.scalar_one())
