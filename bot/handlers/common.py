"""/start, /help and /cancel; /cancel is registered first so it leaves any step."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.handlers.ui import CANCEL
from bot.locales import PoI18n


async def cancel_command(message: Message, state: FSMContext, i18n: PoI18n) -> None:
    had_step = await state.get_state() is not None
    await state.clear()
    await message.answer(i18n.text("cancel-done" if had_step else "cancel-nothing"))


async def cancel_button(query: CallbackQuery, state: FSMContext, i18n: PoI18n) -> None:
    had_step = await state.get_state() is not None
    await state.clear()
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)
        await query.message.answer(i18n.text("cancel-done" if had_step else "cancel-nothing"))


async def help_private(message: Message, i18n: PoI18n) -> None:
    await message.answer(i18n.text("help"))


async def help_group(message: Message, i18n: PoI18n) -> None:
    await message.answer(i18n.text("help-group"))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cancel_command, Command("cancel"))
    router.callback_query.register(cancel_button, F.data == CANCEL)
    router.message.register(help_private, CommandStart(deep_link=False), F.chat.type == "private")
    router.message.register(help_private, Command("help"), F.chat.type == "private")
    router.message.register(help_group, CommandStart(deep_link=False))
    router.message.register(help_group, Command("help"))
    return router
