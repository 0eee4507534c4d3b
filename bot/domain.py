"""Plain domain types shared by services and handlers (no I/O, no frameworks).

What a service is and what its sessions hold is in ``bot.remote``; these types add what the
bot keeps around a session: which chat holds it, since when, what the watch last found.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from bot.remote import RemoteSession, Secrets


class SessionState(StrEnum):
    ACTIVE = "active"  # the last definitive check confirmed it
    UNCONFIRMED = "unconfirmed"  # checks fail for reasons that say nothing about the session
    ENDED = "ended"  # the service said it no longer exists (expired, logged out elsewhere)


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


class BroadcastStatus(StrEnum):
    RUNNING = "running"  # being sent by its owner instance
    STOPPING = "stopping"  # an owner pressed stop; its instance ends it at the next recipient
    CANCELLED = "cancelled"
    DONE = "done"
    INTERRUPTED = "interrupted"  # its instance stopped; the owners may resume it


@dataclass(frozen=True, slots=True)
class AccountKey:
    """Which of a chat's sessions: one row per (chat, service, account)."""

    service: str
    account_id: str

    @property
    def tag(self) -> str:
        """A short stable stand-in for the account in callback data (64 bytes at most)."""
        return account_tag(self.service, self.account_id)


def account_tag(service: str, account_id: str) -> str:
    digest = hashlib.blake2s(f"{service}\x00{account_id}".encode(), digest_size=6).hexdigest()
    return digest


@dataclass(frozen=True, slots=True)
class LinkedSession:
    """A chat's session at a service as the bot holds it, secrets decrypted."""

    chat_id: int
    telegram_user_id: int
    remote: RemoteSession
    linked_at: datetime
    last_confirmed_at: datetime
    state: SessionState = SessionState.ACTIVE
    next_check_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def key(self) -> AccountKey:
        return AccountKey(self.remote.service, self.remote.account_id)

    @property
    def service(self) -> str:
        return self.remote.service

    @property
    def account_id(self) -> str:
        return self.remote.account_id

    @property
    def display_name(self) -> str:
        return self.remote.display_name

    @property
    def secrets(self) -> Secrets:
        return self.remote.secrets


@dataclass(frozen=True, slots=True)
class StoredAccount:
    """A chat's session without its secrets: what /status, /logout and the relogin button
    list, readable even when the secrets no longer open."""

    chat_id: int
    key: AccountKey
    display_name: str
    state: SessionState
    linked_at: datetime
    last_confirmed_at: datetime
    next_check_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """Work taken by one bot process (`owner`, an instance id) until `until`: no other process
    takes it meanwhile, and any may take it over once `until` has passed."""

    owner: str
    until: datetime


@dataclass(frozen=True, slots=True)
class DueSession:
    """A session the watcher is to check now."""

    chat_id: int
    key: AccountKey
    display_name: str
    state: SessionState
    failures: int
    secrets: Secrets = field(repr=False)
    # The stored ciphertext: results are written only if it is unchanged (no re-login since).
    token: str = field(repr=False)

    @property
    def service(self) -> str:
        return self.key.service


@dataclass(frozen=True, slots=True)
class ExpiryNotice:
    chat_id: int
    key: AccountKey
    display_name: str
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
