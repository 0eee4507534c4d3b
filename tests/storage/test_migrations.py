from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain import AccountKey
from bot.remote import RemoteSession
from bot.storage.crypto import Cipher
from bot.storage.engine import (
    DEFAULT_STATEMENT_TIMEOUT,
    create_engine,
    downgrade,
    make_sessionmaker,
    migrate,
)
from bot.storage.models import Base
from bot.storage.store import SessionUnreadable, Store
from tests.conftest import lease
from tests.external import pg_url  # noqa: F401 - fixture


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_up_down_up(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        assert set(Base.metadata.tables) <= await tables(engine)
        await downgrade(engine, "base")
        assert await tables(engine) <= {"alembic_version"}
        await migrate(engine)
        assert set(Base.metadata.tables) <= await tables(engine)
    finally:
        await engine.dispose()


async def test_sqlite_pragmas_on_every_connection(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
        busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
        assert busy == DEFAULT_STATEMENT_TIMEOUT * 1000


async def test_models_match_migrations(engine: AsyncEngine) -> None:
    """autogenerate finds nothing to do: the models and the revisions agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def diff(sync_conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(sync_conn, opts={"compare_type": False})
        return compare_metadata(ctx, Base.metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


# -- 0006: spaces_sessions -> remote_sessions, keyed by (chat, service, account) ----------

LEGACY_ROW = (
    "INSERT INTO spaces_sessions (chat_id, telegram_user_id, spaces_user_id, nickname, sid_enc,"
    " ck_enc, linked_at, last_confirmed_at, state, failures, notice)"
    " VALUES (:chat, :chat, 1001, 'Alice', :sid, :ck, :at, :at, 'active', 0, 'none')"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, db_url: str) -> str:
    return str(request.getfixturevalue("pg_url")) if request.param == "postgresql" else db_url


async def test_todays_rows_are_carried_over_resealed_and_back(any_url: str, cipher: Cipher) -> None:
    engine = create_engine(any_url)
    at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    try:
        await migrate(engine, "0005")
        async with engine.begin() as conn:
            for chat in (1, 2):
                sid = f"{chat:016d}"
                await conn.execute(
                    text(LEGACY_ROW),
                    {
                        "chat": chat,
                        # Sealed the way the store sealed them before 0006.
                        "sid": cipher.encrypt(sid, context=f"spaces_sessions:{chat}:sid"),
                        "ck": cipher.encrypt(sid[-4:], context=f"spaces_sessions:{chat}:ck"),
                        "at": at.replace(tzinfo=None) if "sqlite" in any_url else at,
                    },
                )
        await migrate(engine)
        store = Store(make_sessionmaker(engine), cipher)
        key = AccountKey("spaces", "1001")
        # Not readable until re-sealed: the old binding is never trusted on a read.
        with pytest.raises(SessionUnreadable):
            await store.get_session(1, key)
        due, unreadable = await store.claim_due_sessions(
            datetime.now(UTC) + timedelta(days=1), 10, lease()
        )
        assert due == [] and sorted(unreadable) == [(1, key), (2, key)]

        assert await store.reseal_legacy() == 2
        assert await store.reseal_legacy() == 0
        for chat in (1, 2):
            got = await store.get_session(chat, key)
            assert got is not None and got.display_name == "Alice"
            assert got.secrets == {"sid": f"{chat:016d}", "ck": f"{chat:016d}"[-4:]}
            assert got.linked_at == at
        async with engine.connect() as conn:
            raw = repr((await conn.execute(text("SELECT * FROM remote_sessions"))).all())
        assert "0000000000000001" not in raw

        # Down: the rows go back to spaces_sessions, one per chat, with their tokens.
        await store.save_session(1, 1, RemoteSession("sendspace", "bob", "bob", {"k": "v"}), at)
        await downgrade(engine, "0005")
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT chat_id, spaces_user_id, nickname FROM spaces_sessions")
                )
            ).all()
        assert sorted(tuple(r) for r in rows) == [(1, 1001, "Alice"), (2, 1001, "Alice")]
        await migrate(engine)
        assert {a.key for a in await store.accounts(1)} == {key}  # sendspace had no place
    finally:
        await engine.dispose()
