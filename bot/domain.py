"""Plain domain types shared by services and handlers (no I/O, no frameworks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class SessionState(StrEnum):
    ACTIVE = "active"  # the last definitive check confirmed it
    UNCONFIRMED = "unconfirmed"  # checks fail for reasons that say nothing about the session
    ENDED = "ended"  # Spaces said it no longer exists (expired, logged out elsewhere)


class NoticeState(StrEnum):
    """Where a session's expiry notice stands in the outbox.

    Only SENDING can be uncertain: the row is switched to it right before the one call that
    sends, so a stop can leave at most the messages in flight in doubt.
    """

    NONE = "none"  # nothing to tell (the session has not ended)
    PENDING = "pending"  # to be sent (again, after `notice_due_at` when that is set)
    CLAIMED = "claimed"  # taken by a sender, not yet handed to Telegram: safe to give back
    SENDING = "sending"  # handed to Telegram; its answer is not recorded yet
    SENT = "sent"  # told, or another try would be refused too
    UNCERTAIN = "uncertain"  # was SENDING when a process stopped: perhaps told, never resent


@dataclass(frozen=True, slots=True)
class LinkedSession:
    """A chat's Spaces session as the bot holds it, secrets decrypted."""

    chat_id: int
    telegram_user_id: int
    spaces_user_id: int
    nickname: str
    linked_at: datetime
    last_confirmed_at: datetime
    sid: str = field(repr=False)
    ck: str = field(repr=False)
    state: SessionState = SessionState.ACTIVE
    next_check_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DueSession:
    """A session the watcher is to check now."""

    chat_id: int
    nickname: str
    state: SessionState
    failures: int
    sid: str = field(repr=False)
    # The stored ciphertext: results are written only if it is unchanged (no re-login since).
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ExpiryNotice:
    chat_id: int
    nickname: str
    last_confirmed_at: datetime
    ended_at: datetime | None
    language_code: str | None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Backlog:
    """How far behind the watch is: checks past due and notices not yet told."""

    overdue_sessions: int
    oldest_overdue_since: datetime | None
    pending_notices: int
    oldest_pending_since: datetime | None
