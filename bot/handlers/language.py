"""/language: the person picks Russian or English; the choice is kept per chat."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.config import Settings
from bot.handlers.chats import private_only
from bot.handlers.filters import InLoop
from bot.handlers.menu import set_chat_menu
from bot.locales import SUPPORTED, PoI18n
from bot.services.clock import utcnow
from bot.services.hotcache import HotCache

PREFIX = "lang:"


def language_keyboard(i18n: PoI18n) -> InlineKeyboardMarkup:
    # Each language is named in itself, so a person lost in the wrong one still finds theirs.
    row = [
        InlineKeyboardButton(
            text=i18n.plain("language-name", locale), callback_data=PREFIX + locale
        )
        for locale in SUPPORTED
    ]
    return InlineKeyboardMarkup(inline_keyboard=[row])


async def language_command(message: Message, i18n: PoI18n) -> None:
    await message.answer(i18n.text("language-choose"), reply_markup=language_keyboard(i18n))


async def language_chosen(
    query: CallbackQuery,
    message: Message,
    bot: Bot,
    i18n: PoI18n,
    hot_cache: HotCache,
    settings: Settings,
) -> None:
    locale = (query.data or "").removeprefix(PREFIX)
    if locale not in SUPPORTED:
        await query.answer()
        return
    await hot_cache.set_chat_language(message.chat.id, locale, utcnow())
    await set_chat_menu(bot, i18n, message.chat.id, locale, settings.admin_ids)
    done = i18n.text("language-set", locale)
    await query.answer(done)
    await message.edit_text(done, reply_markup=None)


def build_router() -> Router:
    router = private_only(Router(name=__name__))
    router.message.register(language_command, Command("language"))
    router.callback_query.register(language_chosen, InLoop(F.data.startswith(PREFIX)))
    return router
