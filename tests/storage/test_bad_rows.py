"""One value Spaces sent that does not fit a column never stops the watch's writes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain import SessionState
from bot.storage.crypto import Cipher
from bot.storage.engine import create_engine, make_sessionmaker, migrate
from bot.storage.store import CheckConfirmed, Store
from tests.conftest import TEST_INSTANCE, lease
from tests.external import pg_url  # noqa: F401 - fixture
from tests.storage.test_store import SPACES, account

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LONG_NICK = "N" * 65  # the column is varchar(64)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, db_url: str) -> str:
    return str(request.getfixturevalue("pg_url")) if request.param == "postgresql" else db_url


@pytest.fixture
async def db(any_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(any_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


async def nicknames(engine: AsyncEngine) -> dict[int, tuple[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT chat_id, display_name, state FROM remote_sessions"))
        return {chat: (nick, state) for chat, nick, state in rows}


async def test_odd_nicknames_are_stored_fitted_at_login_and_after_a_check(
    db: AsyncEngine, cipher: Cipher
) -> None:
    store = Store(make_sessionmaker(db), cipher)
    await store.save_session(1, 1, account(nick=LONG_NICK), NOW, next_check_at=NOW)
    await store.save_session(2, 2, account(sid="2" * 16, nick="a\x00b\ud800"), NOW)
    assert (await nicknames(db))[1][0] == "N" * 64
    assert (await nicknames(db))[2][0] == "ab?"

    await store.save_session(3, 3, account(sid="3" * 16), NOW, next_check_at=NOW)
    due, _ = await store.claim_due_sessions(NOW, 10, lease())
    later = NOW + timedelta(minutes=15)
    await store.record_checks(
        NOW,
        TEST_INSTANCE,
        confirmed=[CheckConfirmed(d, "Z" * 65 + "\x00", None, later) for d in due],
    )
    checked = {"sid": "2" * 16, "ck": "5384"}
    await store.confirm_session(2, SPACES, checked, NOW, display_name="Y" * 100)
    stored = await nicknames(db)
    assert stored[1][0] == stored[3][0] == "Z" * 64
    assert stored[2][0] == "Y" * 64


async def test_a_row_that_cannot_be_written_is_skipped_and_its_batch_goes_on(
    db: AsyncEngine, cipher: Cipher, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(make_sessionmaker(db), cipher)
    for chat in range(1, 6):
        await store.save_session(chat, chat, account(sid=f"{chat:016d}"), NOW, next_check_at=NOW)
    due, _ = await store.claim_due_sessions(NOW, 10, lease())
    by_chat = {d.chat_id: d for d in due}
    later = NOW + timedelta(minutes=15)
    broken = later.replace(tzinfo=None)  # a value no column takes: stands for any bad row
    caplog.set_level(logging.WARNING, logger="bot.storage.sessions")

    ended = await store.record_checks(
        NOW,
        TEST_INSTANCE,
        confirmed=[
            CheckConfirmed(by_chat[1], "One", None, later),
            CheckConfirmed(by_chat[2], "Two", None, broken),
        ],
        ended=[by_chat[3], by_chat[4]],
        deferred=[(by_chat[5], later)],
    )

    assert ended == 2
    stored = await nicknames(db)
    assert stored[1] == ("One", SessionState.ACTIVE.value)
    assert stored[2] == ("Alice", SessionState.ACTIVE.value)  # skipped: still due, unchanged
    assert stored[3][1] == stored[4][1] == SessionState.ENDED.value
    assert stored[5][1] == SessionState.UNCONFIRMED.value
    claimed = [await store.claim_notice(NOW, TEST_INSTANCE) for _ in range(3)]
    assert [n.chat_id for n in claimed if n is not None] == [3, 4]
    skipped = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(skipped) == 1 and isinstance(skipped[0].args, tuple) and skipped[0].args[1] == 2
    assert all(d.token not in r.getMessage() for r in caplog.records for d in due)
