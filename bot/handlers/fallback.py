"""Last in line: what nobody else took gets a pointer to /help, and errors a kind word."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.filters import ExceptionTypeFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, ErrorEvent, Message

from bot.handlers.chats import PRIVATE_CHAT
from bot.handlers.stray import StrayText, delete_stray, free_text
from bot.locales import PoI18n

log = logging.getLogger(__name__)


async def unknown_private(
    message: Message, bot: Bot, i18n: PoI18n, state: FSMContext, stray_text: StrayText
) -> None:
    # No step asked for this text: soon after a login step or a restart it may be a password.
    if free_text(message) is not None and await stray_text.is_suspect(state):
        await delete_stray(message, bot, i18n)
        return
    await message.answer(i18n.text("unknown-input"))


async def button_left_over(query: CallbackQuery) -> None:
    # A button nobody takes here (one in a group, an owner's pressed by someone else): its
    # spinner stops at once instead of running until Telegram gives up.
    await query.answer()


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
    router.message.filter(PRIVATE_CHAT)  # in groups, text nobody took is not for the bot
    router.message.register(unknown_private)
    router.callback_query.register(button_left_over)
    router.errors.register(unexpected_error, ExceptionTypeFilter(Exception))
    return router
