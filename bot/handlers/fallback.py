"""Last in line: what nobody else took gets a pointer to /help, and errors a kind word."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent, Message

from bot.locales import PoI18n

log = logging.getLogger(__name__)


async def unknown_private(message: Message, i18n: PoI18n) -> None:
    await message.answer(i18n.text("unknown-input"))


async def unexpected_error(event: ErrorEvent, i18n: PoI18n | None = None) -> bool:
    update = event.update
    log.error(
        "unexpected error while handling update %s: %r",
        update.update_id,
        event.exception,
        exc_info=event.exception,
    )
    message = update.message or (update.callback_query.message if update.callback_query else None)
    if isinstance(message, Message) and i18n is not None:
        try:
            await message.answer(i18n.text("error-generic"))
        except Exception:
            log.warning("could not tell chat %s about the error", message.chat.id)
    return True


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(unknown_private, F.chat.type == "private")
    router.errors.register(unexpected_error, ExceptionTypeFilter(Exception))
    return router
