from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain import Lease, LinkedSession
from bot.remote import RemoteSession
from bot.storage.crypto import Cipher, generate_key
from bot.storage.engine import create_engine, make_sessionmaker, migrate
from bot.storage.store import Store
from tests.fakes.sendspace_server import FakeSendspace
from tests.fakes.spaces_server import FakeSpaces
from tests.fakes.telegram_server import FakeTelegram

# The instance a test's store calls belong to (what a bot process's id is in production).
TEST_INSTANCE = "test-host:1:00000000"


def lease(seconds: float = 600.0, owner: str = TEST_INSTANCE) -> Lease:
    """A claim of due sessions for `owner`, held `seconds` from now."""
    return Lease(owner, datetime.now(UTC) + timedelta(seconds=seconds))


@pytest.fixture
def key() -> str:
    return generate_key()


@pytest.fixture
def cipher(key: str) -> Cipher:
    return Cipher.from_strings([key])


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{(tmp_path / 'bot.sqlite3').as_posix()}"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for another backend or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database built by the migrations once per session (copying it is ~0.1 ms, a
    migration ~40 ms); tests/storage/test_migrations.py and the startup tests migrate for real."""
    path = tmp_path_factory.mktemp("migrated") / "bot.sqlite3"

    async def build() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path.as_posix()}")
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    loop = asyncio.new_event_loop()  # its own loop: leaves the tests' loops alone
    try:
        loop.run_until_complete(build())
    finally:
        loop.close()
    # The last connection's close checkpoints the WAL, so the one file is the whole database.
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture
async def engine(db_url: str, migrated_sqlite: Path) -> AsyncIterator[AsyncEngine]:
    """The bot's database at the latest revision: on SQLite a copy of `migrated_sqlite`; on
    another backend (a test may point `db_url` at PostgreSQL) migrated here."""
    file = sqlite_file(db_url)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated_sqlite, file)
    engine = create_engine(db_url)
    if file is None:
        await migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def store(engine: AsyncEngine, cipher: Cipher) -> Store:
    return Store(make_sessionmaker(engine), cipher)


async def close_bot(bot: Bot) -> None:
    """Close the bot's HTTP session as `bot.session.close()` does, less aiogram's 250 ms wait
    for TLS connections to shut down: the fakes speak plain HTTP (a quarter second per test)."""
    session = bot.session
    assert isinstance(session, AiohttpSession)
    if session._session is not None:
        await session._session.close()


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    """A fake Telegram Bot API on 127.0.0.1."""
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def fake_spaces() -> AsyncIterator[FakeSpaces]:
    """A fake Spaces neoapi, in process, on 127.0.0.1."""
    async with FakeSpaces() as fake:
        yield fake


@pytest.fixture
async def fake_sendspace() -> AsyncIterator[FakeSendspace]:
    """A fake sendspace REST API, in process, on 127.0.0.1."""
    async with FakeSendspace() as fake:
        fake.state.timeout_seconds = 5.0
        yield fake


async def only_session(
    store: Store, chat_id: int, service: str | None = None
) -> LinkedSession | None:
    """The chat's one session (of `service`, when given); None when it has none. A test that
    links several accounts names the one it means with `store.get_session`."""
    accounts = [
        a for a in await store.accounts(chat_id) if service is None or a.key.service == service
    ]
    assert len(accounts) <= 1, f"chat {chat_id} has {len(accounts)} sessions"
    return await store.get_session(chat_id, accounts[0].key) if accounts else None


def spaces_session(sid: str, nick: str = "Alice", nid: int = 1001) -> RemoteSession:
    """A Spaces session as the adapter makes it (ck: the sid's last four characters)."""
    return RemoteSession("spaces", str(nid), nick, {"sid": sid, "ck": sid[-4:]})
