"""One sweep on PostgreSQL by one and by two watcher processes, side by side in one run.

    .venv/bin/python -m bench.sweep_bench [--sessions 20000] [--concurrency 16] [--rounds 3]
        [--db postgres|sqlite] [--pg-url URL]

Each round seeds a fresh scratch database with N due sessions and runs one full sweep by
one watcher process, then (on a fresh database again) by two watcher processes started
together; each process is a real `SessionWatch`, wired as bot.app wires it, doing one
`sweep()` with a one-day interval (so each session is due exactly once). The Spaces they
check is bench/check_counter.py in its own process, counting the checks of each session.
Then the floor: the same check requests in a bare aiohttp loop, in one and in two processes.

Printed: checks/s, sessions/s, sessions checked more than once (the goal: 0) and never,
CPU seconds per 1,000 checks of each watcher process, of the PostgreSQL backends and of the
counter, and how busy the whole machine was. Figures, never assertions (see bench/README.md).
`--db sqlite` runs one watcher only: SQLite is for one instance.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.check_counter import CheckCounter
from bench.sweep_kit import (
    PG_URL,
    SweepRun,
    floor_run,
    pg_server_version,
    postgres_unreachable,
    scratch_db,
    sweep_run,
)


@dataclass
class Row:
    label: str
    runs: list[SweepRun]
    sessions: int

    def median(self, values: Sequence[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return float(statistics.median(known)) if known else None

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def checks_per_s(self) -> float:
        return statistics.median(r.checks / r.wall for r in self.runs)

    @property
    def sessions_per_s(self) -> float:
        return statistics.median(int(r.counts["sessions"]) / r.wall for r in self.runs)

    @property
    def twice(self) -> int:
        return max(int(r.counts["twice"]) for r in self.runs)

    @property
    def missed(self) -> int:
        return max(self.sessions - int(r.counts["sessions"]) for r in self.runs)

    def process_cpu(self) -> list[float]:
        """Each process's CPU s per 1,000 of its own checks (median over rounds)."""
        width = len(self.runs[0].watchers)
        return [
            statistics.median(
                r.watchers[i]["cpu"] / max(1, r.watchers[i]["checks"]) * 1000 for r in self.runs
            )
            for i in range(width)
        ]

    def line(self) -> str:
        db = self.median([r.per_1000(r.db_cpu) for r in self.runs])
        fake = self.median([r.per_1000(r.fake_cpu) for r in self.runs])
        busy = statistics.median(r.machine_busy for r in self.runs)
        cpu = ", ".join(f"{c:.3f}" for c in self.process_cpu())
        return (
            f"  {self.label:28} {self.wall:7.1f} {self.checks_per_s:8.0f} "
            f"{self.sessions_per_s:10.0f} {self.twice:7d} {self.missed:6d}  {cpu:14} "
            f"{'-' if db is None else f'{db:.3f}':>9} {'-' if fake is None else f'{fake:.3f}':>9} "
            f"{busy:6.0%}"
        )


HEADER = (
    f"  {'':28} {'wall s':>7} {'checks/s':>8} {'sessions/s':>10} {'twice':>7} {'never':>6}  "
    f"{'CPU s/1000 each':14} {'DB /1000':>9} {'fake/1000':>9} {'busy':>6}"
)


def statements_table(run: SweepRun) -> list[str]:
    """Every statement the watchers sent in this sweep, summed over them, by shape."""
    total: dict[str, list[float]] = {}
    for watcher in run.watchers:
        for s in watcher["statements"]:
            entry = total.setdefault(s["shape"], [0, 0, 0.0, 0.0])
            entry[0] += s["count"]
            entry[1] += s["rows"]
            entry[2] += s["seconds"]
            entry[3] = max(entry[3], s["slowest"])
    lines = []
    for shape, (count, rows, seconds, slowest) in sorted(total.items(), key=lambda kv: -kv[1][0]):
        many = f" ({int(rows)} rows)" if rows != count else ""
        lines.append(
            f"    {int(count):6d} x{many}, mean {seconds / count * 1000:.2f} ms, "
            f"slowest {slowest * 1000:.1f} ms: {shape[:200]}"
        )
    return lines


async def run(args: argparse.Namespace) -> int:
    from bot.storage.crypto import generate_key

    if args.db == "postgres":
        why = await postgres_unreachable(args.pg_url)
        if why is not None:
            print(f"PostgreSQL at {args.pg_url} does not answer ({why}); nothing measured.")
            return 1
        version = f"PostgreSQL {await pg_server_version(args.pg_url)}"
    else:
        version = "SQLite (one watcher: SQLite is for one instance)"
    n, c = args.sessions, args.concurrency
    print(
        f"== sweep bench: {n:,} due sessions on {version}, {c} checks in flight per watcher, "
        f"SPACES_RATE_PER_SECOND=0, interval 1 day; Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    started = time.perf_counter()
    key = generate_key()
    watcher_counts = [1] if args.db == "sqlite" else [1, 2]
    runs: dict[str, list[SweepRun]] = {}
    async with CheckCounter() as counter:
        for round_no in range(args.rounds):
            order = watcher_counts if round_no % 2 == 0 else watcher_counts[::-1]
            for watchers in order:
                async with scratch_db(args.db, args.pg_url) as db:
                    result = await sweep_run(
                        counter,
                        db,
                        key,
                        sessions=n,
                        watchers=watchers,
                        concurrency=c,
                        pg_url=args.pg_url,
                    )
                label = "one watcher" if watchers == 1 else "two watchers, one database"
                runs.setdefault(label, []).append(result)
                print(
                    f"  round {round_no + 1}: {label}: {result.wall:.1f} s, "
                    f"{result.checks:,} checks, {result.counts['twice']:,} sessions twice",
                    flush=True,
                )
            for processes in order:
                floor = await floor_run(
                    counter, key, sessions=n, processes=processes, concurrency=c
                )
                label = f"floor: bare aiohttp x{processes}"
                runs.setdefault(label, []).append(floor)
    rows = [Row(label, found, n) for label, found in runs.items()]
    rows.sort(key=lambda r: (r.label.startswith("floor"), r.label))
    print(f"\n-- one full sweep of {n:,} due sessions; median of {args.rounds} round(s)")
    print(HEADER)
    for row in rows:
        print(row.line())
    print(
        "  (twice / never: sessions checked more than once / not at all, the worst round; "
        "CPU s/1000 each: per process, of its own checks; DB: the PostgreSQL backends; "
        "fake: the check counter; busy: all CPUs of the machine)"
    )
    by_label = {r.label: r for r in rows}
    one = by_label["one watcher"]
    two = by_label.get("two watchers, one database")
    floor1 = by_label["floor: bare aiohttp x1"]
    print(
        f"\n  one watcher: {one.sessions_per_s / floor1.sessions_per_s:.0%} of the one-process "
        f"floor's rate, CPU per check {one.process_cpu()[0] / floor1.process_cpu()[0]:.2f}x"
    )
    if two is not None:
        floor2 = by_label["floor: bare aiohttp x2"]
        print(
            f"  two watchers: {two.sessions_per_s / one.sessions_per_s:.2f}x one watcher's "
            f"sessions/s, {two.sessions_per_s / floor2.sessions_per_s:.0%} of the two-process "
            "floor's"
        )
        verdict = "met" if two.twice == 0 and two.missed == 0 else "NOT MET"
        print(
            f"  goal: with two watchers no session is checked twice and none is left out: "
            f"{verdict} (twice: {two.twice:,}, never: {two.missed:,}, worst of "
            f"{args.rounds} round(s))"
        )
        print("\n-- statements of the two watchers together, first round")
        print("\n".join(statements_table(runs["two watchers, one database"][0])))
    print("\n-- statements of one watcher, first round")
    print("\n".join(statements_table(runs["one watcher"][0])))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sessions", type=int, default=20_000, help="N due sessions (20000)")
    p.add_argument("--concurrency", type=int, default=16, help="checks in flight (16)")
    p.add_argument("--rounds", type=int, default=3, help="medians are printed (3)")
    p.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--pg-url", default=PG_URL, help="a server the bench may create databases on")
    args = p.parse_args(argv)
    if not 100 <= args.sessions <= 2_000_000:
        p.error("--sessions must be between 100 and 2000000")
    if not 1 <= args.rounds <= 10 or not 1 <= args.concurrency <= 256:
        p.error("--rounds must be 1..10 and --concurrency 1..256")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(asyncio.run(run(parse_args(argv))))


if __name__ == "__main__":
    main()
