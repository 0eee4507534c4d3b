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
