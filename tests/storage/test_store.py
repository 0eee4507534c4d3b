from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.spaces import Account
from bot.storage.crypto import Cipher, generate_key
from bot.storage.engine import make_sessionmaker
from bot.storage.store import KeyMismatch, SessionUnreadable, Store

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def account(sid: str = "6693985458435384", ck: str = "5384", nick: str = "Alice") -> Account:
    return Account(
        sid=sid,
        ck=ck,
        user_id=1001,
        nickname=nick,
        is_online=True,
        last_seen_at=None,
        channel_id=None,
        avatar_url=None,
        profile_url=None,
    )


async def raw_rows(engine: AsyncEngine) -> list[tuple[object, ...]]:
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text("SELECT * FROM spaces_sessions")))]


async def test_save_get_replace_delete(store: Store, engine: AsyncEngine) -> None:
    assert await store.get_session(1) is None
    saved = await store.save_session(1, 10, account(), NOW)
    assert saved.sid == "6693985458435384" and saved.ck == "5384"
    assert "6693985458435384" not in repr(saved)
    got = await store.get_session(1)
    assert got == saved
    assert got is not None and got.linked_at == NOW and got.linked_at.tzinfo is not None

    later = NOW + timedelta(hours=1)
    await store.save_session(1, 10, account(sid="1111222233334444", ck="4444", nick="Bob"), later)
    got = await store.get_session(1)
    assert got is not None and got.nickname == "Bob" and got.sid == "1111222233334444"
    assert await store.count_sessions() == 1

    assert await store.delete_session(1) is True
    assert await store.delete_session(1) is False
    assert await store.get_session(1) is None


async def test_secrets_never_stored_in_plain_text(store: Store, engine: AsyncEngine) -> None:
    await store.save_session(7, 70, account(), NOW)
    rows = await raw_rows(engine)
    assert "6693985458435384" not in repr(rows)
    assert all(value != "5384" for row in rows for value in row)


async def test_row_copied_to_another_chat_does_not_decrypt(
    store: Store, engine: AsyncEngine
) -> None:
    await store.save_session(1, 10, account(), NOW)
    async with engine.begin() as conn:
        cols = "telegram_user_id, spaces_user_id, nickname, sid_enc, ck_enc, linked_at"
        await conn.execute(
            text(
                f"INSERT INTO spaces_sessions (chat_id, {cols}, last_confirmed_at)"
                f" SELECT 2, {cols}, last_confirmed_at FROM spaces_sessions WHERE chat_id=1"
            )
        )
    with pytest.raises(SessionUnreadable):
        await store.get_session(2)
    assert (await store.get_session(1)) is not None


async def test_confirm_only_touches_the_same_session(store: Store) -> None:
    await store.save_session(1, 10, account(), NOW)
    later = NOW + timedelta(minutes=5)
    await store.confirm_session(1, "other-sid", account(), later)
    got = await store.get_session(1)
    assert got is not None and got.last_confirmed_at == NOW
    await store.confirm_session(1, "6693985458435384", account(nick="Alice2"), later)
    got = await store.get_session(1)
    assert got is not None and got.last_confirmed_at == later and got.nickname == "Alice2"


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
        got = await only_new.get_session(chat)
        assert got is not None and got.sid == f"{chat:016d}"


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
    due, _ = await store.due_sessions(now, 1)
    await store.record_checks(now - timedelta(minutes=3), ended=due)
    backlog = await store.backlog(now)
    assert backlog.overdue_sessions == 1
    assert backlog.pending_notices == 1
    assert backlog.oldest_pending_since == now - timedelta(minutes=3)
