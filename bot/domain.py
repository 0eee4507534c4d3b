"""Plain domain types shared by services and handlers (no I/O, no frameworks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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
