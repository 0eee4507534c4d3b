"""Database tables. Secrets are stored only as cipher tokens (see crypto.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    false,
    func,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Small key/value facts about this installation (the key canary, …)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RemoteSessionRow(Base):
    """A session at a remote service linked to a Telegram chat: one per (chat, service,
    account). Secrets are sealed one by one, bound to all three and to the secret's name."""

    __tablename__ = "remote_sessions"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    service: Mapped[str] = mapped_column(String(32), primary_key=True)  # ServiceInfo.id
    account_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    display_name: Mapped[str] = mapped_column(String(64))
    # JSON object: secret name -> cipher token (see storage/sessions.py for the context).
    secrets_enc: Mapped[str] = mapped_column(Text)
    # Carried over from spaces_sessions and still sealed under that table's context until
    # the app re-seals it right after migrating (storage/keys.py, `reseal_legacy`).
    legacy_seal: Mapped[bool] = mapped_column(Boolean, server_default=false())
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # What the last definitive check said: see domain.SessionState.
    state: Mapped[str] = mapped_column(String(16), server_default="active")
    # When the watcher checks next; NULL once the session has ended.
    next_check_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), server_default=func.current_timestamp()
    )
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The expiry notice's place in the outbox: see domain.NoticeState.
    notice: Mapped[str] = mapped_column(String(16), server_default="none")
    notice_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The instance checking it now (its lease ends at next_check_at); NULL between checks.
    checked_by: Mapped[str | None] = mapped_column(String(64))
    # The instance that claimed the expiry notice (CLAIMED/SENDING); see bot_instances.
    notice_owner: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_remote_sessions_next_check_at", "next_check_at"),
        Index("ix_remote_sessions_notice", "notice"),
        # Only the few rows being checked: finding a stopped process's claims reads these.
        # The key follows, so a result's write (by key and claimant) is still one lookup.
        Index(
            "ix_remote_sessions_checked_by",
            "checked_by",
            "chat_id",
            "service",
            "account_id",
            postgresql_where=text("checked_by IS NOT NULL"),
            sqlite_where=text("checked_by IS NOT NULL"),
        ),
    )


class Instance(Base):
    """A running bot process and how long its lease holds: work it claimed (checks, notices,
    broadcasts) is taken over by the others only once `lease_until` has passed."""

    __tablename__ = "bot_instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # host:pid:random
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime())


class Chat(Base):
    """A Telegram chat the bot has heard from."""

    __tablename__ = "chats"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    language_code: Mapped[str | None] = mapped_column(String(16))  # as Telegram reports it
    language: Mapped[str | None] = mapped_column(String(8))  # chosen with /language
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set when Telegram says the person blocked the bot; cleared when they write again.
    blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Person(Base):
    """Owners' decisions about one Telegram user: allowed (allowlist mode), banned."""

    __tablename__ = "people"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    allowed: Mapped[bool] = mapped_column(Boolean, server_default=false())
    banned: Mapped[bool] = mapped_column(Boolean, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[int | None] = mapped_column(BigInteger)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    admin_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)


class Broadcast(Base):
    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    admin_id: Mapped[int] = mapped_column(BigInteger)
    admin_chat_id: Mapped[int] = mapped_column(BigInteger)
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    # running, stopping (asked to stop), cancelled, done, interrupted (its instance stopped)
    status: Mapped[str] = mapped_column(String(16))
    # The instance sending it while running; see bot_instances.
    owner: Mapped[str | None] = mapped_column(String(64))
    total: Mapped[int] = mapped_column(Integer, server_default="0")
    sent: Mapped[int] = mapped_column(Integer, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, server_default="0")
    blocked: Mapped[int] = mapped_column(Integer, server_default="0")
    # The last chat id taken; a resumed broadcast starts after it, so nobody gets it twice.
    cursor: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StatBucket(Base):
    """Event counts per hour (checks by outcome, notices) for the owners' statistics."""

    __tablename__ = "stat_buckets"

    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, server_default="0")


class LoginFailure(Base):
    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)


class ConversationRecord(Base):
    """One conversation's state and data (aiogram FSM), keyed like aiogram's StorageKey.

    `thread_id` 0 and `business_connection_id` '' stand for "none": primary-key columns
    cannot be NULL. `data` is JSON; secrets in it are sealed (services/login.py).
    """

    __tablename__ = "conversation_states"

    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    thread_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    business_connection_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    destiny: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
