"""Per-update middlewares, in the order they run: flood → access → chat seen → language."""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Chat, TelegramObject, Update, User
from aiogram.utils.i18n import I18nMiddleware

from bot.handlers.stray import StrayText, delete_stray, free_text
from bot.locales import PoI18n, chat_locale
from bot.services.clock import utcnow
from bot.services.hotcache import HotCache

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def _user(data: dict[str, Any]) -> User | None:
    user = data.get("event_from_user")
    return user if isinstance(user, User) else None


def _private_chat(data: dict[str, Any]) -> Chat | None:
    chat = data.get("event_chat")
    return chat if isinstance(chat, Chat) and chat.type == "private" else None


async def _tell(bot: Bot, event: TelegramObject, data: dict[str, Any], text: str) -> None:
    """Answer whoever sent `event`, in their private chat or on their button."""
    update = event if isinstance(event, Update) else None
    query = update.callback_query if update else None
    if isinstance(query, CallbackQuery):
        await query.answer(text, show_alert=True)
        return
    chat = _private_chat(data)
    if chat is not None:
        await bot.send_message(chat.id, text)


class CountUpdates(BaseMiddleware):
    """Counts every update by type, for /metrics."""

    def __init__(self, counter: Counter[str]) -> None:
        self._counter = counter

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, Update):
            self._counter[event.event_type] += 1
        return await handler(event, data)


class FloodMiddleware(BaseMiddleware):
    """More than `limit` updates from one person in `window` seconds: the rest are dropped,
    and the person hears about it once per window."""

    def __init__(self, i18n: PoI18n, limit: int, window: float, exempt: Collection[int] = ()):
        self._i18n = i18n
        self._limit = limit
        self._window = window
        self._exempt = frozenset(exempt)
        self._seen: dict[int, deque[float]] = {}
        self._warned: dict[int, float] = {}

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user = _user(data)
        if user is None or user.id in self._exempt:
            return await handler(event, data)
        now = time.monotonic()
        recent = self._seen.setdefault(user.id, deque())
        while recent and recent[0] <= now - self._window:
            recent.popleft()
        recent.append(now)
        if len(self._seen) > 50_000:
            self._forget_idle(now)
        if len(recent) <= self._limit:
            return await handler(event, data)
        if self._warned.get(user.id, 0.0) <= now - self._window:
            self._warned[user.id] = now
            log.info("throttling user %s: %d updates in %.0f s", user.id, len(recent), self._window)
            locale = update_locale(data)
            bot = data["bot"]
            await _tell(bot, event, data, self._i18n.text("flood-slow-down", locale))
        return None

    def _forget_idle(self, now: float) -> None:
        self._seen = {u: d for u, d in self._seen.items() if d and d[-1] > now - self._window}
        self._warned = {u: t for u, t in self._warned.items() if t > now - self._window}


class AccessMiddleware(BaseMiddleware):
    """Banned people, and people outside the allowlist in allowlist mode, get one polite
    answer (at most once an hour) and nothing else. Owners always pass."""

    REMIND_AFTER = 3600.0

    def __init__(
        self,
        hot_cache: HotCache,
        i18n: PoI18n,
        *,
        mode: str,
        admin_ids: Collection[int],
        stray_text: StrayText | None = None,
    ) -> None:
        self._hot_cache = hot_cache
        self._i18n = i18n
        self._mode = mode
        self._admins = frozenset(admin_ids)
        self._stray = stray_text
        self._told: dict[int, float] = {}

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user = _user(data)
        if user is None or user.id in self._admins:
            return await handler(event, data)
        access = await self._hot_cache.access(user.id)
        if access.banned:
            key = "access-banned"
        elif self._mode == "allowlist" and not access.allowed:
            key = "access-not-allowed"
        else:
            return await handler(event, data)
        locale = update_locale(data)
        if await self._stray_handled(event, data, locale):
            return None
        now = time.monotonic()
        if self._told.get(user.id, -self.REMIND_AFTER) <= now - self.REMIND_AFTER:
            self._told[user.id] = now
            await _tell(data["bot"], event, data, self._i18n.text(key, locale, user_id=user.id))
        return None

    async def _stray_handled(
        self, event: TelegramObject, data: dict[str, Any], locale: str
    ) -> bool:
        """A refused command or button counts as a login step; free text soon after it (a
        password typed anyway) is deleted. True when the text was dealt with here."""
        state = data.get("state")
        if self._stray is None or not isinstance(state, FSMContext) or _private_chat(data) is None:
            return False
        message = event.message if isinstance(event, Update) else None
        if message is not None and free_text(message) is not None:
            if await self._stray.is_suspect(state):
                await delete_stray(message, data["bot"], self._i18n, locale)
                return True
            return False
        await self._stray.note_login_step(state)
        return False


class ChatSeenMiddleware(BaseMiddleware):
    """Remembers each private chat that writes: when, in which language, and that it can be
    reached again (a chat that blocked the bot and writes again gets its notices); known
    chats are written in batches (`HotCache.chat_seen`)."""

    def __init__(self, hot_cache: HotCache) -> None:
        self._hot_cache = hot_cache

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        chat = _private_chat(data)
        user = _user(data)
        if chat is not None:
            try:
                data["chat_language"] = await self._hot_cache.chat_seen(
                    chat.id,
                    user.id if user else None,
                    user.language_code if user else None,
                    utcnow(),
                )
            except Exception:
                log.exception("could not record that chat %s wrote", chat.id)
        return await handler(event, data)


class ChatLocaleMiddleware(I18nMiddleware):
    """Every handler speaks the update's language (`update_locale`)."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        return update_locale(data)


def update_locale(data: dict[str, Any]) -> str:
    """The language to answer an update in: the chat's chosen one once ChatSeenMiddleware
    has read it (middlewares before it see only what Telegram reports), by `chat_locale`."""
    chosen = data.get("chat_language")
    user = _user(data)
    return chat_locale(
        chosen if isinstance(chosen, str) else None, user.language_code if user else None
    )
