"""Several processes on one database: what each claims is its own until its lease runs out
(on SQLite and on PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain import BroadcastStatus, Lease, NoticeState
from bot.storage.crypto import Cipher
from bot.storage.engine import (
    PROJECT_ROOT,
    create_engine,
    make_sessionmaker,
    migrate,
    startup_lock,
)
from bot.storage.owners import OwnerStore
from bot.storage.store import CheckConfirmed, Store
from tests.external import pg_url  # noqa: F401 - fixture
from tests.storage.test_store import account

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
A, B = "host-a:1:aaaaaaaa", "host-b:2:bbbbbbbb"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, db_url: str) -> str:
    return str(request.getfixturevalue("pg_url")) if request.param == "postgresql" else db_url


@pytest.fixture
async def two(any_url: str, cipher: Cipher) -> AsyncIterator[tuple[Store, Store, OwnerStore]]:
    """Two processes' stores on one database (each with its own engine and pool)."""
    first, second = create_engine(any_url), create_engine(any_url)
    await migrate(first)
    try:
        yield (
            Store(make_sessionmaker(first), cipher),
            Store(make_sessionmaker(second), cipher),
            OwnerStore(make_sessionmaker(second)),
        )
    finally:
        await first.dispose()
        await second.dispose()


async def link(store: Store, chats: range) -> None:
    for chat in chats:
        await store.save_session(chat, chat, account(sid=f"{chat:016d}"), NOW, next_check_at=NOW)


def held(owner: str, minutes: float = 5) -> Lease:
    return Lease(owner, NOW + timedelta(minutes=minutes))


async def test_concurrent_claims_never_take_one_session_twice(
    two: tuple[Store, Store, OwnerStore],
) -> None:
    a, b, _ = two
    await link(a, range(1, 201))

    async def drain(store: Store, owner: str) -> list[int]:
        got: list[int] = []
        while True:
            due, _ = await store.claim_due_sessions(NOW, 7, held(owner))
            if not due:
                return got
            got += [d.chat_id for d in due]

    got_a, got_b = await asyncio.gather(drain(a, A), drain(b, B))
    assert sorted(got_a + got_b) == list(range(1, 201))  # each exactly once
    assert got_a and got_b  # both took part


async def test_a_claim_holds_until_its_lease_runs_out_then_anyone_takes_it(
    two: tuple[Store, Store, OwnerStore],
) -> None:
    a, b, _ = two
    await link(a, range(1, 4))
    due, _ = await a.claim_due_sessions(NOW, 10, held(A, minutes=5))
    assert sorted(d.chat_id for d in due) == [1, 2, 3]
    # Process A dies here. Before its lease ends nobody else checks those sessions ...
    assert (await b.claim_due_sessions(NOW + timedelta(minutes=4), 10, held(B)))[0] == []
    # ... and once it has, they are due again and B takes them over.
    later = NOW + timedelta(minutes=5, seconds=1)
    taken, _ = await b.claim_due_sessions(later, 10, Lease(B, later + timedelta(minutes=5)))
    assert sorted(d.chat_id for d in taken) == [1, 2, 3]


async def test_a_result_that_comes_after_the_session_was_taken_over_is_dropped(
    two: tuple[Store, Store, OwnerStore],
) -> None:
    a, b, _ = two
    await link(a, range(1, 3))
    due_a, _ = await a.claim_due_sessions(NOW, 10, held(A, minutes=1))
    later = NOW + timedelta(minutes=2)
    due_b, _ = await b.claim_due_sessions(later, 10, Lease(B, later + timedelta(minutes=5)))
    assert len(due_b) == 2
    # A was only slow: its results arrive now, after B took the sessions over.
    ended = await a.record_checks(later, A, ended=due_a)
    assert ended == 0
    assert {x.state for x in await a.accounts(1)} == {"active"}
    # B's results are the ones that count.
    next_at = later + timedelta(minutes=15)
    await b.record_checks(
        later, B, confirmed=[CheckConfirmed(d, None, None, next_at) for d in due_b]
    )
    assert [x.next_check_at for x in await a.accounts(1)] == [next_at]


async def test_recovery_settles_only_claims_of_processes_whose_lease_ran_out(
    two: tuple[Store, Store, OwnerStore],
) -> None:
    a, b, _ = two
    await link(a, range(1, 5))
    due, _ = await a.claim_due_sessions(NOW, 10, held(A))
    await a.record_checks(NOW, A, ended=due)
    await a.hold_lease(held(A), NOW)
    await b.hold_lease(held(B), NOW)
    mine = await a.claim_notice(NOW, A)
    theirs = await b.claim_notice(NOW, B)
    assert mine is not None and theirs is not None
    assert await a.start_sending_notice(mine.chat_id, mine.key, A)

    # Both alive: nothing is settled, whoever asks.
    assert await b.recover_notices(NOW) == (0, 0)
    assert await a.recover_notices(NOW) == (0, 0)
    # Another process cannot move a claim that is not its own.
    assert not await b.start_sending_notice(mine.chat_id, mine.key, B)
    await b.finish_notice(mine.chat_id, mine.key, B, delivered=True)
    assert await notice(a, mine.chat_id) == NoticeState.SENDING

    # A stops renewing; once its lease has run out, B settles A's claims (the one in flight
    # as uncertain), never its own.
    after = NOW + timedelta(minutes=6)
    await b.hold_lease(Lease(B, after + timedelta(minutes=1)), after)
    assert await b.recover_notices(after) == (0, 1)
    assert await notice(a, mine.chat_id) == NoticeState.UNCERTAIN
    assert await notice(a, theirs.chat_id) == NoticeState.CLAIMED
    # A's late answer changes nothing now.
    await a.finish_notice(mine.chat_id, mine.key, A, delivered=False)
    assert await notice(a, mine.chat_id) == NoticeState.UNCERTAIN


async def notice(store: Store, chat_id: int) -> NoticeState:
    async with store._sessionmaker() as db:
        from sqlalchemy import text

        value = await db.scalar(
            text("SELECT notice FROM remote_sessions WHERE chat_id = :c"), {"c": chat_id}
        )
    return NoticeState(value)


async def test_a_lease_is_renewed_remade_and_given_up(
    two: tuple[Store, Store, OwnerStore],
) -> None:
    a, b, _ = two
    assert await a.hold_lease(held(A), NOW) is False  # made
    assert await a.hold_lease(held(A, minutes=10), NOW) is True  # renewed
    await b.hold_lease(held(B), NOW)
    assert await a.live_instance_count(NOW + timedelta(minutes=6)) == 1  # B's ran out
    assert await a.live_instance_count(NOW) == 2
    assert await b.prune_instances(NOW + timedelta(minutes=6)) == 1
    assert await b.hold_lease(held(B), NOW) is False  # pruned for dead: made again
    await a.drop_lease(A)
    assert await b.live_instance_count(NOW) == 1
    assert await b.forget_other_instances(B) == 0


async def test_a_broadcast_of_a_live_instance_is_left_alone_and_stops_from_anywhere(
    two: tuple[Store, Store, OwnerStore],
) -> None:
    a, _, owners = two
    await a.hold_lease(held(A), NOW)
    running = await owners.create_broadcast(1, 1, "hi", 3, NOW, owner=A)
    orphan = await owners.create_broadcast(1, 1, "old", 3, NOW, owner="gone:9:99999999")
    assert [r.id for r in await owners.take_interrupted_broadcasts(NOW)] == [orphan]
    assert await owners.take_interrupted_broadcasts(NOW) == []  # reported once

    assert await owners.advance_broadcast(running, A, 10, {"sent": 1})
    assert not await owners.advance_broadcast(running, B, 11, {"sent": 1})  # not B's
    assert await owners.request_broadcast_stop(running)  # pressed on any instance
    assert not await owners.advance_broadcast(running, A, 11, {"sent": 2})  # A sees it
    record = await owners.get_broadcast(running)
    assert record is not None and record.status is BroadcastStatus.STOPPING
    assert await owners.finish_broadcast(running, A, BroadcastStatus.CANCELLED, {}, NOW)

    # Resumed by exactly one of two presses of "resume".
    got = await asyncio.gather(
        owners.resume_broadcast(orphan, A), owners.resume_broadcast(orphan, B)
    )
    assert sum(r is not None for r in got) == 1


async def test_of_several_processes_exactly_one_changes_a_fact(
    two: tuple[Store, Store, OwnerStore],
) -> None:
    a, b, _ = two
    results = await asyncio.gather(
        *(s.swap_meta("spaces_reachability", "up", "down") for s in (a, b, a, b))
    )
    assert sorted(results) == [False, False, False, True]
    assert await a.get_meta("spaces_reachability") == "down"
    assert await b.swap_meta("spaces_reachability", "down", "up") is True
    assert await a.swap_meta("spaces_reachability", "down", "up") is False


async def test_instances_starting_at_once_migrate_one_after_another(pg_url: str) -> None:  # noqa: F811
    engines = [create_engine(pg_url) for _ in range(4)]
    order: list[int] = []

    async def start(i: int) -> None:
        async with startup_lock(engines[i]):
            order.append(i)
            await migrate(engines[i])
            order.append(i)

    try:
        await asyncio.gather(*(start(i) for i in range(4)))
        # Each one's setup ran whole before the next one's began.
        assert all(order[k] == order[k + 1] for k in range(0, 8, 2))
        # And migrate alone (`python -m bot migrate` from several places) is safe as well.
        await asyncio.gather(*(migrate(e) for e in engines))
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_dead_processs_checks_are_taken_over_once_its_instance_lease_ran_out(
    two: tuple[Store, Store, OwnerStore],
) -> None:
    a, b, _ = two
    await link(a, range(1, 5))
    await a.hold_lease(held(A, minutes=1), NOW)
    await b.hold_lease(held(B, minutes=10), NOW)
    taken_a, _ = await a.claim_due_sessions(NOW, 2, held(A, minutes=30))
    taken_b, _ = await b.claim_due_sessions(NOW, 2, held(B, minutes=30))
    assert len(taken_a) == len(taken_b) == 2
    assert await b.release_orphaned_checks(NOW) == 0  # both alive
    # A stops renewing: a minute later its sessions are due at once, B's own stay claimed.
    later = NOW + timedelta(minutes=2)
    assert await b.release_orphaned_checks(later) == 2
    again, _ = await b.claim_due_sessions(later, 10, Lease(B, later + timedelta(minutes=5)))
    assert sorted(d.chat_id for d in again) == sorted(d.chat_id for d in taken_a)


async def test_alembic_by_hand_from_several_places_at_once_is_safe(pg_url: str) -> None:  # noqa: F811
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_URL", "_KEY", "TOKEN"))}
    env["DATABASE_URL"] = pg_url
    runs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "alembic",
            "upgrade",
            "head",
            cwd=PROJECT_ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    results = [await asyncio.wait_for(run.communicate(), 120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], [
        err.decode()[-500:] for _, err in results
    ]
