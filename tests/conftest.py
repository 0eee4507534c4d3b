from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
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


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def store(engine: AsyncEngine, cipher: Cipher) -> Store:
    return Store(make_sessionmaker(engine), cipher)


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
