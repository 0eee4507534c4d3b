"""Webhook mode: Telegram POSTs each update to WEBHOOK_URL, and this process answers on
WEBHOOK_HOST:WEBHOOK_PORT through aiogram's aiohttp integration.

Every instance registers the same URL and secret when it starts and leaves them in place
when it stops: the other instances behind that URL go on serving it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.config import Settings
from bot.errors import StartupError

log = logging.getLogger(__name__)


def listen(host: str, port: int) -> socket.socket:
    """The webhook's listening socket, taken before anything talks to Telegram, so a busy
    port is one line at startup rather than a webhook that points nowhere."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
            0
        ][0]
    except socket.gaierror:
        raise StartupError(
            f"WEBHOOK_HOST {host!r} is not an address this machine can listen on."
        ) from None
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"WEBHOOK_PORT {port} on {host} is already in use: stop what listens there "
                "or choose another port."
            ) from None
        raise StartupError(
            f"Cannot listen on WEBHOOK_HOST {host} port {port}: {exc.strerror or exc}."
        ) from None


class _AnswerWhenHandled(SimpleRequestHandler):
    """aiogram's handler, answering Telegram only once the update was handled, so an update
    whose instance dies mid-way is sent again. A stop lets the updates in hand finish in the
    dispatcher's shutdown (app.py: `InFlightUpdates`), which runs after this handler closes.

    The Bot's session belongs to app.py, which closes it after the dispatcher's shutdown.
    """

    def __init__(self, dispatcher: Dispatcher, bot: Bot, secret: str):
        super().__init__(dispatcher, bot, handle_in_background=False, secret_token=secret)

    async def close(self) -> None:
        """Not the Bot's session (aiogram's handler would close it here)."""


class WebhookServer:
    """Serves WEBHOOK_URL's path on an already bound socket until SIGINT or SIGTERM."""

    def __init__(self, *, url: str, secret: str, sock: socket.socket) -> None:
        self._url = url
        self._secret = secret
        self._sock = sock

    @property
    def path(self) -> str:
        return urlsplit(self._url).path or "/"

    def close(self) -> None:
        self._sock.close()

    async def serve(
        self,
        bot: Bot,
        dp: Dispatcher,
        *,
        mount: Callable[[web.Application], None] | None = None,
    ) -> None:
        """Registers the webhook, serves it, and on a stop signal finishes what is in flight,
        runs the dispatcher's shutdown and returns — without deleting the webhook."""
        try:
            await bot.set_webhook(
                self._url,
                secret_token=self._secret,
                allowed_updates=dp.resolve_used_update_types(),
                drop_pending_updates=False,
            )
        except TelegramAPIError as exc:
            raise StartupError(f"Telegram refused WEBHOOK_URL: {exc.message}") from None
        app = web.Application()
        _AnswerWhenHandled(dp, bot, self._secret).register(app, path=self.path)
        setup_application(app, dp, bot=bot)
        if mount is not None:
            mount(app)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await runner.setup()  # the dispatcher's startup
            await web.SockSite(runner, self._sock).start()
            host, port = self._sock.getsockname()[:2]
            log.info("webhook registered; serving %s on %s:%d", self.path, host, port)
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await runner.cleanup()


def open_webhook(settings: Settings) -> WebhookServer | None:
    """The webhook server with its port taken, or None in long-polling mode."""
    if not settings.webhook_url:
        return None
    return WebhookServer(
        url=settings.webhook_url,
        secret=settings.effective_webhook_secret,
        sock=listen(settings.webhook_host, settings.webhook_port),
    )


async def delete_leftover_webhook(bot: Bot) -> None:
    """Long polling after webhook mode: Telegram refuses getUpdates (409) while a webhook is
    set, and aiogram's start_polling does not delete it, so this does."""
    info = await bot.get_webhook_info()
    if info.url:
        await bot.delete_webhook(drop_pending_updates=False)
        log.warning("a webhook was set (WEBHOOK_URL is not): deleted it to use long polling")
