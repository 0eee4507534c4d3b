"""Messages the bot sends on its own: paced under Telegram's limits, never dropped.

This is the one service that talks to aiogram: background notices have no update to
answer, so they are sent here, in each chat's language.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import timedelta
from enum import StrEnum

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.domain import ExpiryNotice
from bot.locales import PoI18n, locale_for_language_code
from bot.services.clock import utcnow
from bot.services.pacing import RateLimiter
from bot.storage.store import Store
from bot.telegram_retry import paced

log = logging.getLogger(__name__)

RELOGIN = "relogin"  # callback data of "log in again" buttons: RELOGIN:<account tag>


def relogin_data(tag: str) -> str:
    """The relogin button of one account (domain.AccountKey.tag): it names what it acts on."""
    return f"{RELOGIN}:{tag}"


PER_CHAT_INTERVAL = 1.0
MAX_RETRY_AFTER_ROUNDS = 8
# A notice that could not be sent for a reason that may pass is tried again after this.
NOTICE_RETRY_SECONDS = 60.0


class SendOutcome(StrEnum):
    DELIVERED = "delivered"
    BLOCKED = "blocked"  # the person blocked the bot, or the chat is gone
    FAILED = "failed"  # network or Telegram trouble: worth another try later
    REJECTED = "rejected"  # Telegram refused this message: another try would fail too


class TelegramSender:
    """One queue for everything the bot sends on its own.

    A shared limiter keeps the whole bot under `rate` messages/s, each chat gets at most
    one per second, and a 429 pauses the whole queue for the time Telegram asks.
    """

    def __init__(self, bot: Bot, rate: float, per_chat_interval: float = PER_CHAT_INTERVAL):
        self._bot = bot
        self._limiter = RateLimiter(rate)
        self._per_chat = per_chat_interval
        self._last_sent: dict[int, float] = {}
        self.stats: Counter[str] = Counter()

    async def send(
        self, chat_id: int, text: str, reply_markup: InlineKeyboardMarkup | None = None
    ) -> SendOutcome:
        for _ in range(MAX_RETRY_AFTER_ROUNDS):
            await self._wait_for_chat(chat_id)
            await self._limiter.acquire()
            self._last_sent[chat_id] = time.monotonic()
            try:
                with paced():  # a 429 comes straight here and pauses the whole queue
                    await self._bot.send_message(chat_id, text, reply_markup=reply_markup)
            except TelegramRetryAfter as exc:
                self.stats["retry_after"] += 1
                log.warning("Telegram asks to wait %s s; pausing all sends", exc.retry_after)
                self._limiter.pause(exc.retry_after)
                continue
            except (TelegramForbiddenError, TelegramNotFound) as exc:
                log.info("chat %s cannot be reached: %s", chat_id, exc.message)
                return self._count(SendOutcome.BLOCKED)
            except TelegramBadRequest as exc:
                if "chat not found" in exc.message.lower():
                    return self._count(SendOutcome.BLOCKED)
                log.error("Telegram refused a message to chat %s: %s", chat_id, exc.message)
                return self._count(SendOutcome.REJECTED)
            except TelegramUnauthorizedError:
                raise  # a revoked token: nothing will work, let the bot fail loudly
            except (TelegramNetworkError, TelegramServerError) as exc:
                log.warning("sending to chat %s failed, will retry later: %s", chat_id, exc)
                return self._count(SendOutcome.FAILED)
            return self._count(SendOutcome.DELIVERED)
        return self._count(SendOutcome.FAILED)

    def _count(self, outcome: SendOutcome) -> SendOutcome:
        self.stats[outcome.value] += 1
        return outcome

    async def _wait_for_chat(self, chat_id: int) -> None:
        last = self._last_sent.get(chat_id)
        if last is not None:
            wait = last + self._per_chat - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        if len(self._last_sent) > 10_000:
            horizon = time.monotonic() - self._per_chat
            self._last_sent = {c: t for c, t in self._last_sent.items() if t > horizon}


class Notifier:
    """Renders and sends the expiry notices and the owners' notices."""

    def __init__(
        self,
        store: Store,
        sender: TelegramSender,
        i18n: PoI18n,
        admin_ids: Iterable[int],
        *,
        service_names: Callable[[str], str] = str,
        concurrency: int = 8,
        batch_size: int = 100,
    ) -> None:
        self._store = store
        self._sender = sender
        self._i18n = i18n
        self._admin_ids = sorted(set(admin_ids))
        self._service_name = service_names
        self._concurrency = concurrency
        self._batch_size = batch_size

    async def deliver_pending(self) -> int:
        """Send every pending expiry notice that can be sent now; returns how many went out.

        `concurrency` senders take notices from a queue that the next claim refills while
        the last ones are still going out, so the paced queue never waits for a batch to
        finish (a gap between batches would cost the slots of the paced sender)."""
        batch_size = self._batch_size
        queue: asyncio.Queue[ExpiryNotice | None] = asyncio.Queue(maxsize=batch_size)
        delivered = 0

        async def claim() -> None:
            try:
                while True:
                    notices = await self._store.claim_notices(utcnow(), batch_size)
                    for notice in notices:
                        await queue.put(notice)
                    if len(notices) < batch_size:
                        return
            finally:
                for _ in range(self._concurrency):
                    await queue.put(None)

        async def send() -> None:
            nonlocal delivered
            while (notice := await queue.get()) is not None:
                delivered += await self._deliver(notice)

        # One unexpected error stops the round; claimed notices stay claimed (never twice).
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(claim())
                for _ in range(self._concurrency):
                    group.create_task(send())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the caller logs it; _deliver logs its own
        return delivered

    async def _deliver(self, notice: ExpiryNotice) -> bool:
        locale = notice.language or locale_for_language_code(notice.language_code)
        service = self._service_name(notice.key.service)
        text = self._i18n.text(
            "notice-session-ended",
            locale,
            service=service,
            nickname=notice.display_name,
            confirmed_at=self._i18n.moment(notice.last_confirmed_at, utcnow(), locale),
        )
        button = InlineKeyboardButton(
            text=self._i18n.plain(
                "button-relogin", locale, service=service, nickname=notice.display_name
            ),
            callback_data=relogin_data(notice.key.tag),
        )
        markup = InlineKeyboardMarkup(inline_keyboard=[[button]])
        try:
            outcome = await self._sender.send(notice.chat_id, text, markup)
        except Exception:
            # The claim stays: a notice that may have gone out is never sent twice.
            log.exception("sending the expiry notice to chat %s failed", notice.chat_id)
            raise
        chat, key = notice.chat_id, notice.key
        if outcome is SendOutcome.DELIVERED:
            await self._store.finish_notice(chat, key, delivered=True)
            return True
        if outcome is SendOutcome.BLOCKED:
            await self._store.mark_chat_blocked(chat, utcnow())
            await self._store.finish_notice(chat, key, delivered=False)
        elif outcome is SendOutcome.FAILED:
            retry_at = utcnow() + timedelta(seconds=NOTICE_RETRY_SECONDS)
            await self._store.finish_notice(chat, key, delivered=False, retry_at=retry_at)
        else:
            await self._store.finish_notice(chat, key, delivered=True)
        return False

    async def tell_admins(self, key: str, **params: str) -> None:
        for admin_id in self._admin_ids:
            chosen, reported = await self._store.chat_languages(admin_id)
            locale = chosen or locale_for_language_code(reported)
            outcome = await self._sender.send(admin_id, self._i18n.text(key, locale, **params))
            if outcome is not SendOutcome.DELIVERED:
                log.warning("owner %s was not told %s: %s", admin_id, key, outcome.value)
