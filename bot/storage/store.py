"""The bot's persistent state. Each public call is one transaction; secrets are encrypted."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import LinkedSession
from bot.spaces.types import Account
from bot.storage.crypto import Cipher, DecryptError
from bot.storage.models import Meta, SpacesSession

log = logging.getLogger(__name__)

CANARY_KEY = "key_canary"
_CANARY_TEXT = "spaces-bridge canary"
_CANARY_CONTEXT = "meta:key_canary"


class SessionUnreadable(Exception):
    """A stored session exists but no configured key opens it for this chat."""

    def __init__(self, chat_id: int) -> None:
        super().__init__(f"stored session of chat {chat_id} cannot be decrypted")
        self.chat_id = chat_id


class KeyMismatch(Exception):
    """None of the configured keys opens the canary written at first start."""


def _context(chat_id: int, field_name: str) -> str:
    return f"spaces_sessions:{chat_id}:{field_name}"


class Store:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], cipher: Cipher) -> None:
        self._sessionmaker = sessionmaker
        self._cipher = cipher

    # -- keys -------------------------------------------------------------------------------

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
            sid = self._cipher.decrypt(row.sid_enc, context=_context(row.chat_id, "sid"))
            ck = self._cipher.decrypt(row.ck_enc, context=_context(row.chat_id, "ck"))
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
        self, chat_id: int, telegram_user_id: int, account: Account, now: datetime
    ) -> LinkedSession:
        """Link `account` to the chat, replacing whatever session the chat had."""
        async with self._sessionmaker.begin() as db:
            row = await db.get(SpacesSession, chat_id)
            if row is None:
                row = SpacesSession(chat_id=chat_id)
                db.add(row)
            row.telegram_user_id = telegram_user_id
            row.spaces_user_id = account.user_id
            row.nickname = account.nickname
            row.sid_enc = self._encrypt(account.sid, _context(chat_id, "sid"))
            row.ck_enc = self._encrypt(account.ck, _context(chat_id, "ck"))
            row.linked_at = now
            row.last_confirmed_at = now
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
            row.nickname = account.nickname
            if account.ck and account.ck != self._ck_of(row):
                row.ck_enc = self._encrypt(account.ck, _context(chat_id, "ck"))

    async def delete_session(self, chat_id: int) -> bool:
        async with self._sessionmaker.begin() as db:
            result = await db.execute(delete(SpacesSession).where(SpacesSession.chat_id == chat_id))
            return bool(getattr(result, "rowcount", 0))

    async def count_sessions(self) -> int:
        async with self._sessionmaker() as db:
            return int(await db.scalar(select(func.count()).select_from(SpacesSession)) or 0)

    # -- helpers ----------------------------------------------------------------------------

    def _encrypt(self, plaintext: str, context: str) -> str:
        return self._cipher.encrypt(plaintext, context=context)

    def _sid_of(self, row: SpacesSession) -> str | None:
        try:
            return self._cipher.decrypt(row.sid_enc, context=_context(row.chat_id, "sid"))
        except DecryptError:
            return None

    def _ck_of(self, row: SpacesSession) -> str | None:
        try:
            return self._cipher.decrypt(row.ck_enc, context=_context(row.chat_id, "ck"))
        except DecryptError:
            return None

    def _to_domain(self, row: SpacesSession) -> LinkedSession:
        try:
            sid = self._cipher.decrypt(row.sid_enc, context=_context(row.chat_id, "sid"))
            ck = self._cipher.decrypt(row.ck_enc, context=_context(row.chat_id, "ck"))
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
        )
