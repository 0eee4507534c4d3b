"""Steps of a conversation: the prompt that asks, the buttons under it, and their freshness.

Each prompt gets a fresh token; its buttons carry it in their callback data and the chat's
conversation state keeps the current one. A button whose token is not the current one
belongs to a finished or replaced step: it answers with a short toast and disappears, so an
old "Cancel" never cancels a newer step and an old "Send" never sends twice.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Any

from aiogram import Bot
from aiogram.enums import ChatAction
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.chat_action import ChatActionSender

from bot.locales import PoI18n

log = logging.getLogger(__name__)

# Telegram shows a chat action for about 5 s; renewing a little sooner keeps it on screen.
CHAT_ACTION_INTERVAL = 4.0

# Conversation-state keys of a step.
FLOW = "flow"
TOKEN = "step"
PROMPT = "prompt_id"
PROMPT_IS_PICTURE = "prompt_is_picture"  # its words are a caption, edited as such
ATTEMPT = "attempt"


class Flow(StrEnum):
    """What a step belongs to; /cancel names it."""

    LOGIN = "login"
    BROADCAST = "broadcast"
    FORGET = "forget"
    LOGOUT = "logout"  # which of several accounts to log out


class StepButton(CallbackData, prefix="step"):
    action: str
    token: str


def step_button(text: str, action: str, token: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=text, callback_data=StepButton(action=action, token=token).pack()
    )


def cancel_row(i18n: PoI18n, token: str) -> list[InlineKeyboardButton]:
    return [step_button(i18n.plain("button-cancel"), "cancel", token)]


async def new_step(state: FSMContext, flow: Flow) -> str:
    """A fresh token for the prompt about to be sent; every older button goes stale."""
    token = secrets.token_hex(4)
    await state.update_data({FLOW: flow.value, TOKEN: token})
    return token


async def shown(
    state: FSMContext, bot: Bot, chat_id: int, message_id: int, *, picture: bool = False
) -> None:
    """Remember the prompt just sent; the one it replaces loses its buttons."""
    previous = (await state.get_data()).get(PROMPT)
    await state.update_data({PROMPT: message_id, PROMPT_IS_PICTURE: picture})
    if isinstance(previous, int) and previous != message_id:
        await drop_buttons(bot, chat_id, previous)


async def ask(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    flow: Flow,
    text: str,
    rows: Callable[[str], list[list[InlineKeyboardButton]]] | None = None,
) -> str:
    """Send a prompt with its buttons (`rows` for the token, then Cancel); returns the token."""
    token = await new_step(state, flow)
    keyboard = [*(rows(token) if rows else []), cancel_row(i18n, token)]
    sent = await message.answer(text, reply_markup=InlineKeyboardMarkup(inline_keyboard=keyboard))
    await shown(state, bot, sent.chat.id, sent.message_id)
    return token


async def finish(state: FSMContext, bot: Bot, chat_id: int) -> None:
    """The conversation is over: its state goes, and so do the last prompt's buttons."""
    prompt = (await state.get_data()).get(PROMPT)
    await state.clear()
    if isinstance(prompt, int):
        await drop_buttons(bot, chat_id, prompt)


async def drop_buttons(bot: Bot, chat_id: int, message_id: int) -> None:
    try:
        await bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id)
    except TelegramAPIError as exc:
        # Already without buttons, deleted, or too old to edit: nothing left to press.
        log.debug("buttons of message %s in chat %s stay: %s", message_id, chat_id, exc)


async def is_current(state: FSMContext, token: str) -> bool:
    return token == (await state.get_data()).get(TOKEN)


class StaleStep(Filter):
    """A step button whose token is not the chat's current one."""

    async def __call__(self, query: CallbackQuery, state: FSMContext) -> bool | dict[str, Any]:
        try:
            button = StepButton.unpack(query.data or "")
        except (TypeError, ValueError):
            return False
        return not await is_current(state, button.token)


async def stale_button(query: CallbackQuery, i18n: PoI18n) -> None:
    await query.answer(i18n.plain("button-stale"))
    if isinstance(query.message, Message):
        try:
            await query.message.edit_reply_markup(reply_markup=None)
        except TelegramAPIError as exc:
            log.debug("stale buttons not removed: %s", exc)


# -- attempts that wait on Spaces ---------------------------------------------------------


async def new_attempt(state: FSMContext) -> str:
    """An id for a request about to wait on Spaces; a later one supersedes it."""
    attempt = secrets.token_hex(4)
    await state.update_data({ATTEMPT: attempt})
    return attempt


async def superseded(state: FSMContext, attempt: str) -> bool:
    """True when another attempt, /cancel or a new flow came while this one waited: its
    result is dropped silently, so no late "failed" follows a "done"."""
    return (await state.get_data()).get(ATTEMPT) != attempt


@asynccontextmanager
async def working(
    bot: Bot, chat_id: int, action: ChatAction = ChatAction.TYPING
) -> AsyncIterator[None]:
    """Shows "typing…" (or another chat action) for as long as the block waits."""
    async with ChatActionSender(
        bot=bot, chat_id=chat_id, action=action, interval=CHAT_ACTION_INTERVAL
    ):
        yield
