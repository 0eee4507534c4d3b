from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain import AccountKey, SessionState
from bot.remote import RemoteSession
from bot.storage.crypto import Cipher, generate_key
from bot.storage.engine import make_sessionmaker
from bot.storage.store import KeyMismatch, SessionUnreadable, Store
from tests.conftest import TEST_INSTANCE, lease

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SPACES = AccountKey("spaces", "1001")


def account(
    sid: str = "6693985458435384", ck: str = "5384", nick: str = "Alice", nid: int = 1001
) -> RemoteSession:
    return RemoteSession("spaces", str(nid), nick, {"sid": sid, "ck": ck})


def sendspace(key: str = "hq1t9rsa0bhajss1cuv1t6rsa2", name: str = "alice") -> RemoteSession:
    return RemoteSession("sendspace", name.lower(), name, {"session_key": key})


async def raw_rows(engine: AsyncEngine) -> list[tuple[object, ...]]:
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text("SELECT * FROM remote_sessions")))]


async def test_save_get_replace_delete(store: Store) -> None:
    assert await store.get_session(1, SPACES) is None
    saved = await store.save_session(1, 10, account(), NOW)
    assert saved.secrets == {"sid": "6693985458435384", "ck": "5384"}
    assert "6693985458435384" not in repr(saved)
    got = await store.get_session(1, SPACES)
    assert got == saved
    assert got is not None and got.linked_at == NOW and got.linked_at.tzinfo is not None

    later = NOW + timedelta(hours=1)
    await store.save_session(1, 10, account(sid="1111222233334444", ck="4444", nick="Bob"), later)
    got = await store.get_session(1, SPACES)
    assert got is not None and got.display_name == "Bob"
    assert got.secrets["sid"] == "1111222233334444"
    assert await store.count_sessions() == 1  # the same account: its row replaced

    assert await store.delete_session(1, SPACES) is True
    assert await store.delete_session(1, SPACES) is False
    assert await store.get_session(1, SPACES) is None


async def test_several_accounts_in_one_chat_each_their_own_row(store: Store) -> None:
    await store.save_session(1, 10, account(), NOW)
    await store.save_session(1, 10, account(sid="2222333344445555", nick="Bob", nid=1002), NOW)
    await store.save_session(1, 10, sendspace(), NOW + timedelta(seconds=1))
    listed = await store.accounts(1)
    assert [(a.key.service, a.key.account_id, a.display_name) for a in listed] == [
        ("spaces", "1001", "Alice"),
        ("spaces", "1002", "Bob"),
        ("sendspace", "alice", "alice"),
    ]
    assert len({a.key.tag for a in listed}) == 3  # each button names one account
    # Ending one touches no other.
    key = AccountKey("sendspace", "alice")
    got = await store.get_session(1, key)
    assert got is not None
    assert await store.end_session(1, key, got.secrets, NOW, notify=True) is True
    states = {a.key: a.state for a in await store.accounts(1)}
    assert states[key] == SessionState.ENDED
    assert states[SPACES] == states[AccountKey("spaces", "1002")] == SessionState.ACTIVE
    notice = await store.claim_notice(NOW, TEST_INSTANCE)
    assert notice is not None and notice.key == key and notice.display_name == "alice"
    assert await store.claim_notice(NOW, TEST_INSTANCE) is None


async def test_secrets_never_stored_in_plain_text(store: Store, engine: AsyncEngine) -> None:
    await store.save_session(7, 70, account(), NOW)
    await store.save_session(7, 70, sendspace(), NOW)
    rows = repr(await raw_rows(engine))
    assert "6693985458435384" not in rows and "hq1t9rsa0bhajss1cuv1t6rsa2" not in rows
    assert "'5384'" not in rows and '"5384"' not in rows


@pytest.mark.parametrize(
    "moved",
    [
        "chat_id = 2",  # another chat
        "account_id = '1002'",  # another account of the same service
        "service = 'sendspace'",  # another service
    ],
)
async def test_a_row_moved_to_another_key_does_not_decrypt(
    store: Store, engine: AsyncEngine, moved: str
) -> None:
    await store.save_session(1, 10, account(), NOW)
    async with engine.begin() as conn:
        await conn.execute(text(f"UPDATE remote_sessions SET {moved}"))
    [row] = await raw_rows(engine)
    key = AccountKey(str(row[1]), str(row[2]))
    with pytest.raises(SessionUnreadable):
        await store.get_session(int(str(row[0])), key)


async def test_confirm_only_touches_the_same_session(store: Store) -> None:
    await store.save_session(1, 10, account(), NOW)
    later = NOW + timedelta(minutes=5)
    other = {"sid": "other-sid", "ck": "5384"}
    await store.confirm_session(1, SPACES, other, later, display_name="Mallory")
    got = await store.get_session(1, SPACES)
    assert got is not None and got.last_confirmed_at == NOW and got.display_name == "Alice"
    await store.confirm_session(
        1,
        SPACES,
        got.secrets,
        later,
        display_name="Alice2",
        renewed={"sid": "6693985458435384", "ck": "9999"},
    )
    got = await store.get_session(1, SPACES)
    assert got is not None and got.last_confirmed_at == later and got.display_name == "Alice2"
    assert got.secrets["ck"] == "9999"


async def test_canary_detects_a_wrong_key(engine: AsyncEngine, key: str) -> None:
    sm = make_sessionmaker(engine)
    assert await Store(sm, Cipher.from_strings([key])).verify_or_create_canary() is True
    assert await Store(sm, Cipher.from_strings([key])).verify_or_create_canary() is False
    with pytest.raises(KeyMismatch):
        await Store(sm, Cipher.from_strings([generate_key()])).verify_or_create_canary()


async def test_reencrypt_all_moves_everything_to_the_first_key(
    engine: AsyncEngine, key: str
) -> None:
    sm = make_sessionmaker(engine)
    old_store = Store(sm, Cipher.from_strings([key]))
    await old_store.verify_or_create_canary()
    for chat in range(1, 8):
        await old_store.save_session(chat, chat, account(sid=f"{chat:016d}"), NOW)

    new_key = generate_key()
    both = Store(sm, Cipher.from_strings([new_key, key]))
    assert await both.reencrypt_all(batch_size=3) == 7
    assert await both.reencrypt_all(batch_size=3) == 0

    only_new = Store(sm, Cipher.from_strings([new_key]))
    assert await only_new.verify_or_create_canary() is False
    for chat in range(1, 8):
        got = await only_new.get_session(chat, SPACES)
        assert got is not None and got.secrets["sid"] == f"{chat:016d}"


async def test_the_backlog_counts_overdue_checks_and_waiting_notices(store: Store) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    for chat_id, due_ago in ((1, 600), (2, 30), (3, 3600)):
        due = now - timedelta(seconds=due_ago)
        await store.save_session(
            chat_id, chat_id, account(f"{chat_id:016d}"), due, next_check_at=due
        )
    backlog = await store.backlog(now)
    # Due half a minute ago is the sweep's normal pace; ten minutes and an hour are behind.
    assert backlog.overdue_sessions == 2
    assert backlog.oldest_overdue_since == now - timedelta(hours=1)
    assert backlog.pending_notices == 0 and backlog.oldest_pending_since is None
    claimed, _ = await store.claim_due_sessions(now, 1, lease())
    await store.record_checks(now - timedelta(minutes=3), TEST_INSTANCE, ended=claimed)
    backlog = await store.backlog(now)
    assert backlog.overdue_sessions == 1
    assert backlog.pending_notices == 1
    assert backlog.oldest_pending_since == now - timedelta(minutes=3)
