"""Plain domain types shared by services and handlers (no I/O, no frameworks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class SessionState(StrEnum):
    ACTIVE = "active"  # the last definitive check confirmed it
    UNCONFIRMED = "unconfirmed"  # checks fail for reasons that say nothing about the session
    ENDED = "ended"  # Spaces said it no longer exists (expired, logged out elsewhere)


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
