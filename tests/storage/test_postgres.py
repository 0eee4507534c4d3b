"""The same storage on PostgreSQL: migrations up and down, the store, the watcher's writes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect

from bot.domain import SessionState
from bot.storage.crypto import Cipher
from bot.storage.engine import create_engine, downgrade, make_sessionmaker, migrate
from bot.storage.models import Base
from bot.storage.owners import OwnerStore
from bot.storage.store import Store
from tests.conftest import TEST_INSTANCE, lease
from tests.external import pg_url  # noqa: F401 - fixture
from tests.storage.test_store import SPACES, account

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def test_migrations_up_down_up_and_the_store(pg_url: str, cipher: Cipher) -> None:  # noqa: F811
    engine = create_engine(pg_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert set(Base.metadata.tables) <= tables
        await downgrade(engine, "base")
        await migrate(engine)

        sm = make_sessionmaker(engine)
        store, owners = Store(sm, cipher), OwnerStore(sm)
        assert await store.verify_or_create_canary() is True
        await store.save_session(1, 1, account(), NOW, next_check_at=NOW)
        got = await store.get_session(1, SPACES)
        assert got is not None and got.secrets["sid"] == "6693985458435384" and got.linked_at == NOW

        due, unreadable = await store.claim_due_sessions(NOW + timedelta(seconds=1), 10, lease())
        assert [d.chat_id for d in due] == [1] and unreadable == []
        await store.record_checks(NOW, TEST_INSTANCE, ended=due)
        notices = [
            n for _ in range(10) if (n := await store.claim_notice(NOW, TEST_INSTANCE)) is not None
        ]
        assert [n.chat_id for n in notices] == [1]
        assert await store.claim_notice(NOW, TEST_INSTANCE) is None

        assert await store.touch_chat(1, 1, "ru", NOW) is None
        await store.set_chat_language(1, "en", NOW)
        assert await store.touch_chat(1, 1, "ru", NOW) == "en"

        await owners.bump({"spaces:confirmed": 2}, NOW)
        await owners.bump({"spaces:confirmed": 3, "spaces:ended": 1}, NOW)
        stats = await owners.stats(NOW)
        assert stats.events_24h == {"spaces:confirmed": 5, "spaces:ended": 1}
        assert stats.sessions_by_state[SessionState.ENDED] == 1
        assert stats.sessions_by_service["spaces"][SessionState.ENDED] == 1
        assert stats.people_total == 1
    finally:
        await engine.dispose()


async def test_two_processes_never_claim_the_same_notice(pg_url: str, cipher: Cipher) -> None:  # noqa: F811
    first, second = create_engine(pg_url), create_engine(pg_url)
    try:
        await migrate(first)
        a, b = Store(make_sessionmaker(first), cipher), Store(make_sessionmaker(second), cipher)
        for chat in range(1, 41):
            await a.save_session(chat, chat, account(sid=f"{chat:016d}"), NOW, next_check_at=NOW)
        due, _ = await a.claim_due_sessions(NOW, 100, lease())
        await a.record_checks(NOW, TEST_INSTANCE, ended=due)

        async def drain(store: Store) -> list[int]:
            got: list[int] = []
            while notice := await store.claim_notice(NOW, TEST_INSTANCE):
                got.append(notice.chat_id)
            return got

        got_a, got_b = await asyncio.gather(drain(a), drain(b))
        assert sorted(got_a + got_b) == list(range(1, 41))  # each exactly once
        # A stop before any was sent: the next start gives every claim back, and they wait.
        assert await a.recover_notices(NOW) == (40, 0)
        backlog = await b.backlog(NOW + timedelta(hours=1))
        assert backlog.pending_notices == 40 and backlog.oldest_pending_since == NOW
        assert backlog.overdue_sessions == 0
    finally:
        await first.dispose()
        await second.dispose()
