"""What the bot's owners manage: access, audit, broadcasts, statistics, login failures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    and_,
    delete,
    func,
    literal,
    not_,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import BroadcastStatus, SessionState
from bot.storage.base import orphaned, upsert_into
from bot.storage.models import (
    AuditEntry,
    Broadcast,
    Chat,
    LoginFailure,
    Person,
    RemoteSessionRow,
    StatBucket,
    UTCDateTime,
)


@dataclass(frozen=True, slots=True)
class Access:
    allowed: bool
    banned: bool


@dataclass(frozen=True, slots=True)
class AuditRecord:
    at: datetime
    admin_id: int
    action: str
    target: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class BroadcastRecord:
    id: int
    admin_id: int
    admin_chat_id: int
    progress_message_id: int | None
    text: str
    status: BroadcastStatus
    total: int
    sent: int
    failed: int
    blocked: int
    cursor: int | None


@dataclass(frozen=True, slots=True)
class Stats:
    sessions_total: int
    sessions_by_state: Mapping[str, int]
    blocked_chats: int
    people_total: int
    people_24h: int
    people_7d: int
    events_24h: Mapping[str, int]
    # service id -> session state -> count (services with no session are absent)
    sessions_by_service: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


# The first half of PostgreSQL's two-part advisory lock keys taken for login attempts.
_ATTEMPT_LOCKS = 0x5B1D


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


class OwnerStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        bind = sessionmaker.kw.get("bind")
        assert bind is not None, "the sessionmaker must be bound to an engine"
        self._dialect = bind.dialect.name

    def _insert(self, model: type[object]) -> postgresql.Insert | sqlite.Insert:
        return upsert_into(self._dialect, model)

    # -- access -----------------------------------------------------------------------------

    async def access(self, user_id: int) -> Access:
        async with self._sessionmaker() as db:
            person = await db.get(Person, user_id)
            return Access(False, False) if person is None else Access(person.allowed, person.banned)

    async def set_access(
        self,
        user_id: int,
        *,
        admin_id: int,
        now: datetime,
        allowed: bool | None = None,
        banned: bool | None = None,
    ) -> Access:
        async with self._sessionmaker.begin() as db:
            person = await db.get(Person, user_id)
            if person is None:
                person = Person(user_id=user_id, allowed=False, banned=False)
                db.add(person)
            if allowed is not None:
                person.allowed = allowed
            if banned is not None:
                person.banned = banned
            person.updated_at = now
            person.updated_by = admin_id
            return Access(person.allowed, person.banned)

    # -- audit ------------------------------------------------------------------------------

    async def audit(
        self,
        admin_id: int,
        action: str,
        now: datetime,
        target: str | None = None,
        detail: str | None = None,
    ) -> None:
        async with self._sessionmaker.begin() as db:
            db.add(
                AuditEntry(at=now, admin_id=admin_id, action=action, target=target, detail=detail)
            )

    async def latest_audit(self, limit: int = 20) -> list[AuditRecord]:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        async with self._sessionmaker() as db:
            rows = (await db.scalars(query)).all()
        return [AuditRecord(r.at, r.admin_id, r.action, r.target, r.detail) for r in rows]

    # -- statistics -------------------------------------------------------------------------

    async def bump(self, counts: Mapping[str, int], now: datetime) -> None:
        """Add event counts to this hour's buckets."""
        counts = {k: v for k, v in counts.items() if v}
        if not counts:
            return
        hour = _hour(now)
        async with self._sessionmaker.begin() as db:
            for kind, n in counts.items():
                stmt = self._insert(StatBucket).values(hour=hour, kind=kind, count=n)
                await db.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["hour", "kind"],
                        set_={"count": StatBucket.__table__.c.count + n},
                    )
                )

    async def stats(self, now: datetime) -> Stats:
        day, week = now - timedelta(days=1), now - timedelta(days=7)
        s = cast(Table, RemoteSessionRow.__table__).c
        c = cast(Table, Chat.__table__).c
        b = cast(Table, StatBucket.__table__).c
        async with self._sessionmaker() as db:
            grouped = await db.execute(
                select(s.service, s.state, func.count()).group_by(s.service, s.state)
            )
            by_service: dict[str, dict[str, int]] = {}
            by_state: dict[str, int] = {}
            for service, state, n in grouped.all():
                per = by_service.setdefault(str(service), {v.value: 0 for v in SessionState})
                per[str(state)] = per.get(str(state), 0) + int(n)
                by_state[str(state)] = by_state.get(str(state), 0) + int(n)
            private = c.chat_id > 0
            people = await db.execute(
                select(
                    func.count(),
                    func.count().filter(c.last_seen_at >= day),
                    func.count().filter(c.last_seen_at >= week),
                    func.count().filter(c.blocked_at.is_not(None)),
                ).where(private)
            )
            total, last_day, last_week, blocked = people.one()
            events = dict(
                (
                    await db.execute(
                        select(b.kind, func.sum(b.count))
                        .where(b.hour >= _hour(day))
                        .group_by(b.kind)
                    )
                ).all()
            )
        states = {state.value: int(by_state.get(state.value, 0)) for state in SessionState}
        return Stats(
            sessions_total=sum(states.values()),
            sessions_by_state=states,
            sessions_by_service=by_service,
            blocked_chats=int(blocked),
            people_total=int(total),
            people_24h=int(last_day),
            people_7d=int(last_week),
            events_24h={k: int(v) for k, v in events.items()},
        )

    async def sessions_by_state(self) -> dict[str, int]:
        s = cast(Table, RemoteSessionRow.__table__).c
        async with self._sessionmaker() as db:
            grouped = await db.execute(select(s.state, func.count()).group_by(s.state))
            found = {str(k): int(v) for k, v in grouped.all()}
        return {state.value: found.get(state.value, 0) for state in SessionState}

    # -- login failures ---------------------------------------------------------------------

    async def failures_since(self, keys: list[str], since: datetime) -> dict[str, list[datetime]]:
        query = (
            select(LoginFailure.key, LoginFailure.at)
            .where(LoginFailure.key.in_(keys), LoginFailure.at >= since)
            .order_by(LoginFailure.at)
        )
        found: dict[str, list[datetime]] = {k: [] for k in keys}
        async with self._sessionmaker() as db:
            for key, at in (await db.execute(query)).all():
                found[key].append(at)
        return found

    async def reserve_attempt(
        self,
        keys: list[str],
        now: datetime,
        *,
        since: datetime,
        max_failures: int,
        locked_after: datetime,
    ) -> list[int]:
        """Record a failure under every key now, in one step, unless one of them is locked.

        A key is locked when it has `max_failures` failures since `since`, the latest after
        `locked_after`. Returns the ids of the rows written (one per key), or [] when locked.
        Checking and recording are one statement, so simultaneous attempts cannot all pass
        the check before any is recorded; on PostgreSQL a transaction lock per key makes
        the statements of several processes take turns (SQLite takes its write lock first).
        """
        f = cast(Table, LoginFailure.__table__)

        def locked(key: str) -> ColumnElement[bool]:
            recent = and_(f.c.key == key, f.c.at >= since)
            count = select(func.count()).where(recent).scalar_subquery()
            latest = select(func.max(f.c.at)).where(recent).scalar_subquery()
            return and_(count >= max_failures, latest > locked_after)

        free = not_(or_(*(locked(key) for key in keys)))
        at = literal(now, UTCDateTime())
        rows = union_all(
            *(
                select(literal(key, String()).label("key"), at.label("at")).where(free)
                for key in keys
            )
        )
        insert = self._insert(LoginFailure).from_select(["key", "at"], rows).returning(f.c.id)
        async with self._sessionmaker.begin() as db:
            if self._dialect == "postgresql":
                for key in sorted(keys):  # always in the same order: no deadlock
                    await db.execute(
                        select(func.pg_advisory_xact_lock(_ATTEMPT_LOCKS, func.hashtext(key)))
                    )
            return list((await db.scalars(insert)).all())

    async def release_attempt(self, ids: list[int]) -> None:
        """Take back a reservation whose attempt said nothing about the password."""
        if ids:
            async with self._sessionmaker.begin() as db:
                await db.execute(delete(LoginFailure).where(LoginFailure.id.in_(ids)))

    async def prune_failures(self, before: datetime) -> None:
        async with self._sessionmaker.begin() as db:
            await db.execute(delete(LoginFailure).where(LoginFailure.at < before))

    async def clear_failures(self, keys: list[str]) -> None:
        async with self._sessionmaker.begin() as db:
            await db.execute(delete(LoginFailure).where(LoginFailure.key.in_(keys)))

    # -- forgetting a chat ------------------------------------------------------------------

    async def forget_chat(self, chat_id: int, user_id: int) -> None:
        """Delete what the bot holds about a chat: its session row, its chat row, failures."""
        async with self._sessionmaker.begin() as db:
            await db.execute(delete(RemoteSessionRow).where(RemoteSessionRow.chat_id == chat_id))
            await db.execute(delete(Chat).where(Chat.chat_id == chat_id))
            await db.execute(delete(LoginFailure).where(LoginFailure.key == f"user:{user_id}"))

    async def chats_of_user(self, user_id: int) -> list[int]:
        """Chats whose session was linked by this user (for a ban)."""
        query = select(RemoteSessionRow.chat_id).where(
            or_(RemoteSessionRow.telegram_user_id == user_id, RemoteSessionRow.chat_id == user_id)
        )
        async with self._sessionmaker() as db:
            return list((await db.scalars(query)).all())

    # -- broadcasts -------------------------------------------------------------------------

    async def recipients(self, after: int | None, limit: int) -> list[int]:
        """Private chats that have not blocked the bot, in chat id order, after `after`."""
        c = cast(Table, Chat.__table__).c
        query = select(c.chat_id).where(c.chat_id > 0, c.blocked_at.is_(None))
        banned = select(Person.user_id).where(Person.banned.is_(True))
        query = query.where(c.chat_id.not_in(banned))
        if after is not None:
            query = query.where(c.chat_id > after)
        async with self._sessionmaker() as db:
            return list((await db.scalars(query.order_by(c.chat_id).limit(limit))).all())

    async def count_recipients(self) -> int:
        c = cast(Table, Chat.__table__).c
        banned = select(Person.user_id).where(Person.banned.is_(True))
        query = select(func.count()).where(
            c.chat_id > 0, c.blocked_at.is_(None), c.chat_id.not_in(banned)
        )
        async with self._sessionmaker() as db:
            return int(await db.scalar(query) or 0)

    async def create_broadcast(
        self,
        admin_id: int,
        admin_chat_id: int,
        text: str,
        total: int,
        now: datetime,
        owner: str | None = None,
    ) -> int:
        """A running broadcast sent by the instance `owner` (None: nobody sends it yet)."""
        async with self._sessionmaker.begin() as db:
            row = Broadcast(
                admin_id=admin_id,
                admin_chat_id=admin_chat_id,
                text=text,
                status=BroadcastStatus.RUNNING,
                owner=owner,
                total=total,
                sent=0,
                failed=0,
                blocked=0,
                created_at=now,
            )
            db.add(row)
            await db.flush()
            return row.id

    async def get_broadcast(self, broadcast_id: int) -> BroadcastRecord | None:
        async with self._sessionmaker() as db:
            row = await db.get(Broadcast, broadcast_id)
            return None if row is None else _broadcast(row)

    async def update_broadcast(self, broadcast_id: int, **values: object) -> None:
        async with self._sessionmaker.begin() as db:
            await db.execute(update(Broadcast).where(Broadcast.id == broadcast_id).values(**values))

    async def advance_broadcast(
        self, broadcast_id: int, owner: str, cursor: int, counts: Mapping[str, int]
    ) -> bool:
        """Store the next recipient as the cursor before it is sent to; False when the
        broadcast is no longer `owner`'s to send (stop was pressed, or it was taken over)."""
        b = Broadcast
        async with self._sessionmaker.begin() as db:
            result = await db.execute(
                update(b)
                .where(b.id == broadcast_id, b.owner == owner, b.status == BroadcastStatus.RUNNING)
                .values(cursor=cursor, **counts)
            )
            return bool(getattr(result, "rowcount", 0))

    async def request_broadcast_stop(self, broadcast_id: int) -> bool:
        """Ask whichever instance sends it to stop; False when it is not running."""
        b = Broadcast
        async with self._sessionmaker.begin() as db:
            result = await db.execute(
                update(b)
                .where(b.id == broadcast_id, b.status == BroadcastStatus.RUNNING)
                .values(status=BroadcastStatus.STOPPING)
            )
            return bool(getattr(result, "rowcount", 0))

    async def finish_broadcast(
        self,
        broadcast_id: int,
        owner: str,
        status: BroadcastStatus,
        counts: Mapping[str, int],
        now: datetime,
    ) -> bool:
        b = Broadcast
        async with self._sessionmaker.begin() as db:
            result = await db.execute(
                update(b)
                .where(
                    b.id == broadcast_id,
                    b.owner == owner,
                    b.status.in_([BroadcastStatus.RUNNING, BroadcastStatus.STOPPING]),
                )
                .values(status=status, finished_at=now, owner=None, **counts)
            )
            return bool(getattr(result, "rowcount", 0))

    async def resume_broadcast(self, broadcast_id: int, owner: str) -> BroadcastRecord | None:
        """Take an interrupted broadcast to send on; None when it is not interrupted (already
        resumed from another message, or never interrupted)."""
        b = Broadcast
        async with self._sessionmaker.begin() as db:
            result = await db.execute(
                update(b)
                .where(b.id == broadcast_id, b.status == BroadcastStatus.INTERRUPTED)
                .values(status=BroadcastStatus.RUNNING, owner=owner, finished_at=None)
            )
            if not getattr(result, "rowcount", 0):
                return None
            row = await db.get(Broadcast, broadcast_id)
            return None if row is None else _broadcast(row)

    async def take_interrupted_broadcasts(self, now: datetime) -> list[BroadcastRecord]:
        """Broadcasts whose instance stopped (its lease ran out by `now`) while sending them:
        marked interrupted and returned, to exactly one caller."""
        b = Broadcast
        sending = [BroadcastStatus.RUNNING, BroadcastStatus.STOPPING]
        async with self._sessionmaker.begin() as db:
            ids = (
                await db.scalars(
                    update(b)
                    .where(b.status.in_(sending), orphaned(cast(Table, b.__table__).c.owner, now))
                    .values(status=BroadcastStatus.INTERRUPTED, finished_at=now, owner=None)
                    .returning(b.id)
                )
            ).all()
            if not ids:
                return []
            rows = (await db.scalars(select(b).where(b.id.in_(ids)).order_by(b.id))).all()
            return [_broadcast(r) for r in rows]


def _broadcast(row: Broadcast) -> BroadcastRecord:
    return BroadcastRecord(
        id=row.id,
        admin_id=row.admin_id,
        admin_chat_id=row.admin_chat_id,
        progress_message_id=row.progress_message_id,
        text=row.text,
        status=BroadcastStatus(row.status),
        total=row.total,
        sent=row.sent,
        failed=row.failed,
        blocked=row.blocked,
        cursor=row.cursor,
    )
