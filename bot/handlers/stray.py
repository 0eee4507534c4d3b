"""Text nobody asked for, soon after a login step or a restart, may be a password: delete it.

After a refusal (a lockout, the allowlist, Spaces down) or a restart, people often type
the password anyway. Within `STRAY_WINDOW_SECONDS` of the last login step in a chat, or of
the bot's start, free text that no step asked for is deleted with one line saying why.

The "last login step" marker lives in the conversation storage under its own destiny, so it
is as durable as the conversation (database or Redis) and `state.clear()` leaves it alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.types import Chat, Message, TelegramObject

from bot.locales import PoI18n

log = logging.getLogger(__name__)

# "A few minutes": long enough for someone to retype a password after a refusal.
STRAY_WINDOW_SECONDS = 300.0
_MARKER_DESTINY = "login-step"
_MARKER_FIELD = "at"


def free_text(message: Message) -> str | None:
    """What a person typed that is not a command, or None."""
    text = message.text
    if not text or text.startswith("/"):
        return None
    return text


class StrayText:
    """Remembers login steps and the bot's start; says whether free text may be a secret."""

    def __init__(
        self,
        window_seconds: float = STRAY_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._window = window_seconds
        self._clock = clock
        self._started_at: float | None = None

    def mark_started(self) -> None:
        """Called when polling starts: what was typed to the stopped bot may arrive now."""
        self._started_at = self._clock()

    async def note_login_step(self, state: FSMContext) -> None:
        await self._marker(state).set_data({_MARKER_FIELD: self._clock()})

    async def is_suspect(self, state: FSMContext) -> bool:
        """True within the window after this chat's last login step or the bot's start."""
        now = self._clock()
        if self._started_at is not None and now - self._started_at < self._window:
            return True
        at = await self._marker(state).get_value(_MARKER_FIELD)
        return isinstance(at, int | float) and 0 <= now - at < self._window

    @staticmethod
    def _marker(state: FSMContext) -> FSMContext:
        return FSMContext(storage=state.storage, key=replace(state.key, destiny=_MARKER_DESTINY))


async def delete_stray(message: Message, bot: Bot, i18n: PoI18n, locale: str | None = None) -> None:
    """Deletes the message and says so in one line (or asks the person to, if it cannot)."""
    try:
        await bot.delete_message(message.chat.id, message.message_id)
        key = "stray-text-deleted"
    except TelegramAPIError as exc:
        log.warning("could not delete unasked-for text in chat %s: %s", message.chat.id, exc)
        key = "stray-text-delete-yourself"
    await message.answer(i18n.text(key, locale))


Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class LoginStepMarker(BaseMiddleware):
    """On the login router: every login step in a private chat renews the chat's marker,
    after the step's handler (a refusal is a step too)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        try:
            return await handler(event, data)
        finally:
            chat, state, stray = data.get("event_chat"), data.get("state"), data.get("stray_text")
            if (
                isinstance(chat, Chat)
                and chat.type == "private"
                and isinstance(state, FSMContext)
                and isinstance(stray, StrayText)
            ):
                await stray.note_login_step(state)
