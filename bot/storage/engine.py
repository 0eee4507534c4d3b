"""Engine creation and migrations."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# How long one statement (or the wait for a lock or a pooled connection) may take: a
# database that stops answering must fail a step, never hang the watch.
DEFAULT_STATEMENT_TIMEOUT = 30.0

# PostgreSQL advisory locks of instances starting at once: (this class, which lock). Tried
# in a loop, not waited for in one statement, so statement_timeout never cuts the wait short.
_SETUP_LOCKS = 0x5B1E
_STARTUP_LOCK = 1  # the whole setup of a starting instance (see app.prepare_store)
_MIGRATION_LOCK = 2  # `upgrade` alone, also when run by hand as `alembic upgrade head`
_LOCK_RETRY_SECONDS = 0.25


def _sqlite_pragmas(busy_timeout_ms: int, dbapi_connection: Any, _record: Any) -> None:
    # Set on every connection: WAL lets the watcher read while a handler writes; the busy
    # timeout bounds the wait for another connection's write lock.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms:d}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str, *, timeout: float = DEFAULT_STATEMENT_TIMEOUT) -> AsyncEngine:
    """An engine whose every statement is bounded by `timeout` seconds."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": timeout})
        pragmas = functools.partial(_sqlite_pragmas, max(1, round(timeout * 1000)))
        event.listen(engine.sync_engine, "connect", pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_driver_name() == "asyncpg":
        connect_args = {
            "timeout": timeout,  # connecting
            # The server stops a statement, lock waits included, and frees what it holds; the
            # client gives up a little later, when the server itself no longer answers.
            "server_settings": {"statement_timeout": str(max(1, round(timeout * 1000)))},
            "command_timeout": timeout + 2,
        }
    return create_async_engine(
        url, pool_pre_ping=True, pool_timeout=timeout, connect_args=connect_args
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _upgrade(connection: Connection, url: str, revision: str) -> None:
    cfg = alembic_config(url)
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _downgrade(connection: Connection, url: str, revision: str) -> None:
    cfg = alembic_config(url)
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


async def _take_lock(conn: AsyncConnection, which: int, function: str, doing: str) -> None:
    said = False
    query = text(f"SELECT {function}(:cls, :which)")
    while not await conn.scalar(query, {"cls": _SETUP_LOCKS, "which": which}):
        if not said:
            log.info("another instance is %s; waiting for it", doing)
            said = True
        await asyncio.sleep(_LOCK_RETRY_SECONDS)


@asynccontextmanager
async def startup_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """On PostgreSQL, instances starting at once set the database up one after another
    (canary, migrations, re-sealing); SQLite's one process needs no lock."""
    if engine.dialect.name != "postgresql":
        yield
        return
    async with engine.connect() as conn:
        # Held by the connection (not a transaction) until unlocked or the connection ends.
        await _take_lock(conn, _STARTUP_LOCK, "pg_try_advisory_lock", "setting the database up")
        await conn.commit()
        try:
            yield
        finally:
            await conn.execute(
                text("SELECT pg_advisory_unlock(:cls, :which)"),
                {"cls": _SETUP_LOCKS, "which": _STARTUP_LOCK},
            )
            await conn.commit()


async def hold_migration_lock(conn: AsyncConnection) -> None:
    """On PostgreSQL, wait until no other process migrates, and hold that until `conn`'s
    transaction ends; both the bot's startup and `alembic upgrade` by hand take it."""
    if conn.dialect.name == "postgresql":
        await _take_lock(conn, _MIGRATION_LOCK, "pg_try_advisory_xact_lock", "migrating")


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade to `revision`; on PostgreSQL one process at a time (a transaction lock)."""
    url = engine.url.render_as_string(hide_password=False)
    async with engine.begin() as conn:
        await hold_migration_lock(conn)
        await conn.run_sync(_upgrade, url, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    url = engine.url.render_as_string(hide_password=False)
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, url, revision)
