"""Real updates through the real Dispatcher; Telegram and Spaces are fakes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import (
    Services,
    build_bot,
    build_dispatcher,
    build_fsm_storage,
    build_remote_services,
    build_services,
)
from bot.config import Settings
from bot.handlers.steps import StepButton
from bot.locales import PoI18n, build_i18n
from bot.spaces.transport import AiohttpTransport
from bot.storage.crypto import Cipher
from bot.storage.engine import make_sessionmaker
from bot.storage.owners import OwnerStore
from bot.storage.store import Store
from tests.conftest import close_bot
from tests.fakes.spaces_server import FakeSpaces
from tests.fakes.telegram_server import ApiCall, FakeTelegram

CHAT = 5001


@dataclass
class Harness:
    dp: Dispatcher
    bot: Bot
    tg: FakeTelegram
    spaces: FakeSpaces
    store: Store
    i18n: PoI18n
    services: Services

    async def _feed(self, update: dict[str, Any]) -> list[ApiCall]:
        mark = self.tg.mark()
        await self.dp.feed_update(
            self.bot, Update.model_validate(update, context={"bot": self.bot})
        )
        return self.tg.calls[mark:]

    async def say(self, text: str, *, chat_id: int = CHAT, **kw: Any) -> list[ApiCall]:
        return await self._feed(self.tg.send_message(text, chat_id=chat_id, **kw))

    async def press(self, data: str, *, chat_id: int = CHAT, **kw: Any) -> list[ApiCall]:
        return await self._feed(self.tg.press_button(data, chat_id=chat_id, **kw))

    async def sticker(self, *, chat_id: int = CHAT) -> list[ApiCall]:
        return await self._feed(self.tg.send_sticker(chat_id=chat_id))

    async def state(self, chat_id: int = CHAT, user_id: int | None = None) -> str | None:
        ctx = self.dp.fsm.get_context(self.bot, chat_id=chat_id, user_id=user_id or chat_id)
        return await ctx.get_state()

    async def fsm_data(self, chat_id: int = CHAT) -> dict[str, Any]:
        return await self.dp.fsm.get_context(self.bot, chat_id=chat_id, user_id=chat_id).get_data()

    def t(self, key: str, locale: str = "en", **params: Any) -> str:
        """The sentence as the bot words it; about Spaces unless `service` says otherwise."""
        params.setdefault("service", "Spaces")
        return self.i18n.text(key, locale, **params)


def texts(calls: list[ApiCall]) -> list[str]:
    out = []
    for call in calls:
        if call.method in {"sendMessage", "editMessageText"}:
            out.append(call.params.get("text", ""))
        elif call.method == "sendPhoto":
            out.append(call.params.get("caption", ""))
    return out


def buttons(calls: list[ApiCall]) -> list[dict[str, Any]]:
    found = []
    for call in calls:
        markup = call.params.get("reply_markup") or {}
        for row in markup.get("inline_keyboard", []):
            found.extend(row)
    return found


def step_data(calls: list[ApiCall], action: str) -> str:
    """The callback data of the last step button for `action` among the calls' keyboards."""
    found = [
        b["callback_data"]
        for b in buttons(calls)
        if b.get("callback_data", "").startswith(StepButton.__prefix__ + ":")
        and StepButton.unpack(b["callback_data"]).action == action
    ]
    assert found, f"no {action!r} button among {buttons(calls)}"
    return str(found[-1])


ADMIN = 4242


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Tests override settings by redefining this fixture (or parametrizing it)."""
    return {}


@pytest.fixture
async def harness(
    tg: FakeTelegram,
    fake_spaces: FakeSpaces,
    store: Store,
    cipher: Cipher,
    engine: AsyncEngine,
    settings_overrides: dict[str, Any],
) -> AsyncIterator[Harness]:
    settings = Settings(
        _env_file=None,
        bot_token=tg.token,
        telegram_api_url=tg.url,
        spaces_base_url=fake_spaces.url,
        spaces_timeout_seconds=2,
        admin_ids=str(ADMIN),
        **settings_overrides,
    )
    async with AiohttpTransport() as transport:  # the production transport
        remote_services = build_remote_services(settings, transport)
        bot = build_bot(settings)
        i18n = build_i18n(settings.zone)
        services = build_services(
            settings=settings,
            store=store,
            owners=OwnerStore(make_sessionmaker(engine)),
            remote_services=remote_services,
            cipher=cipher,
            bot=bot,
            i18n=i18n,
        )
        # The production default: conversation state in the bot's own database.
        dp = build_dispatcher(services, build_fsm_storage(settings, make_sessionmaker(engine)))
        try:
            yield Harness(
                dp=dp,
                bot=bot,
                tg=tg,
                spaces=fake_spaces,
                store=store,
                i18n=i18n,
                services=services,
            )
        finally:
            await services.broadcasts.stop_all()
            await close_bot(bot)


@pytest.fixture
def h(harness: Harness) -> Harness:
    return harness
