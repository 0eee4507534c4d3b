"""Benchmark of the session watch against a fake Spaces running in its own process.

    .venv/bin/python -m bench.watch_bench --quick        # smoke run, about a minute
    .venv/bin/python -m bench.watch_bench                # the full run (see bench/README.md)
    .venv/bin/python -m bench.watch_bench --sessions 10000 --concurrency 16 \\
        [--transport httpx|aiohttp|both] [--db sqlite|postgres] [--profile cprofile|pyinstrument]

It prints:

* throughput: one full sweep of N due sessions (Spaces rate limit lifted) by the watcher as
  bot.app builds it, next to the floor: a bare loop of the same HTTP request with the same
  concurrency, on several clients. Wall time and `time.process_time()` of this process only
  (the fake runs in its own process); the median of --repeat interleaved rounds;
* peak RSS (VmHWM) of a fresh process that seeds and sweeps N sessions, per --rss-sizes;
* every statement one sweep issues, by shape, and the query plans of the watcher's reads;
* expiry notices through the bot's TelegramSender to a fake Telegram that answers 429 when
  more than 30 sendMessage arrive within any 1 s.

Everything talks to 127.0.0.1 only; every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
from sqlalchemy import event, insert, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.check_counter import sid_of
from bench.sweep_kit import session_rows
from bot._telegram_types import build_types_in_use
from bot.app import (
    VERSION,
    build_bot,
    build_notifier,
    build_services,
    build_spaces_client,
    build_watch,
)
from bot.config import Settings
from bot.locales import build_i18n
from bot.services.notifier import Notifier
from bot.services.registry import ServiceRegistry
from bot.services.watch import SessionWatch, WatchConfig
from bot.spaces import SpacesClient
from bot.spaces.client import _multipart
from bot.spaces.service import SpacesService
from bot.spaces.transport import AiohttpTransport
from bot.storage.base import SESSIONS
from bot.storage.crypto import Cipher, generate_key
from bot.storage.engine import create_engine, make_sessionmaker, migrate
from bot.storage.owners import OwnerStore
from bot.storage.store import Store

if TYPE_CHECKING:
    from aiogram import Bot

    from tests.fakes.spaces_server import FakeSpacesControl

ROOT = Path(__file__).resolve().parents[1]
RID = "bench-rid"
TIMEOUT = 10.0
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TRANSPORTS = ("httpx", "aiohttp")
CHECKER_NAMES = {
    "httpx": "checker, httpx's own pool",
    "aiohttp": "checker, bot (aiohttp transport)",
}
BARE_FLOOR = "floor: bare aiohttp"
SAME_FLOOR = "floor: httpx request on the bot's transport"
PROFILE_SORT = os.environ.get("BENCH_PROFILE_SORT", "tottime")  # or "cumulative"
SEED_CHUNK = 5_000
PHASE_TIMEOUT = 900.0  # no single phase may run longer than this
CLK_TCK = os.sysconf("SC_CLK_TCK")
_FORM = {"method": "check", "rid": RID}
_HEADERS = {"X-Proxy": "spaces", "Accept": "application/json"}


def bench_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bot_token": "123456:AABenchTokenThatIsNeverSentAnywhere0",
        "telegram_api_url": "http://127.0.0.1:9",  # unused unless a notice is sent
        "spaces_timeout_seconds": TIMEOUT,
        "spaces_rate_per_second": 0,  # the rate limit lifted
        "spaces_rid": RID,
        **overrides,
    }
    return Settings(_env_file=None, **values)


# -- HTTP clients -------------------------------------------------------------------------


def spaces_transport(kind: str) -> httpx.AsyncBaseTransport:
    """The Spaces client's transport: the bot's, on aiohttp's pool ("aiohttp"), or httpx's
    own connection pool ("httpx")."""
    if kind == "aiohttp":
        return AiohttpTransport()
    return httpx.AsyncHTTPTransport()


def httpx_client(transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
    """An httpx client as the Spaces client used one before it spoke to the transport."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(TIMEOUT),
        follow_redirects=False,
        headers={"User-Agent": f"spaces-bridge-bot/{VERSION}"},
        transport=transport,
    )


def httpx_aiohttp_package() -> httpx.AsyncBaseTransport | None:
    """The `httpx-aiohttp` package's transport (a floor only), if it is installed."""
    # Imported by name: an optional bench-only tool, with or without stubs where mypy runs.
    try:
        package = importlib.import_module("httpx_aiohttp")
    except ImportError:
        return None
    transport: httpx.AsyncBaseTransport = package.AiohttpTransport()
    return transport


def spaces_client(transport: httpx.AsyncBaseTransport, base: str) -> SpacesClient:
    return build_spaces_client(bench_settings(spaces_base_url=base), transport)


def bare_aiohttp() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=5.0),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(sock_read=TIMEOUT, sock_connect=TIMEOUT),
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


def peak_rss_kb() -> int:
    """This process's peak RSS. VmHWM, not getrusage's ru_maxrss: on Linux ru_maxrss survives
    fork+exec, so a child started by a bigger parent would report the parent's peak."""
    with contextlib.suppress(OSError):
        match = re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())
        if match:
            return int(match.group(1))
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@dataclass
class Figure:
    name: str
    count: int
    wall: float
    cpu: float
    errors: int = 0
    fake_cpu: float | None = None

    @property
    def rate(self) -> float:
        return self.count / self.wall if self.wall else 0.0

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu / self.count * 1000 if self.count else float("nan")

    @property
    def fake_per_1000(self) -> float | None:
        if self.fake_cpu is None or not self.count:
            return None
        return self.fake_cpu / self.count * 1000


async def measured(
    name: str, count: int, fake_pid: int | None, body: Callable[[], Awaitable[int]]
) -> Figure:
    """Runs `body` (which returns its error count): wall time and this process's CPU."""
    gc.collect()
    fake0 = proc_cpu(fake_pid)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    errors = await asyncio.wait_for(body(), PHASE_TIMEOUT)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    fake1 = proc_cpu(fake_pid)
    fake = None if fake0 is None or fake1 is None else fake1 - fake0
    return Figure(name, count, wall, cpu, errors, fake)


@dataclass
class Summary:
    """The median of repeated figures (min CPU kept to show the spread)."""

    name: str
    rate: float
    cpu_per_1000: float
    cpu_min: float
    fake_per_1000: float | None
    errors: int
    runs: int

    @classmethod
    def of(cls, figures: Sequence[Figure]) -> Summary:
        fakes = [f.fake_per_1000 for f in figures if f.fake_per_1000 is not None]
        return cls(
            name=figures[0].name,
            rate=statistics.median(f.rate for f in figures),
            cpu_per_1000=statistics.median(f.cpu_per_1000 for f in figures),
            cpu_min=min(f.cpu_per_1000 for f in figures),
            fake_per_1000=statistics.median(fakes) if fakes else None,
            errors=sum(f.errors for f in figures),
            runs=len(figures),
        )


def summarise(figures: Sequence[Figure]) -> list[Summary]:
    by_name: dict[str, list[Figure]] = {}
    for f in figures:
        by_name.setdefault(f.name, []).append(f)
    return [Summary.of(group) for group in by_name.values()]


def print_table(rows: Sequence[Summary]) -> None:
    checker = next((r for r in rows if r.name.startswith("checker, bot")), None)
    bare = next((r for r in rows if r.name == BARE_FLOOR), None)
    same = next((r for r in rows if r.name == SAME_FLOOR), None)
    print(
        f"  {'':40} {'checks/s':>8} {'CPU s/1000':>10} {'(min)':>7} {'x bare':>7} "
        f"{'fake CPU/1000':>13} {'errors':>6}"
    )
    for r in rows:
        ratio = r.cpu_per_1000 / bare.cpu_per_1000 if bare else float("nan")
        runs = "" if r.runs == (checker.runs if checker else r.runs) else f"  ({r.runs} run)"
        fake = "-" if r.fake_per_1000 is None else f"{r.fake_per_1000:.3f}"
        print(
            f"  {r.name:40} {r.rate:8.0f} {r.cpu_per_1000:10.3f} {r.cpu_min:7.3f} {ratio:7.2f} "
            f"{fake:>13} {r.errors:6d}{runs}"
        )
    if checker and bare:
        per_check = checker.cpu_per_1000
        line = f"  checker CPU/check / bare aiohttp floor: {per_check / bare.cpu_per_1000:.2f}"
        if same:
            line += f"; / same-client floor: {per_check / same.cpu_per_1000:.2f}"
        print(line + f" (medians of {checker.runs} runs)")


async def run_workers(
    concurrency: int, items: Sequence[Any], fn: Callable[[Any], Awaitable[bool]]
) -> int:
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
        # What SpacesClient._call sends: multipart fields, the headers, the cookie set last.
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


async def floor_transport(
    transport: httpx.AsyncBaseTransport, base: str, sids: Sequence[str], c: int
) -> int:
    url = httpx.URL(f"{base}/neoapi/session")
    extensions = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), TIMEOUT)}

    async def one(sid: str) -> bool:
        # What SpacesClient._call sends now: an httpx.Request straight to the transport.
        body, content_type = _multipart(_FORM)
        request = httpx.Request(
            "POST",
            url,
            headers=[
                *_HEADERS.items(),
                ("Content-Type", content_type),
                ("Cookie", f"json=1; sid={sid}"),
            ],
            content=body,
            extensions=extensions,
        )
        response = await transport.handle_async_request(request)
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        return response.status_code == 200 and b'"code":"00000"' in content

    return await run_workers(c, sids, one)


async def floor_aiohttp(
    session: aiohttp.ClientSession, base: str, sids: Sequence[str], c: int
) -> int:
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


async def floors(
    base: str, sids: Sequence[str], c: int, pid: int | None, *, slow: bool = True
) -> list[Figure]:
    out = []
    n = len(sids)
    clients: list[tuple[str, httpx.AsyncBaseTransport | None]] = [
        ("floor: httpx client, httpx's own pool", spaces_transport("httpx") if slow else None),
        ("floor: httpx client on httpx-aiohttp 0.2", httpx_aiohttp_package()),
        ("floor: httpx client on the bot's transport", spaces_transport("aiohttp")),
    ]
    for name, transport in clients:
        if transport is not None:
            async with httpx_client(transport) as cl:
                out.append(await measured(name, n, pid, lambda: floor_httpx(cl, base, sids, c)))
    async with spaces_transport("aiohttp") as tr:
        out.append(await measured(SAME_FLOOR, n, pid, lambda: floor_transport(tr, base, sids, c)))
    async with bare_aiohttp() as ses:
        out.append(await measured(BARE_FLOOR, n, pid, lambda: floor_aiohttp(ses, base, sids, c)))
    return out


# -- the database -------------------------------------------------------------------------


@dataclass
class Db:
    kind: str
    url: str
    key: str
    engine: AsyncEngine
    store: Store
    owners: OwnerStore
    cipher: Cipher


async def attach_db(kind: str, url: str, key: str) -> Db:
    """Open (and migrate, as the bot's startup does) a database; the caller disposes of it."""
    cipher = Cipher.from_strings([key])
    engine = create_engine(url)
    await migrate(engine)
    sessionmaker = make_sessionmaker(engine)
    return Db(kind, url, key, engine, Store(sessionmaker, cipher), OwnerStore(sessionmaker), cipher)


@contextlib.asynccontextmanager
async def open_db(kind: str, pg_url: str = PG_URL) -> AsyncIterator[Db]:
    """A migrated scratch database with its own key: a temporary SQLite file, or a PostgreSQL
    database created on `pg_url`'s server (never touching `pg_url`'s own tables), dropped after."""
    key = generate_key()
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="watch-bench-") as tmp:
            db = await attach_db(kind, f"sqlite+aiosqlite:///{tmp}/bot.sqlite3", key)
            try:
                yield db
            finally:
                await db.engine.dispose()
        return
    scratch = f"watch_bench_{os.getpid()}_{int(time.time())}"
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{scratch}"')
        try:
            url = make_url(pg_url).set(database=scratch).render_as_string(hide_password=False)
            db = await attach_db(kind, url, key)
            try:
                yield db
            finally:
                await db.engine.dispose()
        finally:
            async with admin.connect() as conn:
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    finally:
        await admin.dispose()


async def postgres_unreachable(pg_url: str) -> str | None:
    """None when PostgreSQL answers, else why not."""
    engine = create_async_engine(pg_url)
    try:
        async with asyncio.timeout(5), engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
        return None
    except Exception as exc:  # anything: the benchmark then says so and skips
        return f"{type(exc).__name__}: {exc}"
    finally:
        await engine.dispose()


async def seed(db: Db, n: int, *, first_id: int = 1) -> list[str]:
    """N linked sessions, all due, inserted with Core in chunks; each session's secrets
    sealed with the real Cipher (bench/sweep_kit.py's rows). Returns the SIDs."""
    rows, _ = session_rows(db.cipher, first_id, n, datetime.now(UTC), due=first_id + n)
    for start in range(0, n, SEED_CHUNK):
        async with db.engine.begin() as conn:
            await conn.execute(insert(SESSIONS), rows[start : start + SEED_CHUNK])
    if db.kind == "postgres":
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE remote_sessions")  # what autovacuum would do
    return [sid_of(i) for i in range(first_id, first_id + n)]


async def make_all_due(db: Db) -> None:
    past = datetime.now(UTC) - timedelta(seconds=60)
    async with db.engine.begin() as conn:
        await conn.execute(update(SESSIONS).values(next_check_at=past, state="active", failures=0))


# -- statements per sweep -----------------------------------------------------------------

_PARAM_LIST = re.compile(r"\((?:\?|\$\d+(?:::[A-Z ]+)?)(?:, (?:\?|\$\d+(?:::[A-Z ]+)?))+\)")
_QUALIFIER = re.compile(r"\b(?:remote_sessions|chats|meta|stat_buckets)\.(?=\w)")


def shape_of(statement: str) -> str:
    shape = re.sub(r"\s+", " ", statement).strip()
    shape = _PARAM_LIST.sub("(?, ...)", shape)
    return _QUALIFIER.sub("", shape)


@dataclass
class QueryLog:
    """Counts statements with a `before_cursor_execute` listener on the engine."""

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

    @contextlib.contextmanager
    def listening(self, engine: AsyncEngine) -> Iterator[None]:
        event.listen(engine.sync_engine, "before_cursor_execute", self)
        try:
            yield
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", self)


async def explain(db: Db, log: QueryLog) -> list[tuple[str, list[str]]]:
    """The plans of the watcher's reads, for the very statements (and values) it issued."""
    wanted: list[tuple[str, Callable[[str], bool]]] = [
        ("due sessions", lambda s: s.startswith("SELECT") and "next_check_at <=" in s),
        ("next due time", lambda s: "min(next_check_at)" in s),
        ("pending notices", lambda s: s.startswith("SELECT") and "notice =" in s),
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
            rows = (await conn.exec_driver_sql(prefix + statement, tuple(params))).all()
            plans.append((label, [str(r[-1]) for r in rows]))
    return plans


# -- the checker --------------------------------------------------------------------------


def make_watch(
    db: Db, spaces: SpacesClient, bot: Bot, concurrency: int
) -> tuple[SessionWatch, Notifier]:
    build_types_in_use()  # as bot.app.run does before anything else (built once per process)
    """The watcher exactly as bot.app wires it (services, notifier, sender, owners' stats)."""
    services = build_services(
        settings=bench_settings(check_concurrency=concurrency),  # the bot's own is `bot`
        store=db.store,
        owners=db.owners,
        remote_services=ServiceRegistry([SpacesService(spaces)]),
        cipher=db.cipher,
        bot=bot,
        i18n=build_i18n(),
    )
    notifier = build_notifier(services)
    return build_watch(services, notifier), notifier


async def checker_sweep(
    db: Db,
    base: str,
    transport: str,
    concurrency: int,
    n: int,
    fake_pid: int | None,
    *,
    log: QueryLog | None = None,
    profile: str | None = None,
    reset: bool = True,
) -> Figure:
    """One sweep of N due sessions; errors = sessions not confirmed."""
    if reset:
        await make_all_due(db)
    http = spaces_transport(transport)
    bot = build_bot(bench_settings())
    try:
        spaces = spaces_client(http, base)
        watch, _ = make_watch(db, spaces, bot, concurrency)

        async def body() -> int:
            with profiled(profile):
                await watch.sweep()
            confirmed = sum(
                v for (_, verdict, _), v in watch.totals.items() if verdict == "confirmed"
            )
            return n - confirmed

        with log.listening(db.engine) if log else contextlib.nullcontext():
            return await measured(CHECKER_NAMES[transport], n, fake_pid, body)
    finally:
        await http.aclose()
        await bot.session.close()


@contextlib.contextmanager
def profiled(kind: str | None) -> Iterator[None]:
    if kind is None:
        yield
    elif kind == "pyinstrument":
        # Imported by name: an optional bench-only tool, with or without stubs where mypy runs.
        profiler = importlib.import_module("pyinstrument").Profiler(async_mode="enabled")
        profiler.start()
        try:
            yield
        finally:
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False))
    else:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        try:
            yield
        finally:
            prof.disable()
            pstats.Stats(prof, stream=sys.stdout).sort_stats(PROFILE_SORT).print_stats(60)


async def throughput(
    db: Db,
    base: str,
    sids: Sequence[str],
    transports: Sequence[str],
    concurrency: int,
    repeat: int,
    pid: int | None,
    log: QueryLog | None = None,
) -> list[Summary]:
    """Checker and floors in interleaved rounds, so a noisy moment hits all of them. httpx's
    own pool, several times slower, runs in the first round only (it is the reference)."""
    figures: list[Figure] = []
    for round_no in range(repeat):
        for transport in transports:
            if round_no and transport == "httpx" and len(transports) > 1:
                continue
            logged = log if round_no == 0 and transport == transports[-1] else None
            figures.append(
                await checker_sweep(db, base, transport, concurrency, len(sids), pid, log=logged)
            )
        figures.extend(await floors(base, sids, concurrency, pid, slow=round_no == 0))
    return summarise(figures)


# -- RSS: a fresh process per size --------------------------------------------------------


async def rss_child(args: argparse.Namespace) -> None:
    """One sweep of `args.rss_child` due sessions in this fresh process; one JSON line out.

    By default the database was seeded by the parent and this process does what the bot
    does (imports, migrate, sweep); --rss-seed-in-child seeds here first (the seeding's own
    buffers then count in the peak)."""
    after_imports = peak_rss_kb()
    seeded_here = args.db_url is None
    async with contextlib.AsyncExitStack() as stack:
        if seeded_here:
            db = await stack.enter_async_context(open_db(args.db, args.pg_url))
            await seed(db, args.rss_child)
        else:
            db = await attach_db(args.db, args.db_url, os.environ["WATCH_BENCH_KEY"])
            stack.push_async_callback(db.engine.dispose)
        gc.collect()
        before_sweep = peak_rss_kb()
        figure = await checker_sweep(
            db, args.fake_url, args.transport, args.concurrency, args.rss_child, None, reset=False
        )
    result = {
        "sessions": args.rss_child,
        "seeded_here": seeded_here,
        "after_imports_kb": after_imports,
        "before_sweep_kb": before_sweep,
        "peak_kb": peak_rss_kb(),
        "sweep_wall_s": figure.wall,
        "sweep_cpu_s": figure.cpu,
        "errors": figure.errors,
    }
    print(json.dumps(result), flush=True)


async def rss_in_fresh_process(n: int, base: str, args: argparse.Namespace) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        env = dict(os.environ)
        where: list[str] = []
        if not args.rss_seed_in_child:
            db = await stack.enter_async_context(open_db(args.db, args.pg_url))
            await seed(db, n)
            await db.engine.dispose()  # the child is the only user while it runs
            env["WATCH_BENCH_KEY"] = db.key
            where = ["--db-url", db.url]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.watch_bench",
            *("--rss-child", str(n), "--fake-url", base, "--transport", args.transports[-1]),
            *("--concurrency", str(args.concurrency), "--db", args.db, "--pg-url", args.pg_url),
            *where,
            *(["--gc-freeze"] if args.gc_freeze else []),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), PHASE_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(f"the RSS run at {n} sessions took over {PHASE_TIMEOUT} s") from None
    if process.returncode != 0:
        raise RuntimeError(f"the RSS run at {n} sessions failed (exit {process.returncode})")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# -- notices under Telegram's limit -------------------------------------------------------


@dataclass
class NoticeFigure:
    label: str
    pending: int
    delivered: int
    too_many: int
    rate: float
    busiest_second: int
    wall: float


def busiest_window(times: Sequence[float], window: float = 1.0) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def notices_run(
    base: str, control: FakeSpacesControl, args: argparse.Namespace, *, inject_first_429: bool
) -> NoticeFigure:
    """M sessions the fake does not know (it answers 01001): one sweep ends them all and sends
    M notices through the bot's own TelegramSender at its default rate."""
    from tests.fakes.telegram_server import FakeTelegram, _ApiError

    class RateLimitedTelegram(FakeTelegram):
        """429 (retry_after=1) when more than `limit` sendMessage arrive within any 1 s;
        refused calls count as arrivals too (the strict reading of Telegram's limit)."""

        limit, window, retry_after = 30, 1.0, 1

        def __init__(self) -> None:
            super().__init__()
            self._arrivals: deque[float] = deque()

        def _check_fail_rules(self, call: Any) -> None:
            if call.method == "sendMessage":
                while self._arrivals and self._arrivals[0] <= call.at - self.window:
                    self._arrivals.popleft()
                self._arrivals.append(call.at)
                super()._check_fail_rules(call)  # injected failures (fail_next) first
                if len(self._arrivals) > self.limit:
                    raise _ApiError(
                        429,
                        f"Too Many Requests: retry after {self.retry_after}",
                        retry_after=self.retry_after,
                    )
                return
            super()._check_fail_rules(call)

    await control.accept_any_sid(False)
    m = args.notices
    async with open_db(args.db, args.pg_url) as db, RateLimitedTelegram() as tg:
        await seed(db, m, first_id=50_000_000)
        if inject_first_429:
            tg.fail_next(
                "sendMessage",
                error_code=429,
                description="Too Many Requests: retry after 1",
                retry_after=1,
            )
        settings = bench_settings(bot_token=tg.token, telegram_api_url=tg.url)
        bot = build_bot(settings)
        http = spaces_transport(args.transports[-1])
        try:
            spaces = spaces_client(http, base)
            watch, notifier = make_watch(db, spaces, bot, args.concurrency)
            wall0 = time.perf_counter()
            await asyncio.wait_for(watch.sweep(), PHASE_TIMEOUT)
            # What the outbox loop does at once when the sweep wakes it.
            await asyncio.wait_for(notifier.deliver_pending(), PHASE_TIMEOUT)
            wall = time.perf_counter() - wall0
        finally:
            await http.aclose()
            await bot.session.close()
        sends = [c for c in tg.calls if c.method == "sendMessage"]
        ok = sorted(c.at for c in sends if c.ok)
        span = ok[-1] - ok[0] if len(ok) > 1 else 0.0
    await control.accept_any_sid(True)
    return NoticeFigure(
        label="plus one injected 429 first" if inject_first_429 else "limit only",
        pending=m,
        delivered=len(ok),
        too_many=sum(1 for c in sends if c.status == 429),
        rate=(len(ok) - 1) / span if span else 0.0,
        busiest_second=busiest_window(sorted(c.at for c in sends)),
        wall=wall,
    )


# -- cookie isolation ---------------------------------------------------------------------


async def cookie_isolation(base: str, http: httpx.AsyncBaseTransport) -> str:
    """After another login's Set-Cookie, does a check still carry its own sid? Asked of
    `localhost` (a host name: aiohttp's cookie jar ignores cookies from bare IP addresses)."""
    from tests.fakes.spaces_server import FakeSpacesControl

    host = base.replace("127.0.0.1", "localhost")
    async with FakeSpacesControl(base) as control:
        await control.add_user("bob", "bobpassword", 2002, "Bob")
        client = spaces_client(http, host)
        alice = await client.login("alice", "secret123")
        bob = await client.login("bob", "bobpassword")  # answers Set-Cookie: sid=<bob's>
        checked = await client.check(alice.sid)
        calls = (await control.calls_summary())["calls"]
        sent = [c["sid"] for c in calls if c["method"] == "check"][-1]
        for sid in (alice.sid, bob.sid):
            await control.expire(sid=sid)
    if checked.user_id == 1001 and sent == alice.sid:
        return "ok"
    return "LEAKS: alice's check went out with bob's sid"


# -- the whole run ------------------------------------------------------------------------


async def main_run(args: argparse.Namespace) -> None:
    from tests.fakes.spaces_server import FakeSpacesProcess

    if args.db == "postgres":
        why = await postgres_unreachable(args.pg_url)
        if why is not None:
            print(f"PostgreSQL at {args.pg_url} is not reachable ({why}); skipped.")
            return
    print(
        f"== watch benchmark: {args.sessions} sessions, concurrency {args.concurrency}, "
        f"db {args.db}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}{', gc.freeze()' if args.gc_freeze else ''}"
    )
    started = time.perf_counter()
    async with FakeSpacesProcess() as fake, fake.control() as control:
        pid = fake.process.pid if fake.process else None
        print(f"fake Spaces: {fake.url}, own process (pid {pid})")
        isolation = [(t, spaces_transport(t)) for t in args.transports]
        package = httpx_aiohttp_package()
        if package is not None:
            isolation.append(("httpx-aiohttp 0.2 as shipped", package))
        for name, http in isolation:
            async with http:
                print(f"cookie isolation, {name}: {await cookie_isolation(fake.url, http)}")
        await control.accept_any_sid(True)

        async with open_db(args.db, args.pg_url) as db:
            wall0 = time.perf_counter()
            sids = await seed(db, args.sessions)
            print(f"seeded {len(sids)} sessions in {time.perf_counter() - wall0:.1f} s")
            log = QueryLog()
            rows = await throughput(
                db, fake.url, sids, args.transports, args.concurrency, args.repeat, pid, log
            )
            print(
                f"\n-- throughput: one sweep of {args.sessions} due sessions, concurrency "
                f"{args.concurrency}, spaces_rate=0; median of {args.repeat} rounds"
            )
            print_table(rows)

            batch = WatchConfig(interval=1).batch_size
            print(
                f"\n-- statements in one sweep ({CHECKER_NAMES[args.transports[-1]]}, "
                f"{args.sessions} due, batch {batch}): {log.total}"
            )
            for shape, count in log.statements.most_common():
                n_rows = log.rows[shape]
                many = f" ({n_rows} rows, executemany)" if n_rows != count else ""
                print(f"  {count:6d} x{many} {shape[:240]}")
            print("\n-- query plans of those statements, as issued")
            for label, lines in await explain(db, log):
                print(f"  {label}:")
                for line in lines:
                    print(f"    {line}")

            if args.profile:
                print(f"\n-- profile of one sweep ({CHECKER_NAMES[args.transports[-1]]})")
                await checker_sweep(
                    db,
                    fake.url,
                    args.transports[-1],
                    args.concurrency,
                    args.sessions,
                    pid,
                    profile=args.profile,
                )

        if args.compare:
            n = args.compare_n
            print(f"\n-- by concurrency: {n} checks, median of {args.repeat} rounds")
            async with open_db(args.db, args.pg_url) as db:
                sids = await seed(db, n)
                for c in args.compare:
                    print(f"  concurrency {c}:")
                    print_table(
                        await throughput(db, fake.url, sids, args.transports, c, args.repeat, pid)
                    )

        if args.rss_sizes:
            what = "seeds and sweeps" if args.rss_seed_in_child else "sweeps (seeded by this one)"
            print(
                f"\n-- peak RSS (VmHWM) of a fresh process that {what}; "
                f"{CHECKER_NAMES[args.transports[-1]]}, concurrency {args.concurrency}"
            )
            for n in args.rss_sizes:
                r = await rss_in_fresh_process(n, fake.url, args)
                mb = {k: r[k] / 1024 for k in ("after_imports_kb", "before_sweep_kb", "peak_kb")}
                print(
                    f"  {n:7d} sessions: peak {mb['peak_kb']:6.1f} MB (after imports "
                    f"{mb['after_imports_kb']:.1f}, before the sweep {mb['before_sweep_kb']:.1f}, "
                    f"sweep +{mb['peak_kb'] - mb['before_sweep_kb']:.1f}); sweep "
                    f"{r['sweep_wall_s']:.1f} s = {n / r['sweep_wall_s']:.0f} checks/s, "
                    f"{r['sweep_cpu_s'] / n * 1000:.3f} CPU s/1000, errors {r['errors']}"
                )

        if args.notices:
            print(
                f"\n-- expiry notices: {args.notices} sessions end in one sweep; the fake "
                "Telegram answers 429 (retry_after=1) above 30 sendMessage in any 1 s; "
                f"sender at the default {bench_settings().telegram_rate_per_second:g}/s"
            )
            for inject in (False, True):
                nf = await notices_run(fake.url, control, args, inject_first_429=inject)
                print(
                    f"  {nf.label:30} delivered {nf.delivered}/{nf.pending}, "
                    f"{nf.rate:.1f} notices/s, 429s: {nf.too_many}, busiest 1 s: "
                    f"{nf.busiest_second} sendMessage, sweep {nf.wall:.1f} s"
                )
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sessions", type=int, default=10_000, help="N: 1000..100000 (10000)")
    p.add_argument("--concurrency", type=int, default=16, help="checks in flight (16)")
    p.add_argument(
        "--transport",
        choices=[*TRANSPORTS, "both"],
        default="both",
        help="the checker's HTTP pool: httpx's own, the bot's aiohttp one, or both (both)",
    )
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--pg-url", default=PG_URL)
    p.add_argument("--repeat", type=int, default=3, help="rounds; medians are printed (3)")
    p.add_argument("--rss-sizes", default="10000,100000", help="comma-separated; '' skips")
    p.add_argument("--notices", type=int, default=300, help="M expiry notices; 0 skips (300)")
    p.add_argument(
        "--compare", default="1,50", help="more concurrency levels, comma-separated; '' skips"
    )
    p.add_argument("--compare-n", type=int, default=2000, help="checks per level (2000)")
    p.add_argument("--profile", choices=["cprofile", "pyinstrument"])
    p.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() after startup (a proposal for bot.app.run; see bench/README.md)",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, one round: a smoke run")
    p.add_argument(
        "--rss-seed-in-child",
        action="store_true",
        help="seed inside the measured process too (default: the parent seeds)",
    )
    p.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)  # internal
    p.add_argument("--fake-url", help=argparse.SUPPRESS)  # internal
    p.add_argument("--db-url", help=argparse.SUPPRESS)  # internal
    args = p.parse_args(argv)
    if args.quick:
        args.sessions, args.rss_sizes, args.notices, args.repeat = 1000, "1000,3000", 40, 1
        args.compare, args.compare_n = "1", 500
    args.transports = TRANSPORTS if args.transport == "both" else (args.transport,)
    if args.rss_child is None and not 1000 <= args.sessions <= 100_000:
        p.error("--sessions must be between 1000 and 100000")
    args.rss_sizes = [int(x) for x in str(args.rss_sizes).split(",") if x.strip()]
    args.compare = [int(x) for x in str(args.compare).split(",") if x.strip()]
    if any(not 0 < n <= 100_000 for n in args.rss_sizes):
        p.error("--rss-sizes must be between 1 and 100000")
    if not 1 <= args.repeat <= 10 or not 1 <= args.concurrency <= 256:
        p.error("--repeat must be 1..10 and --concurrency 1..256")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="  [log] %(name)s: %(message)s")
    args = parse_args(argv)
    if args.gc_freeze:
        # What the bot could do once wired: aiogram's ~250k objects leave the collector's
        # sight, so the full collections a sweep triggers no longer walk them.
        gc.collect()
        gc.freeze()
    asyncio.run(rss_child(args) if args.rss_child is not None else main_run(args))


if __name__ == "__main__":
    main()
