"""The bot's persistent state, one concern per module; each public call is one transaction
and every secret is sealed.

- ``keys``: the key canary, how secrets are sealed, re-sealing
- ``sessions``: one row per (chat, service, account) and the watch queue
- ``notices``: the expiry-notice outbox
- ``chats``: chats and installation facts
"""

from __future__ import annotations

from sqlalchemy import select

from bot.storage.base import StoreBase, is_row_fault, storable_text
from bot.storage.chats import ChatStore
from bot.storage.keys import CANARY_KEY, KeyMismatch, KeyStore
from bot.storage.notices import NoticeStore
from bot.storage.sessions import CheckConfirmed, SessionStore, SessionUnreadable

__all__ = [
    "CANARY_KEY",
    "CheckConfirmed",
    "KeyMismatch",
    "SessionUnreadable",
    "Store",
    "is_row_fault",
    "storable_text",
]


class Store(KeyStore, SessionStore, NoticeStore, ChatStore, StoreBase):
    async def ping(self) -> bool:
        async with self._sessionmaker() as db:
            await db.execute(select(1))
        return True
