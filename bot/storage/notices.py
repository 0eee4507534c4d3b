"""The notice outbox: an ended session's expiry notice, claimed one at a time by one
process, recorded as sending right before the send; each row is one (chat, service,
account). A claim names the process that holds it (`notice_owner`): only that process moves
it on, and the others settle it only once that process's lease has run out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy.sql.elements import ColumnElement

from bot.domain import AccountKey, Backlog, ExpiryNotice, NoticeState
from bot.storage.base import CHATS, SESSIONS, StoreBase, orphaned

# A session whose check was due longer ago than this is overdue: the watch is behind.
OVERDUE_AFTER = timedelta(minutes=1)


def _aware(value: datetime | None) -> datetime | None:
    """An aggregate over a UTC column comes back naive from SQLite (no column type applies)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _row(chat_id: int, key: AccountKey) -> ColumnElement[bool]:
    s = SESSIONS.c
    return and_(s.chat_id == chat_id, s.service == key.service, s.account_id == key.account_id)


class NoticeStore(StoreBase):
    async def claim_notice(self, now: datetime, owner: str) -> ExpiryNotice | None:
        """Take the oldest notice that can be sent now (chat not blocked, retry time reached)
        for the process `owner`.

        One at a time, so a stop leaves few claims, and those are given back
        (`release_notices`) or, after a crash, settled once the owner's lease has run out
        (`recover_notices`).
        """
        s = SESSIONS.c
        c = CHATS.c
        pick = (
            select(s.chat_id, s.service, s.account_id)
            .select_from(SESSIONS.outerjoin(CHATS, c.chat_id == s.chat_id))
            .where(s.notice == NoticeState.PENDING.value, c.blocked_at.is_(None))
            .where(or_(s.notice_due_at.is_(None), s.notice_due_at <= now))
            .order_by(s.ended_at)
            .limit(1)
        )
        if self._dialect.name == "postgresql":
            # Concurrent senders each skip the row another one is taking, instead of queueing.
            pick = pick.with_for_update(of=SESSIONS, skip_locked=True)
        details = select(
            s.chat_id,
            s.service,
            s.account_id,
            s.display_name,
            s.last_confirmed_at,
            s.ended_at,
            c.language_code,
            c.language,
        ).select_from(SESSIONS.outerjoin(CHATS, c.chat_id == s.chat_id))
        async with self._sessionmaker.begin() as db:
            # One statement: on SQLite it takes the write lock before it picks, so two senders
            # (or two processes) never take the same notice.
            claimed = (
                await db.execute(
                    update(SESSIONS)
                    .where(
                        # A row subquery, run once: `IN (subquery)` would let PostgreSQL
                        # run the locking pick again for each row it updates.
                        tuple_(s.chat_id, s.service, s.account_id) == pick.scalar_subquery(),
                        s.notice == NoticeState.PENDING.value,
                    )
                    .values(notice=NoticeState.CLAIMED.value, notice_owner=owner)
                    .returning(s.chat_id, s.service, s.account_id)
                )
            ).first()
            if claimed is None:
                return None
            chat_id, service, account_id = claimed
            key = AccountKey(service, account_id)
            row = (await db.execute(details.where(_row(chat_id, key)))).one()
        return ExpiryNotice(
            chat_id=row.chat_id,
            key=key,
            display_name=row.display_name,
            last_confirmed_at=row.last_confirmed_at,
            ended_at=row.ended_at,
            language_code=row.language_code,
            language=row.language,
        )

    async def start_sending_notice(self, chat_id: int, key: AccountKey, owner: str) -> bool:
        """Record that the claimed notice is being handed to Telegram now.

        False when the claim is no longer `owner`'s (its lease ran out and another process
        settled it): then it must not be sent here.
        """
        return await self._move(chat_id, key, owner, NoticeState.CLAIMED, NoticeState.SENDING)

    async def take_back_notice(self, chat_id: int, key: AccountKey, owner: str) -> bool:
        """Telegram asked to wait: the notice did not go out, so it is only claimed again."""
        return await self._move(chat_id, key, owner, NoticeState.SENDING, NoticeState.CLAIMED)

    async def _move(
        self, chat_id: int, key: AccountKey, owner: str, before: NoticeState, after: NoticeState
    ) -> bool:
        s = SESSIONS.c
        async with self._sessionmaker.begin() as db:
            result = await db.execute(
                update(SESSIONS)
                .where(_row(chat_id, key), s.notice == before.value, s.notice_owner == owner)
                .values(notice=after.value)
            )
            return bool(getattr(result, "rowcount", 0))

    async def finish_notice(
        self,
        chat_id: int,
        key: AccountKey,
        owner: str,
        *,
        delivered: bool,
        retry_at: datetime | None = None,
    ) -> None:
        """After a send: sent, or back to pending (optionally not before `retry_at`)."""
        s = SESSIONS.c
        values = (
            {"notice": NoticeState.SENT.value, "notice_owner": None}
            if delivered
            else {
                "notice": NoticeState.PENDING.value,
                "notice_due_at": retry_at,
                "notice_owner": None,
            }
        )
        taken = (NoticeState.CLAIMED.value, NoticeState.SENDING.value)
        async with self._sessionmaker.begin() as db:
            await db.execute(
                update(SESSIONS)
                .where(_row(chat_id, key), s.notice.in_(taken), s.notice_owner == owner)
                .values(**values)
            )

    async def release_notices(self, claims: Sequence[tuple[int, AccountKey]], owner: str) -> int:
        """Give back `owner`'s claims that were never handed to Telegram (on shutdown)."""
        if not claims:
            return 0
        s = SESSIONS.c
        rows = [(chat, key.service, key.account_id) for chat, key in claims]
        async with self._sessionmaker.begin() as db:
            result = await db.execute(
                update(SESSIONS)
                .where(
                    tuple_(s.chat_id, s.service, s.account_id).in_(rows),
                    s.notice == NoticeState.CLAIMED.value,
                    s.notice_owner == owner,
                )
                .values(notice=NoticeState.PENDING.value, notice_owner=None)
            )
            return getattr(result, "rowcount", 0) or 0

    async def recover_notices(self, now: datetime) -> tuple[int, int]:
        """Claims of processes whose lease ran out by `now` (they stopped without giving them
        back): (claims given back to be sent, sends settled as uncertain). A live process's
        claims are never touched.

        A claim never handed to Telegram is sent again; a notice that was being handed over
        may have arrived, so it is never sent again (at most once for that one message).
        """
        s = SESSIONS.c
        dead = orphaned(s.notice_owner, now)
        async with self._sessionmaker.begin() as db:
            returned = await db.execute(
                update(SESSIONS)
                .where(s.notice == NoticeState.CLAIMED.value, dead)
                .values(notice=NoticeState.PENDING.value, notice_owner=None)
            )
            settled = await db.execute(
                update(SESSIONS)
                .where(s.notice == NoticeState.SENDING.value, dead)
                .values(notice=NoticeState.UNCERTAIN.value, notice_owner=None)
            )
            return (
                getattr(returned, "rowcount", 0) or 0,
                getattr(settled, "rowcount", 0) or 0,
            )

    async def backlog(self, now: datetime) -> Backlog:
        """How far behind the watch and the outbox are."""
        s = SESSIONS.c
        # Due a moment ago is the normal pace of the sweep, not being behind.
        due = s.next_check_at <= now - OVERDUE_AFTER
        waiting = s.notice.in_([NoticeState.PENDING.value, NoticeState.CLAIMED.value])
        async with self._sessionmaker() as db:
            overdue, oldest_due, pending, oldest_ended = (
                await db.execute(
                    select(
                        func.count().filter(due),
                        func.min(s.next_check_at).filter(due),
                        func.count().filter(waiting),
                        func.min(s.ended_at).filter(waiting),
                    )
                )
            ).one()
        return Backlog(
            overdue_sessions=int(overdue),
            oldest_overdue_since=_aware(oldest_due),
            pending_notices=int(pending),
            oldest_pending_since=_aware(oldest_ended),
        )
