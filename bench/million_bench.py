"""One million stored sessions on PostgreSQL and on SQLite: seeding, a full sweep, peak RSS
and the due query's plan.

    nice .venv/bin/python -m bench.million_bench [--sessions 1000000] [--db postgres,sqlite]
        [--due K] [--concurrency 16] [--pg-url URL]

Per database: a scratch database is seeded with N sessions in a child process (COPY on
PostgreSQL, executemany in batches of 50,000 on SQLite; every session's secrets sealed with
the real cipher, one process, timed apart), then one watcher process, wired as bot.app wires
it, does one `SessionWatch.sweep()` with the politeness limit lifted against
bench/check_counter.py in its own process. `--due K` makes only K of the N due (a stated
sample, for a shorter run); by default all N are, and the sweep checks every one.

Printed: seeding time; the sweep's checks/s and CPU per 1,000 checks; sessions checked
twice or never; the watcher's peak RSS (VmHWM and getrusage's ru_maxrss); the size on disk;
every statement the sweep sent, timed; and the plan of each, taken with EXPLAIN (PostgreSQL)
or EXPLAIN QUERY PLAN (SQLite) of the very statement and values the store sent, captured by
an event hook on its engine (the due query's plan while the table is still full of due
sessions). Next to them: a bare aiohttp loop of the same requests, and the goals. A full
run takes about half an hour per database on a 2-core machine; run it with `nice`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.check_counter import CheckCounter
from bench.sweep_kit import (
    PG_URL,
    ScratchDb,
    SweepRun,
    floor_run,
    pg_server_version,
    plain_dsn,
    postgres_unreachable,
    scratch_db,
    sweep_run,
)

RSS_GOAL_MB = 150  # README: "RSS under 150 MB at 100,000 sessions"
FLOOR_SAMPLE = 50_000
# Ciphertexts in a plan's literals (the sealed secrets the write is conditional on).
_SEALED = re.compile(r"'\{[^']*\}'")


def mb(kb: float) -> str:
    return f"{kb / 1024:.1f} MB"


def full_scan(plan: Sequence[str]) -> bool:
    """The plan reads every row of remote_sessions: a sequential scan (PostgreSQL), or a
    SCAN rather than a SEARCH of the table or of one of its indexes (SQLite)."""
    text = "\n".join(plan)
    return bool(re.search(r"Seq Scan on remote_sessions\b|^SCAN remote_sessions\b", text, re.M))


def reads_by_index(plan: Sequence[str]) -> bool:
    """The plan reads remote_sessions through an index, with no full scan and no sort."""
    text = "\n".join(plan)
    sort = re.search(r"^\s*(->\s*)?Sort\b|TEMP B-TREE", text, re.MULTILINE)
    return "Index" in text.replace("INDEX", "Index") and not full_scan(plan) and not sort


def file_size(path: str) -> int:
    """An SQLite database's size with its write-ahead log."""
    files = [Path(path + suffix) for suffix in ("", "-wal")]
    return sum(f.stat().st_size for f in files if f.exists())


async def disk_size(db: ScratchDb, pg_url: str) -> int:
    if db.kind == "sqlite":
        return file_size(db.name)
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    url = make_url(pg_url).set(database=db.name).render_as_string(hide_password=False)
    conn = await asyncpg.connect(plain_dsn(url), timeout=10)
    try:
        return int(await conn.fetchval("SELECT pg_total_relation_size('remote_sessions')"))
    finally:
        await conn.close()


def report(label: str, run: SweepRun, size: int) -> bool:
    """Prints one database's figures; returns whether the due query read by index."""
    seeded, watcher = run.seeded, run.watchers[0]
    rows, due = seeded["rows"], seeded["due"]
    sealing_us = seeded["seal_s"] / rows * 1e6
    bulk = "COPY" if "postgres" in label.lower() else "executemany, 50,000 a batch"
    print(f"\n-- {label}: {rows:,} stored sessions")
    print(
        f"  seeding: {seeded['total_s']:.1f} s = {rows / seeded['total_s']:,.0f} rows/s "
        f"(open + migrate {seeded['open_and_migrate_s']:.1f} s; sealing with the real cipher "
        f"{seeded['seal_s']:.1f} s = {sealing_us:.0f} us a row, one process; "
        f"{bulk} {seeded['insert_s']:.1f} s"
        + (f"; ANALYZE {seeded['analyze_s']:.1f} s" if seeded["analyze_s"] else "")
        + ")"
    )
    sample = "every stored session" if due == rows else f"a sample of {due:,} due of {rows:,}"
    db = run.per_1000(run.db_cpu)
    print(
        f"  sweep ({sample}): {run.wall:.1f} s = {run.checks / run.wall:,.0f} checks/s; CPU s "
        f"per 1,000 checks: watcher {watcher['cpu'] / max(1, watcher['checks']) * 1000:.3f}"
        + (f", PostgreSQL {db:.3f}" if db is not None else " (SQLite's work included)")
        + f", counter {run.per_1000(run.fake_cpu) or 0:.3f}; machine busy {run.machine_busy:.0%}"
    )
    print(
        f"  checked twice: {run.counts['twice']:,}, never: {due - run.counts['sessions']:,} "
        f"(of {due:,} due); outcomes {watcher['outcomes']}"
    )
    peak = watcher["vmhwm_kb"]
    print(
        f"  watcher's peak RSS: {mb(peak)} (VmHWM; ru_maxrss {mb(watcher['ru_maxrss_kb'])}); "
        f"{mb(watcher['rss_before_kb'])} before the sweep, so the sweep added "
        f"{mb(max(0, peak - watcher['rss_before_kb']))}"
        f" — goal under {RSS_GOAL_MB} MB: {'met' if peak / 1024 < RSS_GOAL_MB else 'NOT MET'}"
    )
    print(f"  on disk after the sweep: {size / 2**20:,.0f} MB (table and its indexes)")
    print("  statements of the sweep (count, mean and slowest time):")
    for s in watcher["statements"]:
        many = f" ({s['rows']:,} rows)" if s["rows"] != s["count"] else ""
        print(
            f"    {s['count']:7,d} x{many}, mean {s['seconds'] / s['count'] * 1000:.2f} ms, "
            f"slowest {s['slowest'] * 1000:.1f} ms: {s['shape'][:160]}"
        )
    by_index = False
    scans = []
    for plan in watcher["plans"]:
        print(f"  plan, {plan['label']}: {plan['statement'][:160]}")
        for line in plan["plan"]:
            print("      " + _SEALED.sub("'<sealed>'", line))
        if plan["label"].startswith("due query"):
            by_index = reads_by_index(plan["plan"])
        if full_scan(plan["plan"]):
            scans.append(plan["statement"])
    verdict = "met" if by_index else "NOT MET"
    print(f"  goal: the due query reads by index, no full scan, no sort: {verdict}")
    print(
        "  goal: no statement of the sweep reads every row of remote_sessions: "
        + ("met" if not scans else "NOT MET, " + "; ".join(s[:110] for s in scans))
    )
    return by_index


async def run(args: argparse.Namespace) -> int:
    from bot.storage.crypto import generate_key

    n, c = args.sessions, args.concurrency
    print(
        f"== million bench: {n:,} sessions, {c} checks in flight, SPACES_RATE_PER_SECOND=0, "
        f"one watcher; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    started = time.perf_counter()
    key = generate_key()
    rates: dict[str, float] = {}
    async with CheckCounter() as counter:
        for kind in args.db:
            if kind == "postgres":
                why = await postgres_unreachable(args.pg_url)
                if why is not None:
                    print(f"\nPostgreSQL at {args.pg_url} does not answer ({why}); skipped.")
                    continue
                label = f"PostgreSQL {await pg_server_version(args.pg_url)}"
            else:
                label = "SQLite"
            async with scratch_db(kind, args.pg_url) as db:
                result = await sweep_run(
                    counter,
                    db,
                    key,
                    sessions=n,
                    watchers=1,
                    concurrency=c,
                    pg_url=args.pg_url,
                    due=args.due,
                    plans=True,
                    phase_seconds=4 * 3600,
                )
                size = await disk_size(db, args.pg_url)
            report(label, result, size)
            rates[label] = result.checks / result.wall
        sample = min(n if args.due is None else args.due, FLOOR_SAMPLE)
        floor = await floor_run(counter, key, sessions=sample, processes=1, concurrency=c)
    cpu = floor.watchers[0]["cpu"] / sample * 1000
    print(
        f"\n-- floor: the same check request in a bare aiohttp loop, {sample:,} requests, {c} in "
        f"flight: {floor.checks / floor.wall:,.0f} checks/s, {cpu:.3f} CPU s per 1,000"
    )
    for label, rate in rates.items():
        print(f"  {label}: the sweep ran at {rate / (floor.checks / floor.wall):.0%} of the floor")
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sessions", type=int, default=1_000_000, help="stored sessions (1000000)")
    p.add_argument("--due", type=int, help="only this many due: a sample (default: all)")
    p.add_argument("--db", default="postgres,sqlite", help="comma-separated (postgres,sqlite)")
    p.add_argument("--concurrency", type=int, default=16, help="checks in flight (16)")
    p.add_argument("--pg-url", default=PG_URL, help="a server the bench may create databases on")
    args = p.parse_args(argv)
    args.db = [d.strip() for d in args.db.split(",") if d.strip()]
    if not args.db or any(d not in ("postgres", "sqlite") for d in args.db):
        p.error("--db takes postgres, sqlite or both")
    if not 1_000 <= args.sessions <= 5_000_000:
        p.error("--sessions must be between 1000 and 5000000")
    if args.due is not None and not 1 <= args.due <= args.sessions:
        p.error("--due must be between 1 and --sessions")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(asyncio.run(run(parse_args(argv))))


if __name__ == "__main__":
    main()
