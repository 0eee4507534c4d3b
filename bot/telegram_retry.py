"""A reply Telegram refuses with 429 (flood limit) is sent again after the wait it names.

Registered on the Bot's session, so every answer a handler sends gets it. The paced sender
(bot/services/notifier.py) handles 429 itself — it pauses its whole queue — so its sends
are marked with `paced()` and left alone here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod

log = logging.getLogger(__name__)

# A bounded number of tries, and no wait longer than a person would still read the answer.
MAX_ATTEMPTS = 3
MAX_WAIT_SECONDS = 60.0

_paced: ContextVar[bool] = ContextVar("telegram_paced", default=False)


@contextmanager
def paced() -> Iterator[None]:
    """Requests made inside get their 429 raised at once: the caller paces itself."""
    token = _paced.set(True)
    try:
        yield
    finally:
        _paced.reset(token)


class RetryAfterMiddleware(BaseRequestMiddleware):
    def __init__(
        self, attempts: int = MAX_ATTEMPTS, max_wait_seconds: float = MAX_WAIT_SECONDS
    ) -> None:
        self._attempts = max(1, attempts)
        self._max_wait = max_wait_seconds

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        attempt = 1
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if _paced.get() or attempt >= self._attempts or exc.retry_after > self._max_wait:
                    raise
                log.warning(
                    "Telegram refused %s with 429; sending it again in %s s (try %d of %d)",
                    type(method).__name__,
                    exc.retry_after,
                    attempt + 1,
                    self._attempts,
                )
                await asyncio.sleep(exc.retry_after)
                attempt += 1
