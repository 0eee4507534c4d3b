"""Every database statement is bounded: a lock held elsewhere fails a step, never hangs it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot.storage.crypto import Cipher
from bot.storage.engine import create_engine, make_sessionmaker, migrate
from bot.storage.store import Store
from tests.external import pg_url  # noqa: F401 - fixture

# Only a guard against a hang failing the whole run; the bound under test is far shorter.
HANG_GUARD = 60


async def test_postgres_statement_blocked_by_a_lock_fails_within_the_bound(
    pg_url: str,  # noqa: F811
    cipher: Cipher,
) -> None:
    asyncpg = pytest.importorskip("asyncpg")
    engine = create_engine(pg_url, timeout=1.0)
    holder = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            assert (await conn.scalar(text("SHOW statement_timeout"))) == "1s"
        store = Store(make_sessionmaker(engine), cipher)
        await holder.execute("BEGIN")
        await holder.execute("LOCK TABLE remote_sessions IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(DBAPIError):
            await asyncio.wait_for(store.count_sessions(), HANG_GUARD)
        await holder.execute("ROLLBACK")
        assert await store.count_sessions() == 0  # the pool is still usable afterwards
    finally:
        await holder.close()
        await engine.dispose()


async def test_sqlite_busy_timeout_is_set_on_every_connection(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", timeout=0.25)
    try:
        connections = [await engine.connect() for _ in range(3)]  # three pooled connections
        values = [await c.scalar(text("PRAGMA busy_timeout")) for c in connections]
        for c in connections:
            await c.close()
        assert values == [250, 250, 250]
    finally:
        await engine.dispose()


async def test_sqlite_write_blocked_by_another_writer_fails_instead_of_hanging(
    tmp_path: Path, cipher: Cipher
) -> None:
    path = tmp_path / "bot.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}", timeout=0.25)
    await migrate(engine)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        store = Store(make_sessionmaker(engine), cipher)
        holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        with pytest.raises(DBAPIError, match="locked"):
            await asyncio.wait_for(store.set_meta("k", "v"), HANG_GUARD)
        holder.execute("ROLLBACK")
        await store.set_meta("k", "v")
        assert await store.get_meta("k") == "v"
    finally:
        holder.close()
        await engine.dispose()
