"""Alembic environment: async engines, URL from Settings, batch mode for SQLite."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from bot.storage.engine import create_engine, hold_migration_lock
from bot.storage.models import Base

# Well-formed, so that Settings accepts it; never sent anywhere.
UNUSED_BOT_TOKEN = "0:" + "A" * 35

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from pydantic import ValidationError

    from bot.config import Settings

    try:
        return Settings().effective_database_url  # type: ignore[call-arg]
    except ValidationError:
        # `alembic upgrade` by hand needs no bot token: only the database settings matter.
        return Settings(bot_token=UNUSED_BOT_TOKEN).effective_database_url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url())
    try:
        async with engine.begin() as conn:
            # By hand beside starting instances: one migrates at a time (they take it too).
            await hold_migration_lock(conn)
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # Called from the bot's startup with a live connection (see storage.engine.migrate).
        _run(connection)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    asyncio.run(_run_async())


if context.is_offline_mode():
    run_offline()
else:
    run_online()
