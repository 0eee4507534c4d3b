"""Sessions: one row per (chat, service, account), and the watch queue over them."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import String, bindparam, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Update

from bot.domain import (
    AccountKey,
    DueSession,
    Lease,
    LinkedSession,
    NoticeState,
    SessionState,
    StoredAccount,
)
from bot.remote import RemoteSession, Secrets
from bot.storage.base import (
    SESSIONS,
    StoreBase,
    display_name_text,
    fault_name,
    is_row_fault,
    orphaned,
)
from bot.storage.crypto import DecryptError
from bot.storage.keys import open_secrets, seal_secrets
from bot.storage.models import RemoteSessionRow

log = logging.getLogger(__name__)


class SessionUnreadable(Exception):
    """A stored session exists but no configured key opens it for this chat."""

    def __init__(self, chat_id: int, key: AccountKey) -> None:
        super().__init__(f"stored {key.service} session of chat {chat_id} cannot be decrypted")
        self.chat_id = chat_id
        self.key = key


@dataclass(frozen=True, slots=True)
class CheckConfirmed:
    """A check that confirmed `due`: the name to keep (None: unchanged), secrets the service
    renewed (None: unchanged) and when to check next."""

    due: DueSession
    display_name: str | None
    renewed: Secrets | None
    next_check_at: datetime


@dataclass(frozen=True, slots=True)
class _Write:
    """One statement of a batch of check results and the rows it is run for."""

    statement: Update
    rows: list[dict[str, Any]]
    counts_ended: bool = False  # run row by row: its rowcount says how many ended now


def _where(chat_id: int, key: AccountKey) -> Any:
    t = SESSIONS.c
    return (t.chat_id == chat_id) & (t.service == key.service) & (t.account_id == key.account_id)


class SessionStore(StoreBase):
    async def get_session(self, chat_id: int, key: AccountKey) -> LinkedSession | None:
        """SessionUnreadable when the row is there but its secrets do not open."""
        async with self._sessionmaker() as db:
            row = await db.get(RemoteSessionRow, (chat_id, key.service, key.account_id))
            return None if row is None else self._to_domain(row)

    async def accounts(self, chat_id: int) -> list[StoredAccount]:
        """The chat's sessions without their secrets, oldest link first."""
        query = (
            select(RemoteSessionRow)
            .where(RemoteSessionRow.chat_id == chat_id)
            .order_by(RemoteSessionRow.linked_at, RemoteSessionRow.service)
        )
        async with self._sessionmaker() as db:
            rows = (await db.scalars(query)).all()
            return [
                StoredAccount(
                    chat_id=row.chat_id,
                    key=AccountKey(row.service, row.account_id),
                    display_name=row.display_name,
                    state=SessionState(row.state),
                    linked_at=row.linked_at,
                    last_confirmed_at=row.last_confirmed_at,
                    next_check_at=row.next_check_at,
                )
                for row in rows
            ]

    async def save_session(
        self,
        chat_id: int,
        telegram_user_id: int,
        remote: RemoteSession,
        now: datetime,
        *,
        next_check_at: datetime | None = None,
    ) -> LinkedSession:
        """Link `remote` to the chat, replacing the chat's row for that same account only."""
        key = AccountKey(remote.service, remote.account_id)
        async with self._sessionmaker.begin() as db:
            row = await db.get(RemoteSessionRow, (chat_id, key.service, key.account_id))
            if row is None:
                row = RemoteSessionRow(
                    chat_id=chat_id, service=key.service, account_id=key.account_id
                )
                db.add(row)
            row.telegram_user_id = telegram_user_id
            row.display_name = display_name_text(remote.display_name)
            row.secrets_enc = seal_secrets(self._cipher, chat_id, key, remote.secrets)
            row.legacy_seal = False
            row.linked_at = now
            row.last_confirmed_at = now
            row.last_checked_at = now
            row.state = SessionState.ACTIVE
            row.failures = 0
            row.ended_at = None
            row.notice = NoticeState.NONE
            row.notice_due_at = None
            row.next_check_at = next_check_at or now
            row.checked_by = None
            row.notice_owner = None
            await db.flush()
            return self._to_domain(row)

    async def confirm_session(
        self,
        chat_id: int,
        key: AccountKey,
        checked: Secrets,
        now: datetime,
        *,
        display_name: str | None = None,
        renewed: Secrets | None = None,
    ) -> None:
        """Record a successful check of the session holding `checked` (if still linked)."""
        async with self._sessionmaker.begin() as db:
            row = await db.get(RemoteSessionRow, (chat_id, key.service, key.account_id))
            if row is None or self._secrets_or_none(row) != dict(checked):
                return
            row.last_confirmed_at = now
            row.last_checked_at = now
            if display_name:
                row.display_name = display_name_text(display_name)
            row.state = SessionState.ACTIVE
            row.failures = 0
            if renewed is not None and dict(renewed) != dict(checked):
                row.secrets_enc = seal_secrets(self._cipher, chat_id, key, renewed)

    async def end_session(
        self, chat_id: int, key: AccountKey, checked: Secrets, now: datetime, *, notify: bool
    ) -> bool:
        """Mark the session holding `checked` ended; `notify` queues the expiry notice."""
        async with self._sessionmaker.begin() as db:
            row = await db.get(RemoteSessionRow, (chat_id, key.service, key.account_id))
            if (
                row is None
                or row.state == SessionState.ENDED
                or self._secrets_or_none(row) != dict(checked)
            ):
                return False
            row.state = SessionState.ENDED
            row.ended_at = now
            row.next_check_at = None
            row.checked_by = None
            row.notice = NoticeState.PENDING if notify else NoticeState.SENT
            row.notice_due_at = None
            return True

    async def delete_session(self, chat_id: int, key: AccountKey) -> bool:
        async with self._sessionmaker.begin() as db:
            result = await db.execute(delete(RemoteSessionRow).where(_where(chat_id, key)))
            return bool(getattr(result, "rowcount", 0))

    async def count_sessions(self) -> int:
        async with self._sessionmaker() as db:
            return int(await db.scalar(select(func.count()).select_from(RemoteSessionRow)) or 0)

    # -- the watch queue --------------------------------------------------------------------

    async def next_due_at(self) -> datetime | None:
        async with self._sessionmaker() as db:
            # min() keeps the column's type, so the value comes back as an aware datetime.
            return await db.scalar(select(func.min(RemoteSessionRow.next_check_at)))

    async def claim_due_sessions(
        self, now: datetime, limit: int, lease: Lease
    ) -> tuple[list[DueSession], list[tuple[int, AccountKey]]]:
        """Take up to `limit` sessions due by `now` (oldest first) for `lease.owner` to check.

        Each is moved to `lease.until`: no other process takes it before then, and if this
        one dies it is simply due again then. On PostgreSQL concurrent claimers skip the rows
        another is taking (FOR UPDATE SKIP LOCKED) instead of waiting for them; on SQLite the
        one statement holds the write lock. Returns the sessions to check and the rows whose
        secrets do not open.
        """
        t = SESSIONS.c
        pick = (
            select(t.chat_id, t.service, t.account_id)
            .where(t.next_check_at <= now)
            .order_by(t.next_check_at)
            .limit(limit)
        )
        if self._dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        # A CTE is run once; `IN (subquery)` may let PostgreSQL run a locking pick per row.
        picked = pick.cte("picked")
        claim = (
            update(SESSIONS)
            .where(
                t.chat_id == picked.c.chat_id,
                t.service == picked.c.service,
                t.account_id == picked.c.account_id,
            )
            .values(next_check_at=lease.until, checked_by=lease.owner)
            .returning(
                t.chat_id,
                t.service,
                t.account_id,
                t.display_name,
                t.state,
                t.failures,
                t.secrets_enc,
                t.legacy_seal,
            )
        )
        async with self._sessionmaker.begin() as db:
            rows = (await db.execute(claim)).all()
        due: list[DueSession] = []
        unreadable: list[tuple[int, AccountKey]] = []
        for chat_id, service, account_id, name, state, failures, sealed, legacy in rows:
            key = AccountKey(service, account_id)
            try:
                if legacy:
                    raise DecryptError("not re-sealed yet")
                secrets = open_secrets(self._cipher, chat_id, key, sealed)
                due.append(
                    DueSession(chat_id, key, name, SessionState(state), failures, secrets, sealed)
                )
            except (DecryptError, ValueError):
                unreadable.append((chat_id, key))
        return due, unreadable

    async def record_checks(
        self,
        now: datetime,
        by: str,
        *,
        confirmed: Sequence[CheckConfirmed] = (),
        ended: Sequence[DueSession] = (),
        deferred: Sequence[tuple[DueSession, datetime]] = (),
        postponed: Sequence[tuple[DueSession, datetime]] = (),
    ) -> int:
        """Write one batch of check results; returns how many sessions ended now.

        `deferred` sessions failed for a transient reason (failures counted, state
        unconfirmed); `postponed` ones are only moved in time (their service looked down).
        Each write is conditional on the stored ciphertext being the one checked, so a
        re-login during the check is never overwritten, and on the session still being
        claimed `by` this process, so a result that came after its lease ran out (and another
        process took the session over) is dropped.
        """
        writes = self._check_writes(now, by, confirmed, ended, deferred, postponed)
        try:
            async with self._sessionmaker.begin() as db:
                return await _apply_writes(db, writes)
        except SQLAlchemyError as exc:
            if not is_row_fault(exc):
                raise
            log.warning(
                "a batch of check results could not be stored (%s); storing them one by one",
                fault_name(exc),
            )
        # One bad row must not hold back the rest: each result in its own transaction.
        ended_count = 0
        for write in writes:
            for row in write.rows:
                single = _Write(write.statement, [row], write.counts_ended)
                try:
                    async with self._sessionmaker.begin() as db:
                        ended_count += await _apply_writes(db, [single])
                except SQLAlchemyError as exc:
                    if not is_row_fault(exc):
                        raise
                    log.error(
                        "check result of a %s session of chat %s cannot be stored (%s); "
                        "skipped, checked again when due",
                        row.get("b_service"),
                        row.get("b_chat"),
                        fault_name(exc),
                    )
        return ended_count

    async def release_orphaned_checks(self, now: datetime) -> int:
        """Sessions claimed by processes whose lease ran out by `now`: due again at once
        rather than when their claim's own (longer) lease would end."""
        t = SESSIONS.c
        async with self._sessionmaker.begin() as db:
            result = await db.execute(
                update(SESSIONS)
                .where(t.checked_by.is_not(None), orphaned(t.checked_by, now))
                .values(next_check_at=now, checked_by=None)
            )
            return getattr(result, "rowcount", 0) or 0

    async def defer(self, keys: Sequence[tuple[int, AccountKey]], until: datetime) -> None:
        """Check these sessions next at `until`, whoever holds them (e.g. unreadable rows,
        which no check can help)."""
        if not keys:
            return
        async with self._sessionmaker.begin() as db:
            for chat_id, key in keys:
                await db.execute(
                    update(SESSIONS)
                    .where(_where(chat_id, key))
                    .values(next_check_at=until, checked_by=None)
                )

    # -- helpers ----------------------------------------------------------------------------

    def _secrets_or_none(self, row: RemoteSessionRow) -> dict[str, str] | None:
        if row.legacy_seal:
            return None
        try:
            return open_secrets(
                self._cipher, row.chat_id, AccountKey(row.service, row.account_id), row.secrets_enc
            )
        except DecryptError:
            return None

    def _to_domain(self, row: RemoteSessionRow) -> LinkedSession:
        key = AccountKey(row.service, row.account_id)
        secrets = self._secrets_or_none(row)
        if not secrets:
            raise SessionUnreadable(row.chat_id, key)
        try:
            remote = RemoteSession(row.service, row.account_id, row.display_name, secrets)
        except ValueError:
            raise SessionUnreadable(row.chat_id, key) from None
        return LinkedSession(
            chat_id=row.chat_id,
            telegram_user_id=row.telegram_user_id,
            remote=remote,
            linked_at=row.linked_at,
            last_confirmed_at=row.last_confirmed_at,
            state=SessionState(row.state),
            next_check_at=row.next_check_at,
            ended_at=row.ended_at,
        )

    def _check_writes(
        self,
        now: datetime,
        by: str,
        confirmed: Sequence[CheckConfirmed],
        ended: Sequence[DueSession],
        deferred: Sequence[tuple[DueSession, datetime]],
        postponed: Sequence[tuple[DueSession, datetime]],
    ) -> list[_Write]:
        """The statements that store one batch of check results, with their rows."""
        t = SESSIONS
        # Each write is conditional on the stored ciphertext being the one checked.
        same = (
            (t.c.chat_id == bindparam("b_chat"))
            & (t.c.service == bindparam("b_service"))
            & (t.c.account_id == bindparam("b_account"))
            & (t.c.secrets_enc == bindparam("b_token"))
            & (t.c.checked_by == by)
        )
        confirm = (
            update(t)
            .where(same)
            .values(
                state=SessionState.ACTIVE.value,
                failures=0,
                display_name=func.coalesce(bindparam("b_name", type_=String()), t.c.display_name),
                secrets_enc=bindparam("b_secrets"),
                last_checked_at=now,
                last_confirmed_at=now,
                next_check_at=bindparam("b_next"),
                checked_by=None,
            )
        )
        defer = (
            update(t)
            .where(same)
            .values(
                state=bindparam("b_state"),
                failures=t.c.failures + 1,
                last_checked_at=now,
                next_check_at=bindparam("b_next"),
                checked_by=None,
            )
        )
        postpone = update(t).where(same).values(next_check_at=bindparam("b_next"), checked_by=None)
        end = (
            update(t)
            .where(same, t.c.state != SessionState.ENDED.value)
            .values(
                state=SessionState.ENDED.value,
                ended_at=now,
                last_checked_at=now,
                next_check_at=None,
                checked_by=None,
                notice=NoticeState.PENDING.value,
                notice_due_at=None,
            )
        )

        def key(d: DueSession) -> dict[str, Any]:
            return {
                "b_chat": d.chat_id,
                "b_service": d.key.service,
                "b_account": d.key.account_id,
                "b_token": d.token,
            }

        def sealed(c: CheckConfirmed) -> str:
            if c.renewed is None or dict(c.renewed) == dict(c.due.secrets):
                return c.due.token
            return seal_secrets(self._cipher, c.due.chat_id, c.due.key, c.renewed)

        writes = [
            _Write(
                confirm,
                [
                    {
                        **key(c.due),
                        "b_name": None if not c.display_name else display_name_text(c.display_name),
                        "b_secrets": sealed(c),
                        "b_next": c.next_check_at,
                    }
                    for c in confirmed
                ],
            ),
            _Write(
                defer,
                [
                    {
                        **key(d),
                        "b_next": nxt,
                        "b_state": SessionState.UNCONFIRMED.value
                        if d.state != SessionState.ENDED
                        else d.state.value,
                    }
                    for d, nxt in deferred
                ],
            ),
            _Write(postpone, [{**key(d), "b_next": nxt} for d, nxt in postponed]),
            _Write(end, [key(d) for d in ended], counts_ended=True),
        ]
        return [w for w in writes if w.rows]


async def _apply_writes(db: AsyncSession, writes: Sequence[_Write]) -> int:
    """Run the writes in `db`'s transaction; returns how many sessions ended now."""
    ended = 0
    for write in writes:
        if write.counts_ended:
            for row in write.rows:
                result = await db.execute(write.statement, row)
                ended += getattr(result, "rowcount", 0) or 0
        else:
            await db.execute(write.statement, cast(Sequence[Mapping[str, Any]], write.rows))
    return ended
