"""The notice outbox: an ended session's expiry notice, claimed before it is sent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select, tuple_, update

from bot.domain import AccountKey, ExpiryNotice, NoticeState
from bot.storage.base import CHATS, SESSIONS, StoreBase


class NoticeStore(StoreBase):
    async def claim_notices(self, now: datetime, limit: int) -> list[ExpiryNotice]:
        """Pending notices to chats that have not blocked the bot, marked as being sent.

        The claim is committed before anything is sent: after a crash a claimed notice is
        never sent again (at most once), rather than perhaps twice.
        """
        s = SESSIONS.c
        c = CHATS.c
        query = (
            select(
                s.chat_id,
                s.service,
                s.account_id,
                s.display_name,
                s.last_confirmed_at,
                s.ended_at,
                c.language_code,
                c.language,
            )
            .select_from(SESSIONS.outerjoin(CHATS, c.chat_id == s.chat_id))
            .where(s.notice == NoticeState.PENDING.value, c.blocked_at.is_(None))
            .where(or_(s.notice_due_at.is_(None), s.notice_due_at <= now))
            .order_by(s.ended_at)
            .limit(limit)
        )
        async with self._sessionmaker.begin() as db:
            rows = (await db.execute(query)).all()
            if not rows:
                return []
            # Only the rows this call really switched count: with several bot processes on
            # one database, a notice another process claimed first is not sent again here.
            picked = [(r.chat_id, r.service, r.account_id) for r in rows]
            claimed = await db.execute(
                update(SESSIONS)
                .where(
                    tuple_(s.chat_id, s.service, s.account_id).in_(picked),
                    s.notice == NoticeState.PENDING.value,
                )
                .values(notice=NoticeState.SENDING.value)
                .returning(s.chat_id, s.service, s.account_id)
            )
            mine = {tuple(r) for r in claimed.all()}
        return [
            ExpiryNotice(
                chat_id=r.chat_id,
                key=AccountKey(r.service, r.account_id),
                display_name=r.display_name,
                last_confirmed_at=r.last_confirmed_at,
                ended_at=r.ended_at,
                language_code=r.language_code,
                language=r.language,
            )
            for r in rows
            if (r.chat_id, r.service, r.account_id) in mine
        ]

    async def finish_notice(
        self,
        chat_id: int,
        key: AccountKey,
        *,
        delivered: bool,
        retry_at: datetime | None = None,
    ) -> None:
        """After a send: sent, or back to pending (optionally not before `retry_at`)."""
        s = SESSIONS.c
        values = (
            {"notice": NoticeState.SENT.value}
            if delivered
            else {"notice": NoticeState.PENDING.value, "notice_due_at": retry_at}
        )
        async with self._sessionmaker.begin() as db:
            await db.execute(
                update(SESSIONS)
                .where(
                    and_(
                        s.chat_id == chat_id,
                        s.service == key.service,
                        s.account_id == key.account_id,
                        s.notice == NoticeState.SENDING.value,
                    )
                )
                .values(**values)
            )

    async def settle_interrupted_notices(self) -> int:
        """Notices claimed by a process that stopped mid-send: treat them as sent."""
        s = SESSIONS.c
        async with self._sessionmaker.begin() as db:
            result = await db.execute(
                update(SESSIONS)
                .where(s.notice == NoticeState.SENDING.value)
                .values(notice=NoticeState.SENT.value)
            )
            return getattr(result, "rowcount", 0) or 0
