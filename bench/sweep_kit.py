"""What bench/sweep_bench.py and bench/million_bench.py share: scratch databases, seeding,
and the processes that do the measured work.

Each measured thing runs in its own OS process, started by the bench and driven over its
stdin/stdout, one line at a time:

    python -m bench.sweep_kit seed  --db-url URL --sessions N [--due K]
    python -m bench.sweep_kit watch --db-url URL --fake URL [--concurrency C] [--plans]
    python -m bench.sweep_kit floor --fake URL --first I --count N [--concurrency C]

`seed` opens the database as the bot does (`bot.app.prepare_store`: key canary, migrations)
and bulk-loads N sessions, each sealed with the real cipher; it prints one JSON line.
`watch` opens it the same way (holding an SQLite file as the bot does), wires the watch as
`bot.app.run` does (`build_remote_services`, `build_services`, `build_notifier`,
`build_watch`, and joins the instances with `build_instance_lease`), prints READY, waits
for GO, runs one `SessionWatch.sweep()` with the instance lease renewed beside it, prints
one JSON line (its CPU, RSS and every statement it sent), and waits for EXIT. `floor` is
a bare aiohttp loop of the same check request, same protocol.
The encryption key comes in the environment (BENCH_ENCRYPTION_KEY), never on a command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import re
import resource
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from bench.check_counter import CheckCounter, ck_of, nid_of, sid_of

ROOT: Final = Path(__file__).resolve().parents[1]
PG_URL: Final = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
KEY_ENV: Final = "BENCH_ENCRYPTION_KEY"
# Long enough that a session checked in this sweep is not due again before it ends.
INTERVAL: Final = 86_400.0
SEED_CHUNK: Final = 50_000
CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
log = logging.getLogger("bench")


# -- measuring from outside -----------------------------------------------------------------


def proc_cpu(pid: int) -> float | None:
    """user+system CPU seconds of a process, from /proc (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs together, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def proc_status_kb(name: str) -> int:
    """VmRSS / VmHWM of this process in kB."""
    match = re.search(rf"{name}:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else 0


# -- scratch databases ----------------------------------------------------------------------


@dataclass(frozen=True)
class ScratchDb:
    kind: str  # "postgres" or "sqlite"
    url: str
    name: str  # the PostgreSQL database's name, or the SQLite file


def plain_dsn(url: str) -> str:
    """An SQLAlchemy asyncpg URL as asyncpg itself takes it."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def scratch_db(kind: str, pg_url: str = PG_URL) -> AsyncIterator[ScratchDb]:
    """An empty database that is dropped (or deleted) afterwards: a new database on
    `pg_url`'s server, never touching `pg_url`'s own tables, or a file in a temporary folder."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
            path = Path(tmp) / "bot.sqlite3"
            yield ScratchDb(kind, f"sqlite+aiosqlite:///{path}", str(path))
        return
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    name = f"sweep_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(plain_dsn(pg_url), timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
            yield ScratchDb(kind, url, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def postgres_unreachable(pg_url: str) -> str | None:
    """None when PostgreSQL answers, else why not (the bench then says so and skips it)."""
    try:
        import asyncpg

        conn = await asyncpg.connect(plain_dsn(pg_url), timeout=5)
    except Exception as exc:  # anything: said in one line
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def pg_server_version(pg_url: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(plain_dsn(pg_url), timeout=10)
    try:
        version: str = await conn.fetchval("SHOW server_version")
        return version.split()[0]
    finally:
        await conn.close()


async def pg_backend_cpu(pg_url: str, database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving `database` (same machine)."""
    import asyncpg

    conn = await asyncpg.connect(plain_dsn(pg_url), timeout=10)
    try:
        pids = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await conn.close()
    found = {int(r["pid"]): proc_cpu(int(r["pid"])) for r in pids}
    return {pid: cpu for pid, cpu in found.items() if cpu is not None}


# -- the child processes, seen from the bench -----------------------------------------------


class Child:
    """`python -m bench.sweep_kit ...` with a line protocol on stdin/stdout; stderr is ours."""

    def __init__(self, args: Sequence[str], key: str, timeout: float) -> None:
        self._args = list(args)
        self._env = {**os.environ, KEY_ENV: key}
        self.timeout = timeout
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.sweep_kit",
            *self._args,
            cwd=ROOT,
            env=self._env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**24,  # the result line carries every statement's shape
        )

    async def line(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), self.timeout)
        if not raw:
            code = await self.process.wait()
            raise RuntimeError(f"bench.sweep_kit {self._args[0]} exited ({code}) before answering")
        return raw.decode().strip()

    async def result(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(await self.line())
        return value

    def send(self, word: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"{word}\n".encode())

    async def finish(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ConnectionError):
            self.send("EXIT")
        # A child that is done exits at once; one cut short (an error, Ctrl-C) is stopped.
        for stop in (process.terminate, process.kill):
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), 5)
                return
            except TimeoutError:
                stop()
        await process.wait()


async def seed(db: ScratchDb, key: str, sessions: int, due: int | None = None) -> dict[str, Any]:
    """Seeds in a child process, so the bench's own memory stays small."""
    args = ["seed", "--db-url", db.url, "--sessions", str(sessions)]
    child = Child([*args, *(["--due", str(due)] if due is not None else [])], key, 7200)
    await child.start()
    try:
        return await child.result()
    finally:
        await child.finish()


@dataclass
class SweepRun:
    """One sweep by W watcher processes on one database, measured from outside too."""

    watchers: list[dict[str, Any]]
    counts: dict[str, Any]  # the check counter's, for this run only
    wall: float  # first watcher's start to last watcher's end
    fake_cpu: float
    db_cpu: float | None  # PostgreSQL backends serving this database
    machine_busy: float  # share of all CPUs busy during the run, everything included
    seeded: dict[str, Any] = field(default_factory=dict)

    @property
    def checks(self) -> int:
        return int(self.counts["checks"])

    def per_1000(self, seconds: float | None) -> float | None:
        return None if seconds is None or not self.checks else seconds / self.checks * 1000


async def sweep_run(
    counter: CheckCounter,
    db: ScratchDb,
    key: str,
    *,
    sessions: int,
    watchers: int,
    concurrency: int,
    pg_url: str = PG_URL,
    due: int | None = None,
    plans: bool = False,
    phase_seconds: float = 3600.0,
) -> SweepRun:
    """Seed, then one full sweep by `watchers` processes started together on `db`."""
    seeded = await seed(db, key, sessions, due)
    await counter.reset()
    children = [
        Child(
            [
                *("watch", "--db-url", db.url, "--fake", counter.url),
                *("--concurrency", str(concurrency), *(["--plans"] if plans else [])),
            ],
            key,
            phase_seconds,
        )
        for _ in range(watchers)
    ]
    try:
        for child in children:
            await child.start()
        for child in children:
            if (word := await child.line()) != "READY":
                raise RuntimeError(f"a watcher said {word!r} instead of READY")
        return await _measured(counter, db, pg_url, children, seeded)
    finally:
        await asyncio.gather(*(child.finish() for child in children))


async def floor_run(
    counter: CheckCounter, key: str, *, sessions: int, processes: int, concurrency: int
) -> SweepRun:
    """The same check request in a bare aiohttp loop, `sessions` split over `processes`."""
    await counter.reset()
    share = -(-sessions // processes)
    children = [
        Child(
            [
                *("floor", "--fake", counter.url, "--first", str(i * share)),
                *("--count", str(min(share, sessions - i * share))),
                *("--concurrency", str(concurrency)),
            ],
            key,
            3600,
        )
        for i in range(processes)
    ]
    try:
        for child in children:
            await child.start()
        for child in children:
            if (word := await child.line()) != "READY":
                raise RuntimeError(f"a floor process said {word!r} instead of READY")
        return await _measured(counter, None, "", children, {})
    finally:
        await asyncio.gather(*(child.finish() for child in children))


async def _measured(
    counter: CheckCounter,
    db: ScratchDb | None,
    pg_url: str,
    children: Sequence[Child],
    seeded: dict[str, Any],
) -> SweepRun:
    postgres = db is not None and db.kind == "postgres"
    assert db is None or not postgres or db.name
    fake0 = (await counter.counts())["cpu"]
    pg0 = await pg_backend_cpu(pg_url, db.name) if postgres and db else {}
    busy0, total0 = machine_jiffies()
    for child in children:
        child.send("GO")
    results = list(await asyncio.gather(*(child.result() for child in children)))
    busy1, total1 = machine_jiffies()
    pg1 = await pg_backend_cpu(pg_url, db.name) if postgres and db else {}
    counts = await counter.counts()
    db_cpu = sum(cpu - pg0.get(pid, 0.0) for pid, cpu in pg1.items()) if postgres else None
    return SweepRun(
        watchers=results,
        counts=counts,
        wall=max(r["end"] for r in results) - min(r["start"] for r in results),
        fake_cpu=counts["cpu"] - fake0,
        db_cpu=db_cpu,
        machine_busy=(busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0,
        seeded=seeded,
    )


# -- statements, as the store sends them ----------------------------------------------------

_PARAM_LIST = re.compile(r"\((?:\?|\$\d+(?:::[A-Z ]+)?)(?:, (?:\?|\$\d+(?:::[A-Z ]+)?))+\)")
_QUALIFIER = re.compile(r"\b(?:remote_sessions|chats|meta|stat_buckets)\.(?=\w)")
_DUE = re.compile(r"next_check_at\s*<=?\s*[?$]", re.IGNORECASE)


def shape_of(statement: str) -> str:
    shape = re.sub(r"\s+", " ", statement).strip()
    return _QUALIFIER.sub("", _PARAM_LIST.sub("(?, ...)", shape))


def is_due_query(shape: str) -> bool:
    """The statement that reads (or claims) the due sessions: it compares next_check_at with
    a parameter, and is not the min() of the next due time."""
    return "remote_sessions" in shape and bool(_DUE.search(shape)) and "min(" not in shape


@dataclass
class _Shape:
    count: int = 0
    rows: int = 0
    seconds: float = 0.0
    slowest: float = 0.0


class StatementLog:
    """Every statement the engine sends, by shape, with its time: an event hook on the engine
    the store uses, so what is measured is what the store really executes."""

    def __init__(self) -> None:
        self.shapes: dict[str, _Shape] = {}
        self.examples: dict[str, tuple[str, Any]] = {}
        self.due_issued = asyncio.Event()
        self.due_shape: str | None = None

    def attach(self, sync_engine: Any) -> None:
        from sqlalchemy import event

        event.listen(sync_engine, "before_cursor_execute", self._before)
        event.listen(sync_engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, *_: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        took = time.perf_counter() - conn.info.pop("bench_started", time.perf_counter())
        shape = shape_of(statement)
        stats = self.shapes.setdefault(shape, _Shape())
        stats.count += 1
        stats.rows += len(parameters) if many else 1
        stats.seconds += took
        stats.slowest = max(stats.slowest, took)
        if shape not in self.examples:
            self.examples[shape] = (statement, parameters[0] if many else parameters)
            if self.due_shape is None and is_due_query(shape):
                self.due_shape = shape
                self.due_issued.set()

    def table(self) -> list[dict[str, Any]]:
        return [
            {
                "shape": shape,
                "count": s.count,
                "rows": s.rows,
                "seconds": s.seconds,
                "slowest": s.slowest,
                "due": is_due_query(shape),
            }
            for shape, s in sorted(self.shapes.items(), key=lambda kv: -kv[1].count)
        ]


async def explain(url: str, statement: str, parameters: Any) -> list[str]:
    """The plan of a statement as it was sent, with the values it was sent with, on a
    connection of its own: EXPLAIN (PostgreSQL, not run) or EXPLAIN QUERY PLAN (SQLite)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            sqlite = engine.dialect.name == "sqlite"
            prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
            rows = (await conn.exec_driver_sql(prefix + statement, tuple(parameters))).all()
            await conn.rollback()
    finally:
        await engine.dispose()
    return [str(r[-1]) for r in rows]


# -- in the child: seed ---------------------------------------------------------------------


def bench_settings(**overrides: Any) -> Any:
    from bot.config import Settings

    values: dict[str, Any] = {
        "bot_token": "123456:AABenchTokenThatIsNeverSentAnywhere0",
        "telegram_api_url": "http://127.0.0.1:9",  # never called: no notice is sent
        "spaces_rate_per_second": 0,  # the politeness limit lifted
        **overrides,
    }
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def opened_store(
    url: str, *, bot_process: bool = False, **settings: Any
) -> AsyncIterator[tuple[Any, Any]]:
    """(settings, what bot.app.prepare_store returns), opened as the bot opens its store;
    `bot_process`: holding the SQLite file as `bot.app.run` does (one process per file)."""
    from bot.app import hold_sqlite_database, prepare_store

    with tempfile.TemporaryDirectory(prefix="sweep-bench-data-") as data_dir:
        config = bench_settings(
            database_url=url,
            encryption_key=os.environ[KEY_ENV],
            data_dir=Path(data_dir),
            **settings,
        )
        async with contextlib.AsyncExitStack() as stack:
            if bot_process:
                hold_sqlite_database(config, stack)
            yield config, await prepare_store(config, stack, new_database=True)


def session_rows(
    cipher: Any, first: int, count: int, now: datetime, due: int
) -> tuple[list[dict[str, Any]], float]:
    """Rows for sessions first..first+count-1 (the first `due` of all due now, oldest
    first; the rest due in a day) and the seconds spent sealing their secrets."""
    from bot.domain import AccountKey
    from bot.spaces.service import CK, SERVICE_ID, SID
    from bot.storage.keys import seal_secrets

    rows: list[dict[str, Any]] = []
    sealing = 0.0
    backlog = now - timedelta(minutes=2)
    later = now + timedelta(days=1)
    for index in range(first, first + count):
        sid, nid = sid_of(index), nid_of(index)
        key = AccountKey(SERVICE_ID, str(nid))
        started = time.perf_counter()
        sealed = seal_secrets(cipher, nid, key, {SID: sid, CK: ck_of(sid)})
        sealing += time.perf_counter() - started
        rows.append(
            {
                "chat_id": nid,
                "service": SERVICE_ID,
                "account_id": key.account_id,
                "telegram_user_id": nid,
                "display_name": f"user{nid}",
                "secrets_enc": sealed,
                "legacy_seal": False,
                "linked_at": now - timedelta(days=1),
                "last_confirmed_at": now - timedelta(minutes=15),
                "last_checked_at": now - timedelta(minutes=15),
                "state": "active",
                "failures": 0,
                "next_check_at": (backlog if index < due else later)
                + timedelta(microseconds=index),
                "notice": "none",
            }
        )
    return rows, sealing


def _file_size(path: str) -> int:
    return Path(path).stat().st_size


async def seed_command(args: argparse.Namespace) -> None:
    """Bulk-load N sessions: COPY on PostgreSQL, executemany in large batches on SQLite."""
    from sqlalchemy import create_engine, insert, text
    from sqlalchemy.engine import make_url

    from bot.storage.base import SESSIONS

    started = time.perf_counter()
    async with opened_store(args.db_url) as (_, (_, _, cipher, sessionmaker)):
        opened = time.perf_counter() - started
        await sessionmaker.kw["bind"].dispose()
    due = args.sessions if args.due is None else args.due
    now = datetime.now(UTC)
    sealing = inserting = analyzing = 0.0
    postgres = make_url(args.db_url).get_backend_name() == "postgresql"
    if postgres:
        import asyncpg

        conn = await asyncpg.connect(plain_dsn(args.db_url))
        try:
            for first in range(0, args.sessions, SEED_CHUNK):
                rows, sealed = session_rows(
                    cipher, first, min(SEED_CHUNK, args.sessions - first), now, due
                )
                sealing += sealed
                columns = list(rows[0])
                records = [tuple(row[c] for c in columns) for row in rows]
                del rows
                at = time.perf_counter()
                await conn.copy_records_to_table(
                    "remote_sessions", records=records, columns=columns
                )
                inserting += time.perf_counter() - at
            at = time.perf_counter()
            await conn.execute("ANALYZE remote_sessions")  # what autovacuum does soon after
            analyzing = time.perf_counter() - at
        finally:
            await conn.close()
    else:
        engine = create_engine(make_url(args.db_url).set(drivername="sqlite"))
        try:
            with engine.begin() as conn:
                conn.execute(text("PRAGMA synchronous=NORMAL"))  # as the bot's connections
            for first in range(0, args.sessions, SEED_CHUNK):
                rows, sealed = session_rows(
                    cipher, first, min(SEED_CHUNK, args.sessions - first), now, due
                )
                sealing += sealed
                at = time.perf_counter()
                with engine.begin() as conn:
                    conn.execute(insert(SESSIONS), rows)
                inserting += time.perf_counter() - at
        finally:
            engine.dispose()
    database = make_url(args.db_url).database
    size = None if postgres or not database else _file_size(database)
    print(
        json.dumps(
            {
                "rows": args.sessions,
                "due": due,
                "open_and_migrate_s": opened,
                "seal_s": sealing,
                "insert_s": inserting,
                "analyze_s": analyzing,
                "total_s": time.perf_counter() - started,
                "file_bytes": size,
            }
        ),
        flush=True,
    )


# -- in the child: one sweep ----------------------------------------------------------------


async def _read_word() -> str:
    line: str = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip()


async def watch_command(args: argparse.Namespace) -> None:
    """One SessionWatch, wired as bot.app.run wires it, sweeps once between GO and EXIT."""
    from bot._telegram_types import build_types_in_use
    from bot.app import (
        BackgroundTask,
        build_bot,
        build_instance_lease,
        build_notifier,
        build_remote_services,
        build_services,
        build_watch,
    )
    from bot.locales import build_i18n
    from bot.spaces.transport import AiohttpTransport

    build_types_in_use()  # as bot.app.run does before the first update
    settings_in = {
        "spaces_base_url": args.fake,
        "check_concurrency": args.concurrency,
        "check_interval_seconds": args.interval,
    }
    async with opened_store(args.db_url, bot_process=True, **settings_in) as (settings, opened):
        store, owners, cipher, sessionmaker = opened
        engine = sessionmaker.kw["bind"]
        transport = AiohttpTransport()
        bot = build_bot(settings)
        try:
            services = build_services(
                settings=settings,
                store=store,
                owners=owners,
                remote_services=build_remote_services(settings, transport),
                cipher=cipher,
                bot=bot,
                i18n=build_i18n(settings.zone),
            )
            notifier = build_notifier(services)
            watch = build_watch(services, notifier)
            # This process among the others on the database, as bot.app.run joins it.
            instance = build_instance_lease(services, notifier, watch)
            await instance.join(sole=engine.dialect.name == "sqlite")
            lease = BackgroundTask("instance-lease", instance.run)
            statements = StatementLog()
            statements.attach(engine.sync_engine)
            gc.collect()
            rss_before = proc_status_kb("VmRSS")
            print("READY", flush=True)
            if await _read_word() != "GO":
                return
            lease.start()
            plans_while_due = (
                asyncio.create_task(_plan_while_due(args.db_url, statements))
                if args.plans
                else None
            )
            start, cpu0 = time.time(), time.process_time()
            await watch.sweep()
            end, cpu = time.time(), time.process_time() - cpu0
            await lease.stop()
            await instance.leave()
            plans: list[dict[str, Any]] = []
            if plans_while_due is not None:
                plans.append(await plans_while_due)
                plans += await _plans_after(args.db_url, statements)
            result = {
                "pid": os.getpid(),
                "checks": sum(watch.totals.values()),
                "outcomes": {"/".join(k): v for k, v in watch.totals.items()},
                "start": start,
                "end": end,
                "wall": end - start,
                "cpu": cpu,
                "rss_before_kb": rss_before,
                "vmhwm_kb": proc_status_kb("VmHWM"),
                "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "statements": statements.table(),
                "plans": plans,
            }
            print(json.dumps(result), flush=True)
            await _read_word()  # EXIT: the bench reads the database's CPU before we close
        finally:
            await transport.aclose()
            await bot.session.close()


async def _plan_while_due(url: str, statements: StatementLog) -> dict[str, Any]:
    """The due query's plan taken while the sweep runs, so the table is still full of due
    sessions: EXPLAIN does not run the statement, so it claims and locks nothing."""
    try:
        await asyncio.wait_for(statements.due_issued.wait(), 600)
    except TimeoutError:
        return {"label": "due query", "statement": "(not issued)", "plan": []}
    assert statements.due_shape is not None
    statement, parameters = statements.examples[statements.due_shape]
    plan = await explain(url, statement, parameters)
    return {"label": "due query, during the sweep", "statement": statements.due_shape, "plan": plan}


async def _plans_after(url: str, statements: StatementLog) -> list[dict[str, Any]]:
    """Every other statement the sweep sent to remote_sessions, explained after it."""
    out = []
    for shape, (statement, parameters) in statements.examples.items():
        if "remote_sessions" in shape and not is_due_query(shape):
            plan = await explain(url, statement, parameters)
            out.append({"label": "after the sweep", "statement": shape, "plan": plan})
    return out


# -- in the child: the floor ----------------------------------------------------------------


async def floor_command(args: argparse.Namespace) -> None:
    """The check request the Spaces client sends, in a bare aiohttp loop: same form, same
    headers and cookie, same concurrency, one session each; no database, no bookkeeping."""
    import aiohttp

    url = f"{args.fake}/neoapi/session"
    sids = iter([sid_of(i) for i in range(args.first, args.first + args.count)])
    errors = 0
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(sock_read=10, sock_connect=10),
    ) as session:

        async def worker() -> None:
            nonlocal errors
            for sid in sids:  # shared: each session is taken once
                form = aiohttp.FormData(default_to_multipart=True)
                form.add_field("method", "check")
                form.add_field("rid", "bench")
                headers = {
                    "X-Proxy": "spaces",
                    "Accept": "application/json",
                    "Cookie": f"json=1; sid={sid}",
                }
                async with session.post(url, data=form, headers=headers) as response:
                    body = await response.read()
                    if response.status != 200 or b'"code":"00000"' not in body:
                        errors += 1

        print("READY", flush=True)
        if await _read_word() != "GO":
            return
        start, cpu0 = time.time(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        end, cpu = time.time(), time.process_time() - cpu0
    result = {"checks": args.count, "errors": errors, "start": start, "end": end, "cpu": cpu}
    print(json.dumps({**result, "wall": end - start}), flush=True)
    await _read_word()


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="  [%(process)d] %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    seed_p = commands.add_parser("seed")
    seed_p.add_argument("--db-url", required=True)
    seed_p.add_argument("--sessions", type=int, required=True)
    seed_p.add_argument("--due", type=int, help="only this many due now (default: all)")
    watch_p = commands.add_parser("watch")
    watch_p.add_argument("--db-url", required=True)
    watch_p.add_argument("--fake", required=True)
    watch_p.add_argument("--concurrency", type=int, default=16)
    watch_p.add_argument("--interval", type=float, default=INTERVAL)
    watch_p.add_argument("--plans", action="store_true")
    floor_p = commands.add_parser("floor")
    floor_p.add_argument("--fake", required=True)
    floor_p.add_argument("--first", type=int, default=0)
    floor_p.add_argument("--count", type=int, required=True)
    floor_p.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    run = {"seed": seed_command, "watch": watch_command, "floor": floor_command}[args.command]
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
