"""Chats the bot has heard from (language, reachability) and small installation facts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Update, bindparam, case, null, update

from bot.storage.base import CHATS, StoreBase, upsert_into
from bot.storage.models import Chat, Meta, UTCDateTime


@dataclass(frozen=True, slots=True)
class SeenChat:
    """A private chat wrote at `at`: what `touch_chat` keeps, held to be written later."""

    chat_id: int
    user_id: int | None
    language_code: str | None
    at: datetime


def _seen_update() -> Update:
    """One UPDATE for many chats (executemany): the facts of `touch_chat` for rows that exist.
    A later block or a later write already stored wins over this older news."""
    c = CHATS.c
    at = bindparam("seen_at", type_=UTCDateTime())
    return (
        update(CHATS)
        .where(c.chat_id == bindparam("seen_chat_id"))
        .values(
            user_id=bindparam("seen_user_id"),
            language_code=bindparam("seen_language_code"),
            last_seen_at=case((c.last_seen_at > at, c.last_seen_at), else_=at),
            blocked_at=case((c.blocked_at > at, c.blocked_at), else_=null()),
        )
    )


_SEEN_UPDATE = _seen_update()


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
            stmt = upsert_into(self._dialect.name, Chat).values(**values)
            upsert = stmt.on_conflict_do_update(index_elements=[Chat.chat_id], set_=changes)
            return await db.scalar(upsert.returning(Chat.language))

    async def record_seen(self, seen: Sequence[SeenChat]) -> None:
        """Chats already known wrote: one statement for all of them, in one transaction.

        Only rows that exist are updated: a chat forgotten meanwhile (/forget, here or on
        another instance) is not brought back by news that was waiting to be written.
        """
        if not seen:
            return
        rows = [
            {
                "seen_chat_id": s.chat_id,
                "seen_user_id": s.user_id,
                "seen_language_code": s.language_code,
                "seen_at": s.at,
            }
            for s in seen
        ]
        async with self._sessionmaker.begin() as db:
            await db.execute(_SEEN_UPDATE, rows)

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
        seed = upsert_into(self._dialect.name, Meta).values(key=key, value=expected)
        async with self._sessionmaker.begin() as db:
            await db.execute(seed.on_conflict_do_nothing())
            result = await db.execute(
                update(Meta).where(Meta.key == key, Meta.value == expected).values(value=value)
            )
            return bool(getattr(result, "rowcount", 0))
