"""The bot's persistent state. Each public call is one transaction; secrets are encrypted."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Column, Table, bindparam, delete, func, inspect, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import Update

from bot.domain import Backlog, DueSession, ExpiryNotice, LinkedSession, NoticeState, SessionState
from bot.spaces.types import Account
from bot.storage.crypto import Cipher, DecryptError
from bot.storage.models import Chat, Meta, SpacesSession

log = logging.getLogger(__name__)

CANARY_KEY = "key_canary"
# Written by the readiness probe: proof that the database takes writes.
PROBE_KEY = "health_probe"
# A session whose check was due longer ago than this is overdue: the watch is behind.
OVERDUE_AFTER = timedelta(minutes=1)
_CANARY_TEXT = "spaces-bridge canary"
_CANARY_CONTEXT = "meta:key_canary"


class SessionUnreadable(Exception):
    """A stored session exists but no configured key opens it for this chat."""

    def __init__(self, chat_id: int) -> None:
        super().__init__(f"stored session of chat {chat_id} cannot be decrypted")
        self.chat_id = chat_id


class KeyMismatch(Exception):
    """None of the configured keys opens the canary written at first start."""


def _aware(value: datetime | None) -> datetime | None:
    """An aggregate over a UTC column comes back naive from SQLite (no column type applies)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _context(chat_id: int, field_name: str) -> str:
    return f"spaces_sessions:{chat_id}:{field_name}"


SESSIONS = cast(Table, SpacesSession.__table__)
CHATS = cast(Table, Chat.__table__)


def storable_text(value: str, column: Column[Any]) -> str:
    """Text from outside (Spaces) made fit for `column`: valid UTF-8 without NUL (PostgreSQL
    refuses both) and no longer than the column, so one odd value never fails a write."""
    cleaned = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    length = getattr(column.type, "length", None)
    return cleaned[:length] if length else cleaned


def _nickname(value: str) -> str:
    return storable_text(value, SESSIONS.c.nickname)


def is_row_fault(exc: SQLAlchemyError) -> bool:
    """The write failed because of a value in it, not because the database is unwell."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return False
    if isinstance(exc, DataError | IntegrityError):
        return True
    if not isinstance(exc, DBAPIError):
        return isinstance(exc, StatementError)  # a value refused before it was sent
    # asyncpg's errors all arrive as a plain DBAPIError; the SQLSTATE class tells: 22 is
    # "data exception", 23 "integrity constraint violation".
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(state, str) and state[:2] in ("22", "23")


def _fault_name(exc: SQLAlchemyError) -> str:
    # Never the message: it quotes the statement's parameters (ciphertexts, nicknames).
    orig = getattr(exc, "orig", None)
    return type(orig if orig is not None else exc).__name__


@dataclass(frozen=True, slots=True)
class _Write:
    """One statement of a batch of check results and the rows it is run for."""

    statement: Update
    rows: list[dict[str, Any]]
    counts_ended: bool = False  # run row by row: its rowcount says how many ended now


class Store:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], cipher: Cipher) -> None:
        self._sessionmaker = sessionmaker
        self._cipher = cipher
        bind = sessionmaker.kw.get("bind")
        assert bind is not None, "the sessionmaker must be bound to an engine"
        self._dialect = bind.dialect
        database = bind.url.database if bind.dialect.name == "sqlite" else None
        self._sqlite_file = Path(database) if database and database != ":memory:" else None

    async def ping(self) -> bool:
        async with self._sessionmaker() as db:
            await db.execute(select(1))
        return True

    async def probe(self) -> bool:
        """Readiness: the database is still there and takes a write (not deleted, full or
        read-only). An open SQLite connection keeps working on a deleted file, so the file
        is looked for by name first."""
        if self._sqlite_file is not None and not self._sqlite_file.exists():
            raise FileNotFoundError(f"the database file {self._sqlite_file} is gone")
        insert = postgresql.insert if self._dialect.name == "postgresql" else sqlite.insert
        stamp = datetime.now(UTC).isoformat()
        stmt = insert(Meta).values(key=PROBE_KEY, value=stamp)
        async with self._sessionmaker.begin() as db:
            # A statement, not an ORM change: it writes even when the value looks the same.
            await db.execute(
                stmt.on_conflict_do_update(index_elements=[Meta.key], set_={"value": stamp})
            )
        return True

    # -- keys -------------------------------------------------------------------------------

    async def has_canary(self) -> bool:
        """Whether the database holds a canary, checked before any migration runs.

        False for a database with no tables yet; KeyMismatch when no key opens the canary,
        so a wrong key stops the bot before anything is changed."""
        async with self._sessionmaker() as db:
            connection = await db.connection()
            tables = await connection.run_sync(lambda c: inspect(c).has_table(Meta.__tablename__))
            row = await db.get(Meta, CANARY_KEY) if tables else None
        if row is None:
            return False
        try:
            self._cipher.decrypt(row.value, context=_CANARY_CONTEXT)
        except DecryptError:
            raise KeyMismatch from None
        return True

    async def verify_or_create_canary(self) -> bool:
        """True when the canary was created now; KeyMismatch when no key opens it."""
        async with self._sessionmaker.begin() as db:
            row = await db.get(Meta, CANARY_KEY)
            if row is None:
                db.add(Meta(key=CANARY_KEY, value=self._encrypt(_CANARY_TEXT, _CANARY_CONTEXT)))
                return True
            try:
                self._cipher.decrypt(row.value, context=_CANARY_CONTEXT)
            except DecryptError:
                raise KeyMismatch from None
            return False

    async def reencrypt_all(self, batch_size: int = 500) -> int:
        """Re-encrypt every token not made by the first key; returns how many rows changed."""
        changed = 0
        async with self._sessionmaker.begin() as db:
            canary = await db.get(Meta, CANARY_KEY)
            if canary is not None and not self._cipher.is_current(canary.value):
                plain = self._cipher.decrypt(canary.value, context=_CANARY_CONTEXT)
                canary.value = self._encrypt(plain, _CANARY_CONTEXT)
            last = None
            while True:
                query = select(SpacesSession).order_by(SpacesSession.chat_id).limit(batch_size)
                if last is not None:
                    query = query.where(SpacesSession.chat_id > last)
                rows = (await db.scalars(query)).all()
                if not rows:
                    break
                for row in rows:
                    changed += self._reencrypt_row(row)
                last = rows[-1].chat_id
                await db.flush()
        return changed

    def _reencrypt_row(self, row: SpacesSession) -> int:
        if self._cipher.is_current(row.sid_enc) and self._cipher.is_current(row.ck_enc):
            return 0
        try:
            sid, ck = self._secrets_of(row)
        except DecryptError:
            log.error("session of chat %s cannot be decrypted; left as it is", row.chat_id)
            return 0
        row.sid_enc = self._encrypt(sid, _context(row.chat_id, "sid"))
        row.ck_enc = self._encrypt(ck, _context(row.chat_id, "ck"))
        return 1

    # -- sessions ---------------------------------------------------------------------------

    async def get_session(self, chat_id: int) -> LinkedSession | None:
        async with self._sessionmaker() as db:
            row = await db.get(SpacesSession, chat_id)
            return None if row is None else self._to_domain(row)

    async def save_session(
        self,
        chat_id: int,
        telegram_user_id: int,
        account: Account,
        now: datetime,
        *,
        next_check_at: datetime | None = None,
    ) -> LinkedSession:
        """Link `account` to the chat, replacing whatever session the chat had."""
        async with self._sessionmaker.begin() as db:
            row = await db.get(SpacesSession, chat_id)
            if row is None:
                row = SpacesSession(chat_id=chat_id)
                db.add(row)
            row.telegram_user_id = telegram_user_id
            row.spaces_user_id = account.user_id
            row.nickname = _nickname(account.nickname)
            row.sid_enc = self._encrypt(account.sid, _context(chat_id, "sid"))
            row.ck_enc = self._encrypt(account.ck, _context(chat_id, "ck"))
            row.linked_at = now
            row.last_confirmed_at = now
            row.last_checked_at = now
            row.state = SessionState.ACTIVE
            row.failures = 0
            row.ended_at = None
            row.notice = NoticeState.NONE
            row.notice_due_at = None
            row.next_check_at = next_check_at or now
            await db.flush()
            return self._to_domain(row)

    async def confirm_session(
        self, chat_id: int, sid: str, account: Account, now: datetime
    ) -> None:
        """Record a successful check of the session that holds `sid` (if it is still linked)."""
        async with self._sessionmaker.begin() as db:
            row = await db.get(SpacesSession, chat_id)
            if row is None or self._sid_of(row) != sid:
                return
            row.last_confirmed_at = now
            row.last_checked_at = now
            row.nickname = _nickname(account.nickname)
            row.state = SessionState.ACTIVE
            row.failures = 0
            if account.ck and account.ck != self._ck_of(row):
                row.ck_enc = self._encrypt(account.ck, _context(chat_id, "ck"))

    async def delete_session(self, chat_id: int) -> bool:
        async with self._sessionmaker.begin() as db:
            result = await db.execute(delete(SpacesSession).where(SpacesSession.chat_id == chat_id))
            return bool(getattr(result, "rowcount", 0))

    async def count_sessions(self) -> int:
        async with self._sessionmaker() as db:
            return int(await db.scalar(select(func.count()).select_from(SpacesSession)) or 0)

    async def end_session(self, chat_id: int, sid: str, now: datetime, *, notify: bool) -> bool:
        """Mark the session holding `sid` ended; `notify` queues the expiry notice."""
        async with self._sessionmaker.begin() as db:
            row = await db.get(SpacesSession, chat_id)
            if row is None or row.state == SessionState.ENDED or self._sid_of(row) != sid:
                return False
            row.state = SessionState.ENDED
            row.ended_at = now
            row.next_check_at = None
            row.notice = NoticeState.PENDING if notify else NoticeState.SENT
            row.notice_due_at = None
            return True

    # -- the watcher ------------------------------------------------------------------------

    async def next_due_at(self) -> datetime | None:
        async with self._sessionmaker() as db:
            # min() keeps the column's type, so the value comes back as an aware datetime.
            return await db.scalar(select(func.min(SpacesSession.next_check_at)))

    async def due_sessions(self, now: datetime, limit: int) -> tuple[list[DueSession], list[int]]:
        """Sessions due for a check (oldest first) and the chat ids of rows that do not open."""
        t = SESSIONS.c
        query = (
            select(t.chat_id, t.nickname, t.state, t.failures, t.sid_enc)
            .where(t.next_check_at <= now)
            .order_by(t.next_check_at)
            .limit(limit)
        )
        async with self._sessionmaker() as db:
            rows = (await db.execute(query)).all()
        due: list[DueSession] = []
        unreadable: list[int] = []
        for chat_id, nickname, state, failures, token in rows:
            try:
                sid = self._cipher.decrypt(token, context=_context(chat_id, "sid"))
                due.append(DueSession(chat_id, nickname, SessionState(state), failures, sid, token))
            except (DecryptError, ValueError):
                unreadable.append(chat_id)
        return due, unreadable

    async def record_checks(
        self,
        now: datetime,
        *,
        confirmed: Sequence[tuple[DueSession, str, datetime]] = (),
        ended: Sequence[DueSession] = (),
        deferred: Sequence[tuple[DueSession, datetime]] = (),
        postponed: Sequence[tuple[DueSession, datetime]] = (),
    ) -> int:
        """Write one batch of check results; returns how many sessions ended now.

        `deferred` sessions failed for a transient reason (failures counted, state
        unconfirmed); `postponed` ones are only moved in time (Spaces looked down). Each write
        is conditional on the stored ciphertext being the one checked, so a re-login during
        the check is never overwritten.
        """
        writes = _check_writes(now, confirmed, ended, deferred, postponed)
        try:
            async with self._sessionmaker.begin() as db:
                return await _apply_writes(db, writes)
        except SQLAlchemyError as exc:
            if not is_row_fault(exc):
                raise
            log.warning(
                "a batch of check results could not be stored (%s); storing them one by one",
                _fault_name(exc),
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
                        "check result of chat %s cannot be stored (%s); skipped, checked again "
                        "when due",
                        row.get("b_chat"),
                        _fault_name(exc),
                    )
        return ended_count

    async def defer(self, chat_ids: list[int], until: datetime) -> None:
        """Push sessions that cannot be checked (e.g. unreadable rows) out of the way."""
        if not chat_ids:
            return
        t = SESSIONS.c
        async with self._sessionmaker.begin() as db:
            await db.execute(
                update(SpacesSession).where(t.chat_id.in_(chat_ids)).values(next_check_at=until)
            )

    # -- the notice outbox -------------------------------------------------------------------

    async def claim_notice(self, now: datetime) -> ExpiryNotice | None:
        """Take the oldest notice that can be sent now (chat not blocked, retry time reached).

        One at a time, so a stop leaves few claims, and those are given back
        (`release_notices`) or resent at the next start (`recover_notices`).
        """
        s = SESSIONS.c
        c = CHATS.c
        pick = (
            select(s.chat_id)
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
            s.chat_id, s.nickname, s.last_confirmed_at, s.ended_at, c.language_code, c.language
        ).select_from(SESSIONS.outerjoin(CHATS, c.chat_id == s.chat_id))
        async with self._sessionmaker.begin() as db:
            # One statement: on SQLite it takes the write lock before it picks, so two senders
            # (or two processes) never take the same notice.
            claimed = await db.scalar(
                update(SESSIONS)
                .where(s.chat_id == pick.scalar_subquery(), s.notice == NoticeState.PENDING.value)
                .values(notice=NoticeState.CLAIMED.value)
                .returning(s.chat_id)
            )
            if claimed is None:
                return None
            row = (await db.execute(details.where(s.chat_id == claimed))).one()
        return ExpiryNotice(*row)

    async def start_sending_notice(self, chat_id: int) -> bool:
        """Record that the claimed notice is being handed to Telegram now.

        False when the claim is no longer ours (another process's start gave it back): then
        it must not be sent here.
        """
        s = SESSIONS.c
        async with self._sessionmaker.begin() as db:
            result = await db.execute(
                update(SESSIONS)
                .where(s.chat_id == chat_id, s.notice == NoticeState.CLAIMED.value)
                .values(notice=NoticeState.SENDING.value)
            )
            return bool(getattr(result, "rowcount", 0))

    async def take_back_notice(self, chat_id: int) -> bool:
        """Telegram asked to wait: the notice did not go out, so it is only claimed again."""
        s = SESSIONS.c
        async with self._sessionmaker.begin() as db:
            result = await db.execute(
                update(SESSIONS)
                .where(s.chat_id == chat_id, s.notice == NoticeState.SENDING.value)
                .values(notice=NoticeState.CLAIMED.value)
            )
            return bool(getattr(result, "rowcount", 0))

    async def finish_notice(
        self, chat_id: int, *, delivered: bool, retry_at: datetime | None = None
    ) -> None:
        """After a send: sent, or back to pending (optionally not before `retry_at`)."""
        s = SESSIONS.c
        values = (
            {"notice": NoticeState.SENT.value}
            if delivered
            else {"notice": NoticeState.PENDING.value, "notice_due_at": retry_at}
        )
        taken = (NoticeState.CLAIMED.value, NoticeState.SENDING.value)
        async with self._sessionmaker.begin() as db:
            await db.execute(
                update(SpacesSession)
                .where(s.chat_id == chat_id, s.notice.in_(taken))
                .values(**values)
            )

    async def release_notices(self, chat_ids: Sequence[int]) -> int:
        """Give back claims that were never handed to Telegram (on shutdown)."""
        if not chat_ids:
            return 0
        s = SESSIONS.c
        async with self._sessionmaker.begin() as db:
            result = await db.execute(
                update(SESSIONS)
                .where(s.chat_id.in_(list(chat_ids)), s.notice == NoticeState.CLAIMED.value)
                .values(notice=NoticeState.PENDING.value)
            )
            return getattr(result, "rowcount", 0) or 0

    async def recover_notices(self) -> tuple[int, int]:
        """At startup, after a stop: (claims given back to be sent, sends settled as uncertain).

        A claim never handed to Telegram is sent again; a notice that was being handed over
        may have arrived, so it is never sent again (at most once for that one message).
        """
        s = SESSIONS.c
        async with self._sessionmaker.begin() as db:
            returned = await db.execute(
                update(SESSIONS)
                .where(s.notice == NoticeState.CLAIMED.value)
                .values(notice=NoticeState.PENDING.value)
            )
            settled = await db.execute(
                update(SESSIONS)
                .where(s.notice == NoticeState.SENDING.value)
                .values(notice=NoticeState.UNCERTAIN.value)
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

    # -- chats ------------------------------------------------------------------------------

    async def touch_chat(
        self, chat_id: int, user_id: int | None, language_code: str | None, now: datetime
    ) -> str | None:
        """The person wrote: remember when and in which language, and that they can be reached.

        Returns the language the chat chose with /language, if any.
        """
        values = {
            "chat_id": chat_id,
            "user_id": user_id,
            "language_code": language_code,
            "first_seen_at": now,
            "last_seen_at": now,
            "blocked_at": None,
        }
        changes = {k: values[k] for k in ("user_id", "language_code", "last_seen_at", "blocked_at")}
        async with self._sessionmaker.begin() as db:
            insert = postgresql.insert if self._dialect.name == "postgresql" else sqlite.insert
            stmt = insert(Chat).values(**values)
            upsert = stmt.on_conflict_do_update(index_elements=[Chat.chat_id], set_=changes)
            return await db.scalar(upsert.returning(Chat.language))

    async def mark_chat_blocked(self, chat_id: int, now: datetime) -> None:
        async with self._sessionmaker.begin() as db:
            chat = await db.get(Chat, chat_id)
            if chat is None:
                db.add(Chat(chat_id=chat_id, first_seen_at=now, last_seen_at=now, blocked_at=now))
            else:
                chat.blocked_at = now

    async def chat_languages(self, chat_id: int) -> tuple[str | None, str | None]:
        """(the language chosen with /language, the one Telegram reported), either may be None."""
        async with self._sessionmaker() as db:
            chat = await db.get(Chat, chat_id)
            return (None, None) if chat is None else (chat.language, chat.language_code)

    async def set_chat_language(self, chat_id: int, language: str, now: datetime) -> None:
        async with self._sessionmaker.begin() as db:
            chat = await db.get(Chat, chat_id)
            if chat is None:
                db.add(
                    Chat(chat_id=chat_id, first_seen_at=now, last_seen_at=now, language=language)
                )
            else:
                chat.language = language

    # -- installation facts ------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        async with self._sessionmaker() as db:
            row = await db.get(Meta, key)
            return None if row is None else row.value

    async def set_meta(self, key: str, value: str) -> None:
        async with self._sessionmaker.begin() as db:
            row = await db.get(Meta, key)
            if row is None:
                db.add(Meta(key=key, value=value))
            else:
                row.value = value

    # -- helpers ----------------------------------------------------------------------------

    def _encrypt(self, plaintext: str, context: str) -> str:
        return self._cipher.encrypt(plaintext, context=context)

    def _sid_of(self, row: SpacesSession) -> str | None:
        return self._open(row, row.sid_enc, "sid")

    def _ck_of(self, row: SpacesSession) -> str | None:
        return self._open(row, row.ck_enc, "ck")

    def _open(self, row: SpacesSession, token: str, field_name: str) -> str | None:
        try:
            return self._cipher.decrypt(token, context=_context(row.chat_id, field_name))
        except DecryptError:
            return None

    def _secrets_of(self, row: SpacesSession) -> tuple[str, str]:
        """The row's SID and CK in clear; DecryptError when either does not open."""
        return (
            self._cipher.decrypt(row.sid_enc, context=_context(row.chat_id, "sid")),
            self._cipher.decrypt(row.ck_enc, context=_context(row.chat_id, "ck")),
        )

    def _to_domain(self, row: SpacesSession) -> LinkedSession:
        try:
            sid, ck = self._secrets_of(row)
        except DecryptError:
            raise SessionUnreadable(row.chat_id) from None
        return LinkedSession(
            chat_id=row.chat_id,
            telegram_user_id=row.telegram_user_id,
            spaces_user_id=row.spaces_user_id,
            nickname=row.nickname,
            linked_at=row.linked_at,
            last_confirmed_at=row.last_confirmed_at,
            sid=sid,
            ck=ck,
            state=SessionState(row.state),
            next_check_at=row.next_check_at,
            ended_at=row.ended_at,
        )


def _check_writes(
    now: datetime,
    confirmed: Sequence[tuple[DueSession, str, datetime]],
    ended: Sequence[DueSession],
    deferred: Sequence[tuple[DueSession, datetime]],
    postponed: Sequence[tuple[DueSession, datetime]],
) -> list[_Write]:
    """The statements that store one batch of check results, with their rows."""
    t = SESSIONS
    # Each write is conditional on the stored ciphertext being the one checked.
    same = (t.c.chat_id == bindparam("b_chat")) & (t.c.sid_enc == bindparam("b_token"))
    confirm = (
        update(t)
        .where(same)
        .values(
            state=SessionState.ACTIVE.value,
            failures=0,
            nickname=bindparam("b_nick"),
            last_checked_at=now,
            last_confirmed_at=now,
            next_check_at=bindparam("b_next"),
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
        )
    )
    postpone = update(t).where(same).values(next_check_at=bindparam("b_next"))
    end = (
        update(t)
        .where(same, t.c.state != SessionState.ENDED.value)
        .values(
            state=SessionState.ENDED.value,
            ended_at=now,
            last_checked_at=now,
            next_check_at=None,
            notice=NoticeState.PENDING.value,
            notice_due_at=None,
        )
    )

    def key(d: DueSession) -> dict[str, Any]:
        return {"b_chat": d.chat_id, "b_token": d.token}

    writes = [
        _Write(
            confirm,
            [{**key(d), "b_nick": _nickname(nick), "b_next": nxt} for d, nick, nxt in confirmed],
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
