"""`python -m bot` in webhook mode, as its own process, against the fake Telegram and Spaces."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.config import derive_webhook_secret
from bot.storage.crypto import generate_key
from tests.conftest import close_bot
from tests.e2e.test_bot_process import CHAT, BotProcess, bot_env, say
from tests.fakes.spaces_server import FakeSpaces
from tests.fakes.telegram_server import FakeTelegram

STRANGER = 4242  # the chat a forged update claims to come from


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTelegram, FakeSpaces]]:
    async with FakeTelegram() as tg, FakeSpaces() as spaces:
        yield tg, spaces


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def forged_start() -> dict[str, object]:
    sender = {"id": STRANGER, "is_bot": False, "first_name": "Mallory"}
    chat = {"id": STRANGER, "type": "private", "first_name": "Mallory"}
    message = {"message_id": 1, "date": 0, "chat": chat, "from": sender, "text": "/start"}
    return {"message": message}


async def test_webhook_mode_serves_telegram_refuses_forgeries_and_keeps_the_webhook(
    fakes: tuple[FakeTelegram, FakeSpaces], tmp_path: Path
) -> None:
    tg, spaces = fakes
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    # HEALTH_PORT equal to WEBHOOK_PORT: the health endpoints share the webhook's server.
    env = {
        **bot_env(tg, spaces, tmp_path, generate_key()),
        "WEBHOOK_URL": url,
        "WEBHOOK_PORT": str(port),
        "HEALTH_PORT": str(port),
    }
    bot = BotProcess(env)
    await bot.start()
    try:
        registered = await tg.wait_for_call("setWebhook", timeout=60)
        assert registered.params["url"] == url
        secret = derive_webhook_secret(tg.token)
        assert registered.params["secret_token"] == secret == tg.webhook_secret
        await say(tg, "/start")

        assert await tg.post_to_webhook(forged_start(), secret=None) in (401, 403)
        assert await tg.post_to_webhook(forged_start(), secret=secret[:-1] + "x") in (401, 403)
        await say(tg, "/help")  # handled after the forgeries were refused

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/healthz")).status_code == 200
            metrics = (await http.get("/metrics")).text
        assert 'spaces_bot_updates_total{type="message"} 2.0' in metrics
        assert tg.sent_messages(STRANGER) == []
        assert {post.status for post in tg.webhook_posts} == {200}
        assert tg.calls_of("getUpdates") == []
    finally:
        code = await bot.stop()
    assert code == 0
    assert tg.calls_of("deleteWebhook") == []
    assert tg.webhook_url == url
    log = bot.stderr.decode()
    assert "Traceback" not in log
    assert secret not in log and tg.token not in log


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"WEBHOOK_URL": "http://bot.example.org/hook"}, "WEBHOOK_URL"),
        ({"WEBHOOK_URL": "bot.example.org/hook"}, "WEBHOOK_URL"),
        (
            {"WEBHOOK_URL": "https://bot.example.org/hook", "WEBHOOK_SECRET": "a b"},
            "WEBHOOK_SECRET",
        ),
        (
            {"WEBHOOK_URL": "https://bot.example.org/hook", "WEBHOOK_SECRET": "x" * 257},
            "WEBHOOK_SECRET",
        ),
        ({"WEBHOOK_URL": "https://bot.example.org/hook"}, "WEBHOOK_PORT"),
    ],
    ids=["http-elsewhere", "no-scheme", "secret-space", "secret-too-long", "port-in-use"],
)
async def test_bad_webhook_settings_exit_2_with_one_line_before_telegram(
    fakes: tuple[FakeTelegram, FakeSpaces], tmp_path: Path, settings: dict[str, str], named: str
) -> None:
    tg, spaces = fakes
    with busy_port() as port:
        env = {**bot_env(tg, spaces, tmp_path, generate_key()), **settings}
        env["WEBHOOK_PORT"] = str(port if named == "WEBHOOK_PORT" else free_port())
        bot = BotProcess(env)
        await bot.start()
        assert await bot.wait() == 2
    lines = [line for line in bot.stderr.decode().splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0], lines
    assert "Traceback" not in lines[0]
    assert tg.calls == []  # Telegram was never asked anything
    assert not (tmp_path / "data" / "bot.sqlite3").exists()  # nor the database created


async def test_long_polling_deletes_a_leftover_webhook_and_keeps_its_updates(
    fakes: tuple[FakeTelegram, FakeSpaces], tmp_path: Path
) -> None:
    tg, spaces = fakes
    client = Bot(tg.token, session=AiohttpSession(api=TelegramAPIServer.from_base(tg.url)))
    try:
        await client.set_webhook(f"http://127.0.0.1:{free_port()}/gone", secret_token="old")
    finally:
        await close_bot(client)
    tg.send_message("/start", chat_id=CHAT)  # waits while the webhook points nowhere
    bot = BotProcess(bot_env(tg, spaces, tmp_path, generate_key()))
    await bot.start()
    try:
        await tg.wait_for_call("sendMessage", predicate=lambda c: c.chat_id == CHAT, timeout=60)
        deleted = tg.calls_of("deleteWebhook")
        assert len(deleted) == 1 and not deleted[0].params.get("drop_pending_updates")
        assert tg.webhook_url == ""
    finally:
        assert await bot.stop() == 0
