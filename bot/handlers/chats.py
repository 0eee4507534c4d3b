"""Which kind of chat an update comes from: a router says it once, not each of its handlers.

Most of the bot works in a private chat only (a password is never typed in a group). A
feature's module builds a private router (`private_only`) and, where groups get an answer
of their own, a small group router next to it.
"""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message

from bot.handlers.filters import InLoop

PRIVATE_CHAT = InLoop(F.chat.type == ChatType.PRIVATE)
NOT_PRIVATE_CHAT = InLoop(F.chat.type != ChatType.PRIVATE)


class PrivateButton(Filter):
    """A button pressed on a message in a private chat; its handler receives that message
    as `message` (so no handler checks the chat again)."""

    async def __call__(self, query: CallbackQuery) -> bool | dict[str, Any]:
        message = query.message
        if isinstance(message, Message) and message.chat.type == ChatType.PRIVATE:
            return {"message": message}
        return False


def private_only(router: Router) -> Router:
    """`router` from now on sees only messages and buttons of private chats."""
    router.message.filter(PRIVATE_CHAT)
    router.callback_query.filter(PrivateButton())
    return router


def group_only(router: Router) -> Router:
    """`router` from now on sees only messages of groups, supergroups and channels."""
    router.message.filter(NOT_PRIVATE_CHAT)
    return router
