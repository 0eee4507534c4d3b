"""The one place that wires things together and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

import httpx
from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import BotCommand, BotCommandScopeDefault, Chat, TelegramObject, User
from aiogram.utils.i18n import I18nMiddleware

from bot.config import Settings
from bot.handlers import routers
from bot.locales import RUSSIAN_SPEAKING, SUPPORTED, PoI18n, build_i18n, locale_for_language_code
from bot.services.account import AccountService
from bot.services.clock import utcnow
from bot.services.login import LoginService, PasswordSeal
from bot.services.notifier import Notifier, TelegramSender
from bot.services.watch import SessionWatch, WatchConfig
from bot.spaces import SpacesClient
from bot.storage.crypto import Cipher, resolve_keys
from bot.storage.engine import create_engine, make_sessionmaker, migrate
from bot.storage.store import Store

log = logging.getLogger(__name__)

USER_COMMANDS = ("login", "status", "logout", "language", "cancel", "help")


class StartupError(Exception):
    """Startup cannot go on; the message is the one line the owner reads."""


class ChatSeenMiddleware(BaseMiddleware):
    """Remembers each private chat that writes: when, in which language, and that it can be
    reached again (a chat that blocked the bot and writes again gets its notices)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        chat = data.get("event_chat")
        user = data.get("event_from_user")
        if isinstance(chat, Chat) and chat.type == "private":
            try:
                data["chat_language"] = await self._store.touch_chat(
                    chat.id,
                    user.id if isinstance(user, User) else None,
                    user.language_code if isinstance(user, User) else None,
                    utcnow(),
                )
            except Exception:
                log.exception("could not record that chat %s wrote", chat.id)
        return await handler(event, data)


class ChatLocaleMiddleware(I18nMiddleware):
    """The chat's chosen language, else the one its Telegram speaks (ru for ru/uk/be/kk)."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        chosen = data.get("chat_language")
        if isinstance(chosen, str) and chosen in SUPPORTED:
            return chosen
        user = data.get("event_from_user")
        return locale_for_language_code(user.language_code if isinstance(user, User) else None)


def build_bot(settings: Settings) -> Bot:
    api = (
        TelegramAPIServer.from_base(settings.telegram_api_url)
        if settings.telegram_api_url
        else None
    )
    session = AiohttpSession(api=api) if api else AiohttpSession()
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def build_fsm_storage(settings: Settings) -> BaseStorage:
    if not settings.redis_url:
        return MemoryStorage()
    from aiogram.fsm.storage.redis import RedisStorage

    return RedisStorage.from_url(settings.redis_url)


async def set_command_menu(bot: Bot, i18n: PoI18n) -> None:
    def commands(locale: str) -> list[BotCommand]:
        return [
            BotCommand(command=name, description=i18n.text(f"command-{name}", locale))
            for name in USER_COMMANDS
        ]

    await bot.set_my_commands(commands("en"), scope=BotCommandScopeDefault())
    for code in sorted(RUSSIAN_SPEAKING):
        await bot.set_my_commands(
            commands("ru"), scope=BotCommandScopeDefault(), language_code=code
        )


def build_dispatcher(
    *,
    settings: Settings,
    store: Store,
    spaces: SpacesClient,
    cipher: Cipher,
    fsm_storage: BaseStorage,
    i18n: PoI18n,
) -> Dispatcher:
    """The Dispatcher with every router and the long-lived objects handlers receive."""
    dp = Dispatcher(
        storage=fsm_storage,
        settings=settings,
        store=store,
        spaces=spaces,
        login_service=LoginService(spaces, store, settings.check_interval_seconds),
        account_service=AccountService(spaces, store),
        password_seal=PasswordSeal(cipher),
    )
    dp.update.outer_middleware(ChatSeenMiddleware(store))
    ChatLocaleMiddleware(i18n).setup(dp)
    dp.include_routers(*routers())
    return dp


def build_watch(
    settings: Settings, store: Store, spaces: SpacesClient, bot: Bot, i18n: PoI18n
) -> SessionWatch:
    sender = TelegramSender(bot, settings.telegram_rate_per_second)
    notifier = Notifier(store, sender, i18n, settings.admin_ids)
    config = WatchConfig(
        interval=settings.check_interval_seconds,
        concurrency=settings.check_concurrency,
        spaces_rate=settings.spaces_rate_per_second,
    )
    return SessionWatch(store, spaces, notifier, config)


class BackgroundTask:
    """A long-running coroutine whose handle is kept and which stops on shutdown."""

    def __init__(
        self, name: str, body: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
    ) -> None:
        self._name = name
        self._body = body
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._body(self._stop), name=self._name)
        self._task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s stopped with an error", self._name, exc_info=task.exception())

    async def stop(self, grace: float = 1.5) -> None:
        if self._task is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        except Exception:
            pass


async def prepare_store(settings: Settings, stack: AsyncExitStack) -> tuple[Store, Cipher]:
    """Open the database, migrate it and prove the key opens it; re-encrypt under key one."""
    from bot.storage.crypto import KeyConfigError
    from bot.storage.store import KeyMismatch

    try:
        cipher = Cipher.from_strings(resolve_keys(settings.key_strings(), settings.data_dir))
    except KeyConfigError as exc:
        raise StartupError(
            f"ENCRYPTION_KEY is not valid: {exc}. Make one with `python -m bot genkey`."
        ) from None
    engine = create_engine(settings.effective_database_url)
    stack.push_async_callback(engine.dispose)
    await migrate(engine)
    store = Store(make_sessionmaker(engine), cipher)
    try:
        created = await store.verify_or_create_canary()
    except KeyMismatch:
        raise StartupError(
            "ENCRYPTION_KEY does not open this database: set the key it was created with "
            "(several keys may be given, comma-separated). Nothing was changed."
        ) from None
    if created:
        log.info("new installation: key canary stored")
    if len(cipher.key_ids) > 1:
        changed = await store.reencrypt_all()
        log.info("key rotation: %d session(s) re-encrypted under the first key", changed)
    return store, cipher


async def run(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        store, cipher = await prepare_store(settings, stack)

        http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.spaces_timeout_seconds),
            follow_redirects=False,
            headers={"User-Agent": "spaces-bridge-bot"},
        )
        stack.push_async_callback(http.aclose)
        spaces = SpacesClient(
            http,
            settings.spaces_base_url,
            rid=settings.spaces_rid,
            timeout=settings.spaces_timeout_seconds,
        )

        bot = build_bot(settings)
        stack.push_async_callback(bot.session.close)
        fsm_storage = build_fsm_storage(settings)
        stack.push_async_callback(fsm_storage.close)

        i18n = build_i18n()
        dp = build_dispatcher(
            settings=settings,
            store=store,
            spaces=spaces,
            cipher=cipher,
            fsm_storage=fsm_storage,
            i18n=i18n,
        )

        watch = build_watch(settings, store, spaces, bot, i18n)
        watch_task = BackgroundTask("session-watch", watch.run)

        async def on_startup(bot: Bot) -> None:
            me = await bot.get_me()
            await set_command_menu(bot, i18n)
            watch_task.start()
            log.info("bot @%s started (id %s)", me.username, me.id)

        async def on_shutdown() -> None:
            await watch_task.stop()

        dp.startup.register(on_startup)
        dp.shutdown.register(on_shutdown)
        await dp.start_polling(bot, handle_signals=True, close_bot_session=False)
        log.info("bot stopped")
