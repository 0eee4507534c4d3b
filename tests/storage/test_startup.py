"""Startup refuses a lost database and a wrong key before anything is changed."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.app import StartupError, prepare_store
from bot.config import Settings
from bot.storage.crypto import KEY_FILE_NAME, Cipher, generate_key
from bot.storage.engine import create_engine, make_sessionmaker, migrate
from bot.storage.install import MARKER_NAME
from bot.storage.store import Store
from tests.external import pg_url  # noqa: F401 - fixture


def settings(data_dir: Path, key: str | None = None, url: str | None = None) -> Settings:
    return Settings(
        bot_token="1:" + "A" * 35,
        data_dir=data_dir,
        encryption_key=key,
        database_url=url,
    )


async def start(config: Settings, *, new_database: bool = False) -> None:
    async with AsyncExitStack() as stack:
        await prepare_store(config, stack, new_database=new_database)


async def version(url: str) -> str | None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            found: str | None = await conn.scalar(text("SELECT version_num FROM alembic_version"))
            return found
    finally:
        await engine.dispose()


async def test_a_deleted_database_next_to_a_generated_key_is_refused(tmp_path: Path) -> None:
    config = settings(tmp_path / "data")
    await start(config)  # first start: key generated, database created
    assert (tmp_path / "data" / KEY_FILE_NAME).exists()
    database = tmp_path / "data" / "bot.sqlite3"
    database.unlink()

    with pytest.raises(StartupError, match="--new-database") as refused:
        await start(config)
    assert str(KEY_FILE_NAME) in str(refused.value)
    assert not database.exists()  # nothing was created

    await start(config, new_database=True)  # told it is new
    assert database.exists()
    await start(config)  # and from then on it is the database


async def test_with_a_configured_key_the_marker_is_the_trace(tmp_path: Path) -> None:
    config = settings(tmp_path / "data", key=generate_key())
    await start(config)
    assert not (tmp_path / "data" / KEY_FILE_NAME).exists()
    assert (tmp_path / "data" / MARKER_NAME).exists()
    (tmp_path / "data" / "bot.sqlite3").unlink()
    with pytest.raises(StartupError, match="missing"):
        await start(config)


async def test_an_empty_database_made_by_hand_is_refused_too(tmp_path: Path) -> None:
    """`alembic upgrade head` (the compose `migrate` service) recreates an empty file."""
    config = settings(tmp_path / "data", key=generate_key())
    await start(config)
    (tmp_path / "data" / "bot.sqlite3").unlink()
    engine = create_engine(config.effective_database_url)
    await migrate(engine)
    await engine.dispose()
    with pytest.raises(StartupError, match="empty"):
        await start(config)


async def test_a_first_start_is_not_refused(tmp_path: Path) -> None:
    await start(settings(tmp_path / "data"))
    await start(settings(tmp_path / "other", key=generate_key()))


async def wrong_key_before_migrations(url: str, data_dir: Path) -> None:
    key = generate_key()
    engine = create_engine(url)
    await migrate(engine, "0003")  # an installation from before the latest migration
    store = Store(make_sessionmaker(engine), Cipher.from_strings([key]))
    assert await store.verify_or_create_canary() is True
    await engine.dispose()

    with pytest.raises(StartupError, match=r"ENCRYPTION_KEY.*Nothing was changed"):
        await start(settings(data_dir, key=generate_key(), url=url))
    assert await version(url) == "0003"  # not migrated
    await start(settings(data_dir, key=key, url=url))  # the right key migrates
    assert await version(url) != "0003"


async def test_a_wrong_key_stops_before_any_migration_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{(tmp_path / 'bot.sqlite3').as_posix()}"
    await wrong_key_before_migrations(url, tmp_path / "data")


async def test_a_wrong_key_stops_before_any_migration_postgres(
    pg_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    await wrong_key_before_migrations(pg_url, tmp_path / "data")


async def test_startup_reseals_the_sessions_carried_over_from_spaces_sessions(
    tmp_path: Path,
) -> None:
    """Upgrading an installation: its Spaces sessions open after the first start."""
    from datetime import UTC, datetime

    from bot.domain import AccountKey

    key = generate_key()
    url = f"sqlite+aiosqlite:///{(tmp_path / 'bot.sqlite3').as_posix()}"
    engine = create_engine(url)
    cipher = Cipher.from_strings([key])
    await migrate(engine, "0005")  # the last revision with one Spaces session per chat
    assert await Store(make_sessionmaker(engine), cipher).verify_or_create_canary() is True
    now = datetime.now(UTC).replace(tzinfo=None)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO spaces_sessions (chat_id, telegram_user_id, spaces_user_id, nickname,"
                " sid_enc, ck_enc, linked_at, last_confirmed_at)"
                " VALUES (5, 5, 1001, 'Alice', :sid, :ck, :now, :now)"
            ),
            {
                "sid": cipher.encrypt("6693985458435384", context="spaces_sessions:5:sid"),
                "ck": cipher.encrypt("5384", context="spaces_sessions:5:ck"),
                "now": now,
            },
        )
    await engine.dispose()

    async with AsyncExitStack() as stack:
        store, *_ = await prepare_store(settings(tmp_path / "data", key=key, url=url), stack)
        got = await store.get_session(5, AccountKey("spaces", "1001"))
        assert got is not None and got.secrets == {"sid": "6693985458435384", "ck": "5384"}
