"""Chats the bot has heard from (language, reachability) and small installation facts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite

from bot.storage.base import StoreBase
from bot.storage.models import Chat, Meta


class ChatStore(StoreBase):
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

    async def swap_meta(self, key: str, expected: str, value: str) -> bool:
        """Set `key` to `value` only if it holds `expected` (a missing row holds `expected`):
        of several processes making the same change, exactly one gets True."""
        insert = postgresql.insert if self._dialect.name == "postgresql" else sqlite.insert
        async with self._sessionmaker.begin() as db:
            await db.execute(insert(Meta).values(key=key, value=expected).on_conflict_do_nothing())
            result = await db.execute(
                update(Meta).where(Meta.key == key, Meta.value == expected).values(value=value)
            )
            return bool(getattr(result, "rowcount", 0))
