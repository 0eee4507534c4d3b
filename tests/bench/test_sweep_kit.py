"""The sweep benches' plumbing: a small sweep through the same processes reports every
session checked exactly once (figures themselves are never asserted here)."""

from __future__ import annotations

from bench.check_counter import CheckCounter, Counts, sid_of
from bench.sweep_kit import is_due_query, scratch_db, shape_of, sweep_run
from bot.storage.crypto import generate_key


def test_the_counter_tells_a_session_checked_twice() -> None:
    counts = Counts()
    for index in (0, 1, 1, 7, 1):
        counts.count(sid_of(index).encode())
    counts.count(b"not-a-bench-sid")
    summary = counts.summary()
    assert (summary["checks"], summary["sessions"], summary["twice"]) == (6, 3, 1)
    assert (summary["most"], summary["foreign"]) == (3, 1)


def test_the_due_query_is_told_from_the_next_due_time() -> None:
    due = shape_of(
        "SELECT chat_id FROM remote_sessions\n WHERE next_check_at <= $1::TIMESTAMP "
        "ORDER BY next_check_at LIMIT $2"
    )
    assert is_due_query(due)
    assert not is_due_query("SELECT min(next_check_at) AS min_1 FROM remote_sessions")
    assert not is_due_query(
        "UPDATE remote_sessions SET next_check_at=? WHERE chat_id = ? AND service = ?"
    )


async def test_one_watcher_checks_each_of_200_sessions_once() -> None:
    key = generate_key()
    async with CheckCounter() as counter, scratch_db("sqlite") as db:
        run = await sweep_run(
            counter, db, key, sessions=200, watchers=1, concurrency=8, phase_seconds=120
        )
    (watcher,) = run.watchers
    assert run.seeded["rows"] == 200
    assert (run.counts["checks"], run.counts["sessions"], run.counts["twice"]) == (200, 200, 0)
    assert watcher["outcomes"] == {"spaces/confirmed/": 200}
    assert any(s["due"] for s in watcher["statements"])


def test_a_plan_that_reads_every_row_is_told_from_an_index_search() -> None:
    from bench.million_bench import full_scan, reads_by_index

    postgres_claim = [
        "Update on remote_sessions  (cost=10.52..1089.93 rows=1 width=548)",
        "  CTE picked",
        "    ->  Limit  (cost=0.42..10.09 rows=128 width=35)",
        "          ->  LockRows  (cost=0.42..75030.67 rows=993536 width=35)",
        "                ->  Index Scan using ix_remote_sessions_next_check_at on "
        "remote_sessions remote_sessions_1  (cost=0.42..65095.31 rows=993536 width=35)",
    ]
    sqlite_claim = [
        "MATERIALIZE picked",
        "SEARCH remote_sessions USING INDEX ix_remote_sessions_next_check_at (next_check_at<?)",
        "SCAN picked",
    ]
    assert reads_by_index(postgres_claim) and reads_by_index(sqlite_claim)
    assert full_scan(["Update on remote_sessions", "  ->  Seq Scan on remote_sessions  (cost=1)"])
    assert full_scan(["SCAN remote_sessions", "LIST SUBQUERY 1", "SCAN bot_instances"])
    assert full_scan(["SCAN remote_sessions USING COVERING INDEX ix_remote_sessions_notice"])
    assert not full_scan(sqlite_claim) and not full_scan(postgres_claim)
    assert not reads_by_index(["SCAN remote_sessions", "USE TEMP B-TREE FOR ORDER BY"])
