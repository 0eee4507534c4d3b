"""The bot's persistent state, one concern per module; each public call is one transaction
and every secret is sealed.

- ``keys``: the key canary, how secrets are sealed, re-sealing
- ``sessions``: one row per (chat, service, account) and the watch queue
- ``notices``: the expiry-notice outbox
- ``chats``: chats and installation facts
- ``instances``: the bot processes sharing the database, and their leases
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.storage.base import StoreBase, is_row_fault, storable_text, upsert_into
from bot.storage.chats import ChatStore
from bot.storage.crypto import Cipher
from bot.storage.instances import InstanceStore
from bot.storage.keys import CANARY_KEY, KeyMismatch, KeyStore
from bot.storage.models import Meta
from bot.storage.notices import OVERDUE_AFTER, NoticeStore
from bot.storage.sessions import CheckConfirmed, SessionStore, SessionUnreadable

__all__ = [
    "CANARY_KEY",
    "OVERDUE_AFTER",
    "PROBE_KEY",
    "CheckConfirmed",
    "KeyMismatch",
    "SessionUnreadable",
    "Store",
    "is_row_fault",
    "storable_text",
]


# Written by the readiness probe: proof that the database takes writes.
PROBE_KEY = "health_probe"


class Store(KeyStore, SessionStore, NoticeStore, ChatStore, InstanceStore, StoreBase):
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], cipher: Cipher) -> None:
        super().__init__(sessionmaker, cipher)
        bind = sessionmaker.kw["bind"]
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
        stamp = datetime.now(UTC).isoformat()
        stmt = upsert_into(self._dialect.name, Meta).values(key=PROBE_KEY, value=stamp)
        async with self._sessionmaker.begin() as db:
            # A statement, not an ORM change: it writes even when the value looks the same.
            await db.execute(
                stmt.on_conflict_do_update(index_elements=[Meta.key], set_={"value": stamp})
            )
        return True
