from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.engine import DEFAULT_STATEMENT_TIMEOUT, create_engine, downgrade, migrate
from bot.storage.models import Base


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
