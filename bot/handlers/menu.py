"""The command menus Telegram shows: per language, per kind of chat, per chat.

Private chats get every command a person can use; groups only those that make sense
there (no account commands: they answer "private chat only"). A chat that picks a
language gets its own menu in it, and owners also see their commands in theirs.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    BotCommandScopeDefault,
)

from bot.locales import RUSSIAN_SPEAKING, SUPPORTED, PoI18n

log = logging.getLogger(__name__)

USER_COMMANDS = ("login", "status", "logout", "forget", "language", "cancel", "help")
GROUP_COMMANDS = ("login", "help")
ADMIN_COMMANDS = ("stats", "broadcast", "allow", "deny", "ban", "unban", "audit")


def commands(i18n: PoI18n, locale: str, names: Iterable[str]) -> list[BotCommand]:
    return [
        BotCommand(command=name, description=i18n.plain(f"command-{name}", locale))
        for name in names
    ]


def private_commands(is_owner: bool) -> tuple[str, ...]:
    return (*USER_COMMANDS, *ADMIN_COMMANDS) if is_owner else USER_COMMANDS


async def set_general_menus(bot: Bot, i18n: PoI18n) -> None:
    """The menus every chat starts with: English, and Russian where Telegram speaks it."""
    scopes = (
        (BotCommandScopeAllPrivateChats(), USER_COMMANDS),
        (BotCommandScopeAllGroupChats(), GROUP_COMMANDS),
        # Anywhere else (and for clients that ignore the scopes above): the safe subset.
        (BotCommandScopeDefault(), GROUP_COMMANDS),
    )
    for scope, names in scopes:
        await bot.set_my_commands(commands(i18n, "en", names), scope=scope)
        for code in sorted(RUSSIAN_SPEAKING):
            await bot.set_my_commands(commands(i18n, "ru", names), scope=scope, language_code=code)


async def set_chat_menu(
    bot: Bot, i18n: PoI18n, chat_id: int, locale: str, admin_ids: Collection[int]
) -> bool:
    """One private chat's menu in its chosen language (with the owners' commands for an
    owner). False when Telegram refused it (e.g. an owner who never opened the chat)."""
    if locale not in SUPPORTED:
        return False
    names = private_commands(chat_id in admin_ids)
    try:
        await bot.set_my_commands(
            commands(i18n, locale, names), scope=BotCommandScopeChat(chat_id=chat_id)
        )
    except TelegramAPIError as exc:
        log.warning("chat %s: command menu not set (%s)", chat_id, exc.message)
        return False
    return True
