"""Keys: the canary that proves the configured key opens this database, how a session's
secrets are sealed (bound to chat, service, account and the secret's name), and re-sealing
after a key rotation or the move from spaces_sessions."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from sqlalchemy import inspect, select

from bot.domain import AccountKey
from bot.remote import Secrets
from bot.storage.base import StoreBase
from bot.storage.crypto import Cipher, DecryptError
from bot.storage.models import Meta, RemoteSessionRow

log = logging.getLogger(__name__)

CANARY_KEY = "key_canary"
_CANARY_TEXT = "spaces-bridge canary"
_CANARY_CONTEXT = "meta:key_canary"


class KeyMismatch(Exception):
    """None of the configured keys opens the canary written at first start."""


def secret_context(chat_id: int, key: AccountKey, name: str) -> str:
    # The name is last and plain ([a-z0-9_]), so the account id may hold any character.
    return f"remote_sessions:{chat_id}:{key.service}:{key.account_id}:{name}"


def legacy_context(chat_id: int, name: str) -> str:
    """How spaces_sessions (before revision 0006) bound a Spaces row's sid and ck."""
    return f"spaces_sessions:{chat_id}:{name}"


def seal_secrets(cipher: Cipher, chat_id: int, key: AccountKey, secrets: Secrets) -> str:
    return json.dumps(
        {
            name: cipher.encrypt(value, context=secret_context(chat_id, key, name))
            for name, value in sorted(secrets.items())
        }
    )


def _tokens(sealed: str) -> dict[str, str]:
    try:
        tokens = json.loads(sealed)
    except ValueError:
        raise DecryptError("not a sealed secrets object") from None
    if not isinstance(tokens, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tokens.items()
    ):
        raise DecryptError("not a sealed secrets object")
    return tokens


def open_secrets(
    cipher: Cipher, chat_id: int, key: AccountKey, sealed: str, *, legacy: bool = False
) -> dict[str, str]:
    """The secrets in clear; DecryptError when any does not open (wrong key, moved row)."""
    tokens = _tokens(sealed)
    if not tokens:
        raise DecryptError("no secrets")
    return {
        name: cipher.decrypt(
            token,
            context=legacy_context(chat_id, name) if legacy else secret_context(chat_id, key, name),
        )
        for name, token in tokens.items()
    }


def all_current(cipher: Cipher, sealed: str) -> bool:
    try:
        return all(cipher.is_current(token) for token in _tokens(sealed).values())
    except DecryptError:
        return True  # damaged: nothing a re-seal can do


class KeyStore(StoreBase):
    async def has_canary(self) -> bool:
        """Whether the database holds a canary, checked before any migration runs.

        False for a database with no tables yet; KeyMismatch when no key opens the canary,
        so a wrong key stops the bot before anything is changed."""
        async with self._sessionmaker() as db:
            connection = await db.connection()
            tables = await connection.run_sync(lambda c: inspect(c).has_table(Meta.__tablename__))
            row = await db.get(Meta, CANARY_KEY) if tables else None
        if row is None:
            return False
        self._open_canary(row.value)
        return True

    async def verify_or_create_canary(self) -> bool:
        """True when the canary was created now; KeyMismatch when no key opens it."""
        async with self._sessionmaker.begin() as db:
            row = await db.get(Meta, CANARY_KEY)
            if row is None:
                value = self._cipher.encrypt(_CANARY_TEXT, context=_CANARY_CONTEXT)
                db.add(Meta(key=CANARY_KEY, value=value))
                return True
            self._open_canary(row.value)
            return False

    def _open_canary(self, value: str) -> None:
        """KeyMismatch when no configured key opens the stored canary."""
        try:
            self._cipher.decrypt(value, context=_CANARY_CONTEXT)
        except DecryptError:
            raise KeyMismatch from None

    async def reencrypt_all(self, batch_size: int = 500) -> int:
        """Re-seal every secret not made by the first key, and every row still sealed the
        way spaces_sessions sealed it; returns how many rows changed."""
        async with self._sessionmaker.begin() as db:
            canary = await db.get(Meta, CANARY_KEY)
            if canary is not None and not self._cipher.is_current(canary.value):
                plain = self._cipher.decrypt(canary.value, context=_CANARY_CONTEXT)
                canary.value = self._cipher.encrypt(plain, context=_CANARY_CONTEXT)
        return await self._reseal(batch_size, legacy_only=False)

    async def reseal_legacy(self, batch_size: int = 500) -> int:
        """Rows carried over from spaces_sessions, re-sealed under the new context.

        Run by the app right after migrating, before the watch or a handler reads a row:
        the migration cannot do it (it has no key when run by hand), and a fallback on every
        read would keep the weaker binding alive for rows nobody reads."""
        return await self._reseal(batch_size, legacy_only=True)

    async def _reseal(self, batch_size: int, *, legacy_only: bool) -> int:
        t = RemoteSessionRow
        keys_query = select(t.chat_id, t.service, t.account_id)
        if legacy_only:
            keys_query = keys_query.where(t.legacy_seal.is_(True))
        async with self._sessionmaker() as db:
            keys = (await db.execute(keys_query.order_by(t.chat_id))).all()
        changed = 0
        for start in range(0, len(keys), batch_size):
            async with self._sessionmaker.begin() as db:
                for chat_id, service, account_id in keys[start : start + batch_size]:
                    row = await db.get(RemoteSessionRow, (chat_id, service, account_id))
                    if row is not None:
                        changed += self._reseal_row(row)
        return changed

    def _reseal_row(self, row: RemoteSessionRow) -> int:
        if not row.legacy_seal and all_current(self._cipher, row.secrets_enc):
            return 0
        key = AccountKey(row.service, row.account_id)
        try:
            secrets = open_secrets(
                self._cipher, row.chat_id, key, row.secrets_enc, legacy=row.legacy_seal
            )
        except DecryptError:
            log.error(
                "a %s session of chat %s cannot be decrypted; left as it is",
                row.service,
                row.chat_id,
            )
            return 0
        row.secrets_enc = seal_secrets(self._cipher, row.chat_id, key, secrets)
        row.legacy_seal = False
        return 1


def same_secrets(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    return dict(a) == dict(b)
