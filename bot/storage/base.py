"""What every part of the store shares: the sessionmaker, the cipher, fitting values to
columns and telling a bad row from a sick database."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Column, Select, Table, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.storage.crypto import Cipher
from bot.storage.models import Chat, Instance, RemoteSessionRow

SESSIONS = cast(Table, RemoteSessionRow.__table__)
CHATS = cast(Table, Chat.__table__)
INSTANCES = cast(Table, Instance.__table__)


def live_instances(now: datetime) -> Select[tuple[str]]:
    """The ids of the bot processes whose lease still holds at `now`."""
    return select(INSTANCES.c.id).where(INSTANCES.c.lease_until >= now)


def orphaned(owner: Column[Any], now: datetime) -> Any:
    """Claimed by nobody that is alive: no owner recorded, or one whose lease ran out."""
    return or_(owner.is_(None), owner.not_in(live_instances(now)))


class StoreBase:
    """One transaction per public call; each concern is a mixin on top of this."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], cipher: Cipher) -> None:
        self._sessionmaker = sessionmaker
        self._cipher = cipher
        bind = sessionmaker.kw.get("bind")
        assert bind is not None, "the sessionmaker must be bound to an engine"
        self._dialect = bind.dialect


def upsert_into(dialect: str, model: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `model` that can say ON CONFLICT, in the database's own dialect."""
    return postgresql.insert(model) if dialect == "postgresql" else sqlite.insert(model)


def storable_text(value: str, column: Column[Any]) -> str:
    """Text from outside (a service) made fit for `column`: valid UTF-8 without NUL
    (PostgreSQL refuses both) and no longer than the column, so one odd value never fails a
    write."""
    cleaned = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    length = getattr(column.type, "length", None)
    return cleaned[:length] if length else cleaned


def display_name_text(value: str) -> str:
    return storable_text(value, SESSIONS.c.display_name)


def is_row_fault(exc: SQLAlchemyError) -> bool:
    """The write failed because of a value in it, not because the database is unwell."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return False
    if isinstance(exc, DataError | IntegrityError):
        return True
    if not isinstance(exc, DBAPIError):
        return isinstance(exc, StatementError)  # a value refused before it was sent
    # asyncpg's errors all arrive as a plain DBAPIError; the SQLSTATE class tells: 22 is
    # "data exception", 23 "integrity constraint violation".
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(state, str) and state[:2] in ("22", "23")


def fault_name(exc: SQLAlchemyError) -> str:
    # Never the message: it quotes the statement's parameters (ciphertexts, nicknames).
    orig = getattr(exc, "orig", None)
    return type(orig if orig is not None else exc).__name__
