"""Self-tests of the fake Telegram's webhook delivery against aiogram's own webhook handler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError
from aiogram.methods import SendMessage
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from tests.conftest import close_bot
from tests.fakes.telegram_server import SECRET_HEADER, FakeTelegram

SECRET = "s3cret_-token"


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    bot = Bot(tg.token, session=AiohttpSession(api=TelegramAPIServer.from_base(tg.url)))
    yield bot
    await close_bot(bot)


@pytest.fixture
async def receiver(bot: Bot) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A bot served by aiogram's SimpleRequestHandler; a reply is sent back in the
    webhook's answer (aiogram's multipart reply); /fail answers the first genuine POST 500."""
    handled: list[dict[str, Any]] = []
    router = Router()

    @router.message()
    async def echo(message: Message) -> SendMessage:
        handled.append({"text": message.text, "chat": message.chat.id})
        return message.answer(f"echo {message.text}")  # not awaited: the webhook reply

    dp = Dispatcher()
    dp.include_router(router)
    app = web.Application()
    failures = [1]

    @web.middleware
    async def fail_once(request: web.Request, handler: Any) -> web.StreamResponse:
        genuine = request.headers.get(SECRET_HEADER) == SECRET
        if genuine and failures and request.path == "/fail":
            failures.pop()
            return web.Response(status=500)
        response: web.StreamResponse = await handler(request)
        return response

    app.middlewares.append(fail_once)
    for path in ("/hook", "/fail"):
        SimpleRequestHandler(dp, bot, handle_in_background=False, secret_token=SECRET).register(
            app, path=path
        )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", handled
    finally:
        await runner.cleanup()


async def test_updates_are_posted_with_the_secret_and_a_reply_is_executed(
    tg: FakeTelegram, bot: Bot, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    base, handled = receiver
    tg.send_message("before", chat_id=5)  # queued before the webhook: delivered too
    assert await bot.set_webhook(f"{base}/hook", secret_token=SECRET)
    tg.send_message("after", chat_id=5)
    await tg.wait_for_call("sendMessage", predicate=lambda c: c.text == "echo after")
    assert [h["text"] for h in handled] == ["before", "after"]
    assert {p.secret for p in tg.webhook_posts} == {SECRET}
    assert [p.status for p in tg.webhook_posts] == [200, 200]
    assert tg.pending_updates == []
    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count) == (f"{base}/hook", 0)
    with pytest.raises(TelegramConflictError):
        await bot.get_updates()


async def test_forged_posts_are_refused_by_the_bot_and_a_failed_post_is_sent_again(
    tg: FakeTelegram, bot: Bot, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    base, handled = receiver
    await bot.set_webhook(f"{base}/fail", secret_token=SECRET)
    update = {
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 9, "type": "private"},
            "from": {"id": 9, "is_bot": False, "first_name": "X"},
            "text": "f",
        }
    }
    assert await tg.post_to_webhook(update, secret=None) == 401
    assert await tg.post_to_webhook(update, secret="wrong") == 401
    tg.send_message("again", chat_id=5)
    await tg.wait_for_call("sendMessage", predicate=lambda c: c.text == "echo again")
    assert [p.status for p in tg.webhook_posts] == [500, 200]
    assert tg.webhook_posts[0].update_id == tg.webhook_posts[1].update_id
    assert [h["text"] for h in handled] == ["again"]


async def test_delete_webhook_stops_delivery_and_polling_works_again(
    tg: FakeTelegram, bot: Bot, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    base, handled = receiver
    await bot.set_webhook(f"{base}/hook", secret_token=SECRET)
    assert await bot.delete_webhook()
    update = tg.send_message("polled", chat_id=5)
    await asyncio.sleep(0.1)
    assert handled == [] and tg.webhook_posts == []
    assert [u.update_id for u in await bot.get_updates()] == [update["update_id"]]
    assert (await bot.get_webhook_info()).url == ""


async def test_set_webhook_refuses_what_telegram_refuses(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="secret token"):
        await bot.set_webhook("https://example.org/hook", secret_token="not allowed!")
    with pytest.raises(TelegramBadRequest, match="HTTPS url"):
        await bot.set_webhook("ftp://example.org/hook")
    assert (await bot.get_webhook_info()).url == ""
