"""Benchmark of the session watch against a fake Spaces running in its own process.

    .venv/bin/python -m bench.watch_bench --quick                 # smoke run, ~1 minute
    .venv/bin/python -m bench.watch_bench                         # 10k sessions, RSS at 10k/100k
    .venv/bin/python -m bench.watch_bench --sessions 10000 --concurrency 16 \\
        [--transport httpx|aiohttp|both] [--db sqlite|postgres] [--profile cprofile|pyinstrument]

What it prints (see bench/README.md):

* throughput: one full sweep of N due sessions (rate limit lifted) next to the "floor", a bare
  loop of the same HTTP request with the same concurrency on three clients; wall time and
  `time.process_time()` of this process only (the fake runs in another process);
* peak RSS of a fresh process that seeds and sweeps N sessions, for each --rss-sizes;
* every statement one sweep issues, grouped by shape, and the query plans of the watcher's
  queries (the due query must use ix_spaces_sessions_next_check_at);
* expiry notices sent through the real TelegramSender to a fake Telegram that answers 429
  when more than 30 sendMessage arrive within any 1 s.

Everything talks to 127.0.0.1 only; every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import resource
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from aiogram import Bot
from sqlalchemy import event, insert, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.app import build_bot
from bot.config import Settings
from bot.locales import build_i18n
from bot.services.notifier import Notifier, TelegramSender
from bot.services.watch import SessionWatch, WatchConfig
from bot.spaces import SpacesClient
from bot.storage.crypto import Cipher, generate_key
from bot.storage.engine import create_engine, make_sessionmaker, migrate
from bot.storage.store import SESSIONS, Store, _context
from tests.fakes.spaces_server import FakeSpacesControl, FakeSpacesProcess
from tests.fakes.telegram_server import FakeTelegram, _ApiError

RID = "bench-rid"
TIMEOUT = 10.0
INTERVAL = 900.0  # the default check interval: checked sessions are not due again mid-run
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TRANSPORTS = ("httpx", "aiohttp")
SEED_CHUNK = 5_000
PHASE_TIMEOUT = 900.0  # no single phase may run longer than this
CLK_TCK = os.sysconf("SC_CLK_TCK")
_FORM = {"method": "check", "rid": RID}
_HEADERS = {"X-Proxy": "spaces", "Accept": "application/json"}


def sid_of(chat_id: int) -> str:
    return f"{10**15 + chat_id}"  # 16 digits, like real SIDs


# -- HTTP clients -------------------------------------------------------------------------


def spaces_http(transport: str) -> httpx.AsyncClient:
    """The bot's Spaces client as bot.app builds it, on httpx's own pool or on aiohttp."""
    kwargs: dict[str, Any] = {}
    if transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        kwargs["transport"] = AiohttpTransport(
            client=lambda: aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=5.0),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        )
    return httpx.AsyncClient(
        timeout=httpx.Timeout(TIMEOUT),
        follow_redirects=False,
        headers={"User-Agent": "spaces-bridge-bot"},
        trust_env=False,
        **kwargs,
    )


def bare_aiohttp() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=5.0),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(sock_read=TIMEOUT, sock_connect=TIMEOUT),
        trust_env=False,
    )


# -- measuring ----------------------------------------------------------------------------


def proc_cpu(pid: int | None) -> float | None:
    """user+system CPU seconds of another process (the fake), from /proc."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux


@dataclass
class Figure:
    name: str
    count: int
    wall: float
    cpu: float
    errors: int = 0
    fake_cpu: float | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.count / self.wall if self.wall else 0.0

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu / self.count * 1000 if self.count else float("nan")

    @property
    def fake_per_1000(self) -> float | None:
        return None if self.fake_cpu is None or not self.count else self.fake_cpu / self.count * 1000


async def measured(
    name: str, count: int, fake_pid: int | None, body: Callable[[], Awaitable[int]]
) -> Figure:
    """Runs `body` (which returns its error count) and times it: wall and this process's CPU."""
    gc.collect()
    fake0 = proc_cpu(fake_pid)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    errors = await asyncio.wait_for(body(), PHASE_TIMEOUT)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    fake1 = proc_cpu(fake_pid)
    fake = None if fake0 is None or fake1 is None else fake1 - fake0
    return Figure(name, count, wall, cpu, errors, fake)


async def run_workers(concurrency: int, items: Sequence[Any], fn: Callable[[Any], Awaitable[bool]]) -> int:
    """`concurrency` workers share one iterator over `items`; returns how many calls failed."""
    shared = iter(items)
    errors = 0

    async def worker() -> None:
        nonlocal errors
        for item in shared:  # bounded: each item is taken once
            if not await fn(item):
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


# -- the floor: a bare loop of the same request -------------------------------------------


async def floor_httpx(client: httpx.AsyncClient, base: str, sids: Sequence[str], c: int) -> int:
    url = f"{base}/neoapi/session"

    async def one(sid: str) -> bool:
        # Exactly what SpacesClient._call sends: multipart fields, headers, the cookie last.
        request = client.build_request(
            "POST",
            url,
            files={k: (None, v.encode()) for k, v in _FORM.items()},
            headers=_HEADERS,
            timeout=TIMEOUT,
        )
        request.headers["Cookie"] = f"json=1; sid={sid}"
        response = await client.send(request, follow_redirects=False)
        return response.status_code == 200 and b'"code":"00000"' in response.content

    return await run_workers(c, sids, one)


async def floor_aiohttp(session: aiohttp.ClientSession, base: str, sids: Sequence[str], c: int) -> int:
    url = f"{base}/neoapi/session"

    async def one(sid: str) -> bool:
        form = aiohttp.FormData(default_to_multipart=True)
        for k, v in _FORM.items():
            form.add_field(k, v)
        headers = {**_HEADERS, "Cookie": f"json=1; sid={sid}"}
        async with session.post(url, data=form, headers=headers, allow_redirects=False) as resp:
            body = await resp.read()
            return resp.status == 200 and b'"code":"00000"' in body

    return await run_workers(c, sids, one)


# -- the database -------------------------------------------------------------------------


@dataclass
class Db:
    kind: str
    url: str
    engine: AsyncEngine
    store: Store


@contextlib.asynccontextmanager
async def open_db(kind: str, cipher: Cipher, pg_url: str = PG_URL) -> AsyncIterator[Db]:
    """A migrated scratch database: a temporary SQLite file, or a PostgreSQL database created
    next to `pg_url` (never its own tables) and dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="watch-bench-") as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/bot.sqlite3"
            engine = create_engine(url)
            try:
                await migrate(engine)
                yield Db(kind, url, engine, Store(make_sessionmaker(engine), cipher))
            finally:
                await engine.dispose()
        return
    scratch = f"watch_bench_{os.getpid()}_{int(time.time())}"
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{scratch}"')
        url = make_url(pg_url).set(database=scratch).render_as_string(hide_password=False)
        engine = create_engine(url)
        try:
            await migrate(engine)
            yield Db(kind, url, engine, Store(make_sessionmaker(engine), cipher))
        finally:
            await engine.dispose()
            async with admin.connect() as conn:
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    finally:
        await admin.dispose()


async def postgres_reachable(pg_url: str) -> str | None:
    """None when it answers, else why not."""
    engine = create_async_engine(pg_url)
    try:
        async with asyncio.timeout(5):
            async with engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        return None
    except Exception as exc:  # anything at all: the benchmark then runs without it
        return f"{type(exc).__name__}: {exc}"
    finally:
        await engine.dispose()


async def seed(db: Db, cipher: Cipher, n: int, *, first_id: int = 1) -> list[str]:
    """N linked sessions, all due now, inserted with Core in chunks; SIDs encrypted with the
    real Cipher under each row's own context. Returns the SIDs."""
    now = datetime.now(UTC)
    sids: list[str] = []
    for start in range(first_id, first_id + n, SEED_CHUNK):
        rows = []
        for chat_id in range(start, min(start + SEED_CHUNK, first_id + n)):
            sid = sid_of(chat_id)
            sids.append(sid)
            rows.append(
                {
                    "chat_id": chat_id,
                    "telegram_user_id": chat_id,
                    "spaces_user_id": chat_id,
                    "nickname": f"user{chat_id}",
                    "sid_enc": cipher.encrypt(sid, context=_context(chat_id, "sid")),
                    "ck_enc": cipher.encrypt(sid[-4:], context=_context(chat_id, "ck")),
                    "linked_at": now - timedelta(days=1),
                    "last_confirmed_at": now - timedelta(seconds=INTERVAL),
                    "last_checked_at": now - timedelta(seconds=INTERVAL),
                    "state": "active",
                    "failures": 0,
                    # Due within the last minute, oldest first, like a backlog.
                    "next_check_at": now - timedelta(seconds=60) + timedelta(microseconds=chat_id),
                    "notice": "none",
                }
            )
        async with db.engine.begin() as conn:
            await conn.execute(insert(SESSIONS), rows)
    if db.kind == "postgres":
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE spaces_sessions")
    return sids


async def make_all_due(db: Db) -> None:
    past = datetime.now(UTC) - timedelta(seconds=60)
    async with db.engine.begin() as conn:
        await conn.execute(update(SESSIONS).values(next_check_at=past, state="active", failures=0))


# -- queries per sweep --------------------------------------------------------------------

_PARAM_LIST = re.compile(r"\((?:\?|\$\d+(?:::[A-Z ]+)?)(?:, (?:\?|\$\d+(?:::[A-Z ]+)?))+\)")
_QUALIFIER = re.compile(r"\b(?:spaces_sessions|chats|meta)\.(?=\w)")


def shape_of(statement: str) -> str:
    shape = re.sub(r"\s+", " ", statement).strip()
    shape = _PARAM_LIST.sub("(?, ...)", shape)
    return _QUALIFIER.sub("", shape)


@dataclass
class QueryLog:
    statements: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)  # parameter sets (executemany)
    examples: dict[str, tuple[str, Any]] = field(default_factory=dict)

    def __call__(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        shape = shape_of(statement)
        self.statements[shape] += 1
        self.rows[shape] += len(parameters) if many else 1
        if shape not in self.examples:
            self.examples[shape] = (statement, parameters[0] if many else parameters)

    @property
    def total(self) -> int:
        return sum(self.statements.values())


async def explain(db: Db, log: QueryLog) -> list[tuple[str, list[str]]]:
    """The plans of the watcher's reads, run on the very statements the sweep issued."""
    wanted = [
        ("due sessions", lambda s: "next_check_at <=" in s and s.startswith("SELECT")),
        ("next due time", lambda s: "min(next_check_at)" in s),
        ("pending notices", lambda s: "notice =" in s and s.startswith("SELECT")),
    ]
    plans: list[tuple[str, list[str]]] = []
    async with db.engine.connect() as conn:
        for label, match in wanted:
            found = next((ex for shape, ex in log.examples.items() if match(shape)), None)
            if found is None:
                plans.append((label, ["(not issued in this sweep)"]))
                continue
            statement, params = found
            prefix = "EXPLAIN QUERY PLAN " if db.kind == "sqlite" else "EXPLAIN "
            result = await conn.exec_driver_sql(prefix + statement, tuple(params))
            rows = result.all()
            lines = [str(r[-1]) for r in rows] if db.kind == "sqlite" else [str(r[0]) for r in rows]
            plans.append((label, lines))
    return plans


# -- the checker --------------------------------------------------------------------------


def bench_settings(tg_url: str = "http://127.0.0.1:9", token: str = "123456:BENCH") -> Settings:
    return Settings(_env_file=None, bot_token=token, telegram_api_url=tg_url)  # type: ignore[call-arg]


def make_watch(
    store: Store, spaces: SpacesClient, bot: Bot, concurrency: int, rate: float = 25.0
) -> tuple[SessionWatch, TelegramSender]:
    sender = TelegramSender(bot, rate)
    notifier = Notifier(store, sender, build_i18n(), [])
    config = WatchConfig(interval=INTERVAL, concurrency=concurrency, spaces_rate=0)
    return SessionWatch(store, spaces, notifier, config), sender


async def checker_sweep(
    db: Db,
    fake_url: str,
    transport: str,
    concurrency: int,
    n: int,
    fake_pid: int | None,
    *,
    log: QueryLog | None = None,
    profile: str | None = None,
) -> Figure:
    """One sweep of N due sessions; the figure counts confirmed checks."""
    await make_all_due(db)
    http = spaces_http(transport)
    bot = build_bot(bench_settings())
    try:
        spaces = SpacesClient(http, fake_url, rid=RID, timeout=TIMEOUT)
        watch, _ = make_watch(db.store, spaces, bot, concurrency)
        if log is not None:
            event.listen(db.engine.sync_engine, "before_cursor_execute", log)

        async def body() -> int:
            with profiled(profile):
                await watch.sweep()
            return n - watch.totals["confirmed"]

        try:
            figure = await measured(f"checker ({transport})", n, fake_pid, body)
        finally:
            if log is not None:
                event.remove(db.engine.sync_engine, "before_cursor_execute", log)
        figure.note = f"outcomes {dict(watch.totals)}"
        return figure
    finally:
        await http.aclose()
        await bot.session.close()


@contextlib.contextmanager
def profiled(kind: str | None) -> Any:
    if kind is None:
        yield
        return
    if kind == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="enabled", interval=0.0005)
        profiler.start()
        try:
            yield
        finally:
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False))
        return
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
        stats = pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime")
        stats.print_stats(30)


async def floors(fake_url: str, sids: Sequence[str], c: int, pid: int | None) -> list[Figure]:
    out = []
    for transport in TRANSPORTS:
        async with spaces_http(transport) as client:
            name = "floor httpx default pool" if transport == "httpx" else "floor httpx+aiohttp"
            out.append(
                await measured(
                    name, len(sids), pid, lambda cl=client: floor_httpx(cl, fake_url, sids, c)
                )
            )
    async with bare_aiohttp() as session:
        out.append(
            await measured(
                "floor bare aiohttp", len(sids), pid, lambda: floor_aiohttp(session, fake_url, sids, c)
            )
        )
    return out


# -- RSS: a fresh process per size --------------------------------------------------------


async def rss_child(args: argparse.Namespace) -> None:
    """Seed and sweep `args.rss_child` sessions in this (fresh) process; print one JSON line."""
    start = rss_kb()
    cipher = Cipher.from_strings([generate_key()])
    async with open_db(args.db, cipher, args.pg_url) as db:
        wall0 = time.perf_counter()
        await seed(db, cipher, args.rss_child)
        seed_wall = time.perf_counter() - wall0
        gc.collect()
        seeded = rss_kb()
        figure = await checker_sweep(db, args.fake_url, args.transport, args.concurrency, args.rss_child, None)
    result = {
        "sessions": args.rss_child,
        "rss_after_imports_kb": start,
        "rss_after_seed_kb": seeded,
        "rss_peak_kb": rss_kb(),
        "seed_s": round(seed_wall, 2),
        "sweep_wall_s": round(figure.wall, 2),
        "sweep_cpu_s": round(figure.cpu, 2),
        "errors": figure.errors,
    }
    print(json.dumps(result), flush=True)


async def rss_in_fresh_process(
    n: int, fake_url: str, transport: str, concurrency: int, db: str, pg_url: str
) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.watch_bench",
        "--rss-child",
        str(n),
        "--fake-url",
        fake_url,
        "--transport",
        transport,
        "--concurrency",
        str(concurrency),
        "--db",
        db,
        "--pg-url",
        pg_url,
        cwd=Path(__file__).resolve().parents[1],
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), PHASE_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"the RSS run at {n} sessions took longer than {PHASE_TIMEOUT} s") from None
    if process.returncode != 0:
        raise RuntimeError(f"the RSS run at {n} sessions failed (exit {process.returncode})")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# -- notices under Telegram's limit -------------------------------------------------------


class RateLimitedTelegram(FakeTelegram):
    """FakeTelegram that answers 429 (retry_after) when more than `limit` sendMessage arrive
    within any `window` seconds. Refused calls count as arrivals too (the strict reading)."""

    def __init__(self, *, limit: int = 30, window: float = 1.0, retry_after: int = 1) -> None:
        super().__init__()
        self.limit, self.window, self.retry_after = limit, window, retry_after
        self._arrivals: deque[float] = deque()
        self.limited = 0

    def _check_fail_rules(self, call: Any) -> None:
        if call.method == "sendMessage":
            horizon = call.at - self.window
            while self._arrivals and self._arrivals[0] <= horizon:
                self._arrivals.popleft()
            self._arrivals.append(call.at)
            super()._check_fail_rules(call)  # injected failures (fail_next) still apply
            if len(self._arrivals) > self.limit:
                self.limited += 1
                raise _ApiError(
                    429,
                    f"Too Many Requests: retry after {self.retry_after}",
                    retry_after=self.retry_after,
                )
            return
        super()._check_fail_rules(call)


@dataclass
class NoticeFigure:
    label: str
    pending: int
    delivered: int
    too_many: int
    rate: float
    peak_window: int
    wall: float


def peak_in_window(times: Sequence[float], window: float = 1.0) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def notices_run(
    fake_url: str, control: FakeSpacesControl, m: int, concurrency: int, db_kind: str,
    pg_url: str, *, inject_first_429: bool,
) -> NoticeFigure:
    """M sessions the fake does not know (it answers 01001): one sweep ends them all and sends
    M notices through the bot's TelegramSender at its default rate."""
    await control.accept_any_sid(False)
    cipher = Cipher.from_strings([generate_key()])
    async with open_db(db_kind, cipher, pg_url) as db, RateLimitedTelegram() as tg:
        await seed(db, cipher, m, first_id=50_000_000)
        if inject_first_429:
            tg.fail_next(
                "sendMessage", error_code=429, description="Too Many Requests: retry after 1",
                retry_after=1,
            )
        settings = bench_settings(tg.url, tg.token)
        bot = build_bot(settings)
        http = spaces_http("httpx")
        try:
            spaces = SpacesClient(http, fake_url, rid=RID, timeout=TIMEOUT)
            watch, sender = make_watch(
                db.store, spaces, bot, concurrency, rate=settings.telegram_rate_per_second
            )
            wall0 = time.perf_counter()
            await asyncio.wait_for(watch.sweep(), PHASE_TIMEOUT)
            wall = time.perf_counter() - wall0
        finally:
            await http.aclose()
            await bot.session.close()
        sends = [c for c in tg.calls if c.method == "sendMessage"]
        ok = sorted(c.at for c in sends if c.ok)
        span = ok[-1] - ok[0] if len(ok) > 1 else 0.0
        return NoticeFigure(
            label="with one injected 429 (retry_after=1) first" if inject_first_429 else "limit only",
            pending=m,
            delivered=len(ok),
            too_many=sum(1 for c in sends if c.status == 429),
            rate=(len(ok) - 1) / span if span else 0.0,
            peak_window=peak_in_window(sorted(c.at for c in sends)),
            wall=wall,
        )


# -- cookie isolation on the chosen transport ---------------------------------------------


async def cookie_isolation(fake_url: str, transport: str) -> str:
    """A login's Set-Cookie must never change whose session a later request speaks for
    (aiohttp's own cookie jar would merge its `sid` over the request's Cookie header)."""
    async with spaces_http(transport) as http, FakeSpacesControl(fake_url) as control:
        await control.add_user("bob", "bobpassword", 2002, "Bob")
        client = SpacesClient(http, fake_url, rid=RID, timeout=TIMEOUT)
        alice = await client.login("alice", "secret123")
        bob = await client.login("bob", "bobpassword")  # its Set-Cookie: sid=<bob's>
        checked = await client.check(alice.sid)
        calls = (await control.calls_summary())["calls"]
        sent = [c["sid"] for c in calls if c["method"] == "check"][-1]
        for sid in (alice.sid, bob.sid):
            await control.expire(sid=sid)
        if checked.user_id != 1001 or sent != alice.sid:
            raise AssertionError(f"{transport}: alice's check went out as {sent}")
        return f"{transport}: ok (after another login's Set-Cookie a check carries its own sid)"


# -- the whole run ------------------------------------------------------------------------


def print_figures(figures: Sequence[Figure], floor_name: str = "floor bare aiohttp") -> None:
    floor = next((f for f in figures if f.name == floor_name), None)
    head = f"{'':32} {'checks/s':>9} {'CPU s/1000':>11} {'x bare floor':>13} {'fake CPU s/1000':>16} {'errors':>7}"
    print(head)
    for f in figures:
        ratio = f.cpu_per_1000 / floor.cpu_per_1000 if floor else float("nan")
        fake = "-" if f.fake_per_1000 is None else f"{f.fake_per_1000:.3f}"
        print(
            f"{f.name:32} {f.rate:9.0f} {f.cpu_per_1000:11.3f} {ratio:13.2f} {fake:>16} {f.errors:7d}"
        )


async def main_run(args: argparse.Namespace) -> None:
    transports = TRANSPORTS if args.transport == "both" else (args.transport,)
    db_kind = args.db
    if db_kind == "postgres":
        why = await postgres_reachable(args.pg_url)
        if why is not None:
            print(f"PostgreSQL at {args.pg_url} is not reachable ({why}); skipped.")
            return
    print(
        f"== watch benchmark: {args.sessions} sessions, concurrency {args.concurrency}, "
        f"db {db_kind}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    async with FakeSpacesProcess() as fake, fake.control() as control:
        pid = fake.process.pid if fake.process else None
        print(f"fake Spaces: {fake.url} (own process, pid {pid})")
        for transport in transports:
            print("cookie isolation", await cookie_isolation(fake.url, transport))
        await control.accept_any_sid(True)
        cipher = Cipher.from_strings([generate_key()])

        async with open_db(db_kind, cipher, args.pg_url) as db:
            wall0 = time.perf_counter()
            sids = await seed(db, cipher, args.sessions)
            print(f"seeded {len(sids)} sessions in {time.perf_counter() - wall0:.1f} s")

            # -- throughput
            figures: list[Figure] = []
            log = QueryLog()
            for i, transport in enumerate(transports):
                figures.append(
                    await checker_sweep(
                        db, fake.url, transport, args.concurrency, args.sessions, pid,
                        log=log if i == 0 else None,
                    )
                )
            figures.extend(await floors(fake.url, sids, args.concurrency, pid))
            print(f"\n-- throughput: one sweep of {args.sessions} due sessions, "
                  f"concurrency {args.concurrency}, spaces_rate=0")
            print_figures(figures)
            for f in figures:
                if f.note:
                    print(f"  {f.name}: {f.note}")

            # -- queries
            print(f"\n-- statements in one sweep ({transports[0]}, {args.sessions} due, "
                  f"batch {WatchConfig(interval=INTERVAL).batch_size}): {log.total}")
            for shape, count in log.statements.most_common():
                rows = log.rows[shape]
                many = f" ({rows} rows, executemany)" if rows != count else ""
                print(f"  {count:6d} x{many} {shape[:220]}")
            print("\n-- query plans (the statements above, as issued)")
            for label, lines in await explain(db, log):
                print(f"  {label}:")
                for line in lines:
                    print(f"    {line}")

            if args.profile:
                print(f"\n-- profile of one sweep ({transports[0]})")
                await checker_sweep(
                    db, fake.url, transports[0], args.concurrency, args.sessions, pid,
                    profile=args.profile,
                )

        # -- transports by concurrency
        if args.compare:
            n = args.compare_n
            print(f"\n-- by concurrency: {n} checks each")
            async with open_db(db_kind, cipher, args.pg_url) as db:
                sids = await seed(db, cipher, n)
                for c in args.compare:
                    rows = [await checker_sweep(db, fake.url, t, c, n, pid) for t in transports]
                    rows += await floors(fake.url, sids, c, pid)
                    print(f"concurrency {c}:")
                    print_figures(rows)

        # -- RSS
        if args.rss_sizes:
            print("\n-- peak RSS, fresh process per size (seed + one full sweep)")
            for n in args.rss_sizes:
                r = await rss_in_fresh_process(
                    n, fake.url, transports[0], args.concurrency, db_kind, args.pg_url
                )
                rate = n / r["sweep_wall_s"] if r["sweep_wall_s"] else 0
                print(
                    f"  {n:7d} sessions: peak {r['rss_peak_kb'] / 1024:6.1f} MB "
                    f"(after imports {r['rss_after_imports_kb'] / 1024:.1f} MB, after seeding "
                    f"{r['rss_after_seed_kb'] / 1024:.1f} MB); seed {r['seed_s']} s, sweep "
                    f"{r['sweep_wall_s']} s = {rate:.0f} checks/s, "
                    f"{r['sweep_cpu_s'] / n * 1000:.3f} CPU s/1000, errors {r['errors']}"
                )

        # -- notices
        if args.notices:
            print(
                f"\n-- expiry notices: {args.notices} sessions end in one sweep; fake Telegram "
                "answers 429 (retry_after=1) above 30 sendMessage in any 1 s; sender at the "
                "default 25/s"
            )
            for inject in (False, True):
                nf = await notices_run(
                    fake.url, control, args.notices, args.concurrency, db_kind, args.pg_url,
                    inject_first_429=inject,
                )
                print(
                    f"  {nf.label:45} delivered {nf.delivered}/{nf.pending}, "
                    f"{nf.rate:.1f} notices/s, 429s: {nf.too_many}, "
                    f"busiest 1 s: {nf.peak_window} sendMessage, sweep {nf.wall:.1f} s"
                )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=10_000, help="N, 1000..100000 (default 10000)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--transport", choices=[*TRANSPORTS, "both"], default="both")
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--pg-url", default=PG_URL)
    p.add_argument(
        "--rss-sizes", default="10000,100000", help="comma-separated; empty to skip"
    )
    p.add_argument("--notices", type=int, default=300, help="M expiry notices; 0 to skip")
    p.add_argument(
        "--compare", default="1,16,50", help="concurrency levels for the transport table; empty to skip"
    )
    p.add_argument("--compare-n", type=int, default=3000)
    p.add_argument("--profile", choices=["cprofile", "pyinstrument"])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    # internal: one RSS measurement in a fresh process
    p.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--fake-url", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.sessions, args.rss_sizes, args.notices = 1000, "1000,3000", 40
        args.compare, args.compare_n = "1,16", 500
    if args.rss_child is None and not 100 <= args.sessions <= 100_000:
        p.error("--sessions must be between 100 and 100000")
    args.rss_sizes = [int(x) for x in str(args.rss_sizes).split(",") if x.strip()]
    args.compare = [int(x) for x in str(args.compare).split(",") if x.strip()]
    if any(not 0 < n <= 100_000 for n in args.rss_sizes):
        p.error("--rss-sizes must be between 1 and 100000")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.rss_child is not None:
        asyncio.run(rss_child(args))
    else:
        asyncio.run(main_run(args))


if __name__ == "__main__":
    main()
