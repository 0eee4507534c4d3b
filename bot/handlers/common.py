"""/start, /help and /cancel; /cancel is registered first so it leaves any step, and buttons
of a finished or replaced step are answered here before anyone else sees them."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.handlers.chats import group_only, private_only
from bot.handlers.filters import InLoop
from bot.handlers.steps import (
    FLOW,
    PROMPT,
    PROMPT_IS_PICTURE,
    Flow,
    StaleStep,
    StepButton,
    drop_buttons,
    stale_button,
)
from bot.handlers.ui import LEGACY_STEP_BUTTONS, login_keyboard
from bot.locales import PoI18n

log = logging.getLogger(__name__)


async def _cancel(state: FSMContext, bot: Bot, i18n: PoI18n, chat_id: int) -> tuple[str, bool]:
    """Leave the step; the prompt that asked is edited to say what was cancelled.
    Returns the sentence and whether it is already shown in the prompt."""
    had_step = await state.get_state() is not None
    data = await state.get_data()
    await state.clear()
    if not had_step:
        return i18n.text("cancel-nothing"), False
    flow = data.get(FLOW)
    known = flow in {f.value for f in Flow}
    text = i18n.text(f"cancel-done-{flow}" if known else "cancel-done")
    prompt = data.get(PROMPT)
    if not isinstance(prompt, int):
        return text, False
    try:
        if data.get(PROMPT_IS_PICTURE):
            await bot.edit_message_caption(
                chat_id=chat_id, message_id=prompt, caption=text, reply_markup=None
            )
        else:
            await bot.edit_message_text(text, chat_id=chat_id, message_id=prompt, reply_markup=None)
    except TelegramAPIError as exc:
        # A message deleted or too old to edit: say it below instead.
        log.debug("prompt %s in chat %s not edited: %s", prompt, chat_id, exc)
        await drop_buttons(bot, chat_id, prompt)
        return text, False
    return text, True


async def cancel_command(message: Message, state: FSMContext, bot: Bot, i18n: PoI18n) -> None:
    text, in_prompt = await _cancel(state, bot, i18n, message.chat.id)
    if not in_prompt:
        await message.answer(text)


async def cancel_button(query: CallbackQuery, state: FSMContext, bot: Bot, i18n: PoI18n) -> None:
    message = query.message
    if not isinstance(message, Message):
        await query.answer()
        return
    text, in_prompt = await _cancel(state, bot, i18n, message.chat.id)
    await query.answer()
    if not in_prompt:
        await message.answer(text)


async def start_private(message: Message, i18n: PoI18n) -> None:
    await message.answer(i18n.text("help"), reply_markup=login_keyboard(i18n))


async def help_private(message: Message, i18n: PoI18n) -> None:
    await message.answer(i18n.text("help"))


async def help_group(message: Message, i18n: PoI18n) -> None:
    await message.answer(i18n.text("help-group"))


def build_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(stale_button, StepButton.filter(), StaleStep())
    router.callback_query.register(stale_button, InLoop(F.data.in_(LEGACY_STEP_BUTTONS)))
    router.message.register(cancel_command, Command("cancel"))
    router.callback_query.register(cancel_button, StepButton.filter(F.action == "cancel"))
    private = private_only(Router(name=f"{__name__}.private"))
    private.message.register(start_private, CommandStart(deep_link=False))
    private.message.register(help_private, Command("help"))
    group = group_only(Router(name=f"{__name__}.group"))
    group.message.register(help_group, CommandStart(deep_link=False))
    group.message.register(help_group, Command("help"))
    router.include_routers(private, group)
    return router
