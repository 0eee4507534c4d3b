"""The attempt limit holds under simultaneous passwords; a login that cannot be saved is
ended at Spaces. Real updates through the real Dispatcher, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.remote import Step
from bot.services.guard import LoginGuard
from bot.services.login import guard_name
from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.owners import OwnerStore
from tests.conversation.conftest import CHAT, Harness, texts
from tests.external import pg_url  # noqa: F401 - fixture

PEOPLE = 40
LIMIT = 5  # the default LOGIN_MAX_FAILURES


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """The conversation's database: SQLite in a file, or a fresh PostgreSQL database."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite+aiosqlite:///{tmp_path}/bot.sqlite3"


def logins(h: Harness) -> int:
    return int(h.spaces.state.calls_summary()["counts"].get("login", 0))


async def test_simultaneous_wrong_passwords_reach_spaces_at_most_the_limit(h: Harness) -> None:
    people = [CHAT + n for n in range(PEOPLE)]
    for chat in people:
        await h.say("/login", chat_id=chat)
        await h.say("alice", chat_id=chat)
    mark = h.tg.mark()
    await asyncio.gather(*(h.say("wrong-password", chat_id=c) for c in people))
    assert logins(h) == LIMIT
    locked = h.t("login-locked", wait="")[:25]
    failed = h.t("login-wrong-password", login="alice")[:20]
    said = [texts(h.tg.sent_messages(c, after=mark)) for c in people]
    assert sum(any(t.startswith(failed) for t in ts) for ts in said) == LIMIT
    assert sum(any(t.startswith(locked) for t in ts) for ts in said) == PEOPLE - LIMIT


async def test_two_processes_share_the_limit(h: Harness, db_url: str) -> None:
    """A second bot process on the same database: the same atomic step, its own pool."""
    other = create_engine(db_url)
    try:
        guard = LoginGuard(
            OwnerStore(make_sessionmaker(other)),
            max_failures=LIMIT,
            window_seconds=900,
            lockout_seconds=900,
        )

        async def attempt(person: int) -> bool:
            try:
                # The limit counts per service and login name, however it is typed.
                await guard.reserve(person, guard_name("spaces", {Step.LOGIN_NAME: "Alice"}))
            except Exception:
                return False
            return True

        here = [CHAT + n for n in range(PEOPLE // 2)]
        for chat in here:
            await h.say("/login", chat_id=chat)
            await h.say("alice", chat_id=chat)
        results = await asyncio.gather(
            *(h.say("wrong-password", chat_id=c) for c in here),
            *(attempt(10_000 + n) for n in range(PEOPLE // 2)),
        )
        reserved_there = sum(1 for r in results if r is True)
        assert logins(h) + reserved_there == LIMIT
    finally:
        await other.dispose()


@pytest.mark.parametrize("settings_overrides", [{"flood_max_messages": 100}])
async def test_attempts_that_say_nothing_about_the_password_are_given_back(h: Harness) -> None:
    h.spaces.state.set_mode("http500")
    for _ in range(LIMIT + 2):
        await h.say("/login")
        await h.say("alice")
        await h.say("wrong-password")
    h.spaces.state.set_mode("ok")
    before = logins(h)
    await h.say("/login")
    await h.say("alice")
    calls = await h.say("secret123")
    assert logins(h) == before + 1
    assert "Alice" in texts(calls)[-1]


async def test_a_login_that_cannot_be_saved_is_ended_at_spaces(
    h: Harness, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:  # the database fails every write to sessions
        await conn.execute(text("ALTER TABLE remote_sessions RENAME TO sessions_elsewhere"))
    await h.say("/login")
    await h.say("alice")
    calls = await h.say("secret123")
    assert texts(calls)[-1] == h.t("login-not-saved")
    assert logins(h) == 1
    assert h.spaces.state.sids_of(1001) == []  # logged out again at Spaces
    assert h.spaces.state.calls_summary()["counts"].get("logout") == 1
    assert await h.state() is None
