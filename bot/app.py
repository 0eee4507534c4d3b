"""The one place that wires things together and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, fields
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import httpx
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage

from bot._telegram_types import build_types_in_use
from bot.config import Settings
from bot.handlers import routers
from bot.handlers.menu import set_chat_menu, set_general_menus
from bot.handlers.middlewares import (
    AccessMiddleware,
    ChatLocaleMiddleware,
    ChatSeenMiddleware,
    CountUpdates,
    FloodMiddleware,
)
from bot.health import CachedProbe, HealthServer, HealthSources
from bot.locales import PoI18n, build_i18n, locale_for_language_code
from bot.remote import RemoteService
from bot.sendspace import SendspaceClient, SendspaceService
from bot.services.account import AccountService
from bot.services.broadcast import BroadcastService
from bot.services.guard import LoginGuard
from bot.services.login import LoginService, PasswordSeal
from bot.services.notifier import Notifier, TelegramSender
from bot.services.owners import OwnerService
from bot.services.registry import ServiceRegistry
from bot.services.watch import SessionWatch, WatchConfig
from bot.spaces import SpacesClient
from bot.spaces.service import SpacesService
from bot.spaces.transport import AiohttpTransport
from bot.storage.crypto import Cipher, resolve_keys
from bot.storage.engine import create_engine, make_sessionmaker, migrate
from bot.storage.install import earlier_install, mark_installed, sqlite_file
from bot.storage.owners import OwnerStore
from bot.storage.store import Store
from bot.telegram_retry import RetryAfterMiddleware

try:
    VERSION = package_version("spaces-bridge-bot")
except PackageNotFoundError:  # running from a checkout that was never installed
    VERSION = "0+unknown"

log = logging.getLogger(__name__)


class StartupError(Exception):
    """Startup cannot go on; the message is the one line the owner reads."""


def build_bot(settings: Settings) -> Bot:
    api = (
        TelegramAPIServer.from_base(settings.telegram_api_url)
        if settings.telegram_api_url
        else None
    )
    session = AiohttpSession(api=api) if api else AiohttpSession()
    session.middleware(RetryAfterMiddleware())
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


async def set_command_menu(bot: Bot, i18n: PoI18n, store: Store, admin_ids: Iterable[int]) -> None:
    """The menus per language and kind of chat; owners also see their commands, in their own
    chat only, in the language they speak there."""
    await set_general_menus(bot, i18n)
    owners = frozenset(admin_ids)
    for admin_id in sorted(owners):
        chosen, reported = await store.chat_languages(admin_id)
        await set_chat_menu(
            bot, i18n, admin_id, chosen or locale_for_language_code(reported), owners
        )


@dataclass
class Services:
    """The long-lived objects handlers receive (through the Dispatcher's workflow data)."""

    settings: Settings
    store: Store
    owners: OwnerStore
    remote_services: ServiceRegistry
    i18n: PoI18n
    sender: TelegramSender
    login_service: LoginService
    account_service: AccountService
    owner_service: OwnerService
    broadcasts: BroadcastService
    password_seal: PasswordSeal
    started_at: float = field(default_factory=time.monotonic)
    version: str = VERSION
    updates_seen: Counter[str] = field(default_factory=Counter)

    def workflow_data(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def build_services(
    *,
    settings: Settings,
    store: Store,
    owners: OwnerStore,
    remote_services: ServiceRegistry,
    cipher: Cipher,
    bot: Bot,
    i18n: PoI18n,
) -> Services:
    sender = TelegramSender(bot, settings.telegram_rate_per_second)
    guard = LoginGuard(
        owners,
        max_failures=settings.login_max_failures,
        window_seconds=settings.login_failure_window_seconds,
        lockout_seconds=settings.login_lockout_seconds,
    )
    accounts = AccountService(remote_services, store, owners)
    seal = PasswordSeal(cipher)
    return Services(
        settings=settings,
        store=store,
        owners=owners,
        remote_services=remote_services,
        i18n=i18n,
        sender=sender,
        login_service=LoginService(
            remote_services, store, settings.check_interval_seconds, guard, seal
        ),
        account_service=accounts,
        owner_service=OwnerService(owners, accounts),
        broadcasts=BroadcastService(owners, store, sender, bot, i18n),
        password_seal=seal,
    )


def build_dispatcher(services: Services, fsm_storage: BaseStorage) -> Dispatcher:
    """The Dispatcher with every router and middleware, fresh each time."""
    settings = services.settings
    dp = Dispatcher(storage=fsm_storage, **services.workflow_data())
    flood = FloodMiddleware(
        services.i18n,
        settings.flood_max_messages,
        settings.flood_window_seconds,
        exempt=settings.admin_ids,
    )
    dp.update.outer_middleware(CountUpdates(services.updates_seen))
    dp.update.outer_middleware(flood)
    dp.update.outer_middleware(
        AccessMiddleware(
            services.owners,
            services.i18n,
            mode=settings.access_mode,
            admin_ids=settings.admin_ids,
        )
    )
    dp.update.outer_middleware(ChatSeenMiddleware(services.store))
    ChatLocaleMiddleware(services.i18n).setup(dp)
    dp.include_routers(*routers())
    return dp


def build_watch(services: Services) -> SessionWatch:
    settings = services.settings
    notifier = Notifier(
        services.store,
        services.sender,
        services.i18n,
        settings.admin_ids,
        service_names=services.remote_services.display_name,
    )
    config = WatchConfig(
        interval=settings.check_interval_seconds,
        concurrency=settings.check_concurrency,
        spaces_rate=settings.spaces_rate_per_second,
    )
    return SessionWatch(
        services.store, services.remote_services, notifier, config, stats=services.owners.bump
    )


def build_health_server(
    services: Services, watch: SessionWatch, bot: Bot, dp: Dispatcher
) -> HealthServer:
    settings = services.settings

    async def telegram_ok() -> bool:
        await bot.get_me(request_timeout=5)
        return True

    def counters() -> dict[str, dict[str, float]]:
        checks = {":".join(labels): float(n) for labels, n in watch.totals.items()}
        return {
            "updates": dict(services.updates_seen),
            "checks": checks,
            "notices": {"sent": float(watch.notices_sent)},
            "sends": {k: float(v) for k, v in services.sender.stats.items()},
        }

    sources = HealthSources(
        database_ok=services.store.ping,
        telegram_ok=CachedProbe(telegram_ok, ttl=30.0),
        last_sweep_at=lambda: watch.last_sweep_at,
        sweep_max_age_seconds=max(120.0, 3 * min(settings.check_interval_seconds, 60.0)),
        counters=counters,
        sessions_by_state=services.owners.sessions_by_state,
        version=services.version,
        services=services.remote_services.ids,
    )
    return HealthServer(sources, host=settings.health_host, port=settings.health_port or 0)


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


async def prepare_store(
    settings: Settings, stack: AsyncExitStack, *, new_database: bool = False
) -> tuple[Store, OwnerStore, Cipher]:
    """Open the database, prove the key opens it, migrate it; re-encrypt under key one.

    A database that is missing or empty where an earlier installation left its traces is
    refused unless `new_database` says an empty one is wanted.
    """
    from bot.storage.crypto import KeyConfigError
    from bot.storage.store import KeyMismatch

    url = settings.effective_database_url
    # Looked at before a key is generated or a database file created: both are traces.
    trace = earlier_install(settings.data_dir)
    database_file = sqlite_file(url)
    if trace is not None and not new_database:
        if database_file is not None and not database_file.exists():
            raise StartupError(
                _lost_database(f"the database file {database_file} is missing", trace)
            )
    try:
        cipher = Cipher.from_strings(resolve_keys(settings.key_strings(), settings.data_dir))
    except KeyConfigError as exc:
        raise StartupError(
            f"ENCRYPTION_KEY is not valid: {exc}. Make one with `python -m bot genkey`."
        ) from None
    engine = create_engine(url, timeout=settings.database_timeout_seconds)
    stack.push_async_callback(engine.dispose)
    sessionmaker = make_sessionmaker(engine)
    store = Store(sessionmaker, cipher)
    wrong_key = StartupError(
        "ENCRYPTION_KEY does not open this database: set the key it was created with "
        "(several keys may be given, comma-separated). Nothing was changed."
    )
    try:
        # Before any migration, so that "nothing was changed" is true.
        known = await store.has_canary()
    except KeyMismatch:
        raise wrong_key from None
    if not known and trace is not None and not new_database:
        raise StartupError(_lost_database("the database is empty", trace))
    await migrate(engine)
    try:
        created = await store.verify_or_create_canary()
    except KeyMismatch:
        raise wrong_key from None
    if created:
        log.info("new installation: key canary stored")
    if database_file is not None or settings.data_dir.exists():
        mark_installed(settings.data_dir)
    # Rows carried over from spaces_sessions are re-sealed under the new context now, before
    # the watch or a handler reads one (see storage/keys.py for why not lazily on read).
    resealed = await store.reseal_legacy()
    if resealed:
        log.info("%d session(s) re-sealed for the per-account store", resealed)
    if len(cipher.key_ids) > 1:
        changed = await store.reencrypt_all()
        log.info("key rotation: %d session(s) re-encrypted under the first key", changed)
    return store, OwnerStore(sessionmaker), cipher


def _lost_database(what: str, trace: Path) -> str:
    return (
        f"Not starting: {what}, but {trace} shows this bot ran here before, so its sessions "
        "would be lost without a word. Restore the database from a backup, or start once "
        "with `python -m bot --new-database` to begin with an empty one."
    )


async def wait_for_telegram(bot: Bot, max_delay: float = 60.0) -> bool:
    """Check the token before anything starts; wait while Telegram cannot be reached.

    Returns False when a stop signal came while waiting. A refused token is a StartupError.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        delay = 1.0
        while not stop.is_set():
            try:
                await bot.get_me()
                return True
            except TelegramUnauthorizedError:
                raise StartupError(
                    "BOT_TOKEN was refused by Telegram: copy the token again from @BotFather."
                ) from None
            except (TelegramNetworkError, TelegramServerError, TelegramRetryAfter) as exc:
                log.warning("Telegram cannot be reached (%s); trying again in %.0f s", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(max_delay, delay * 2)
        return False
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def build_remote_services(
    settings: Settings, transport: httpx.AsyncBaseTransport
) -> ServiceRegistry:
    """Spaces always; sendspace when its API key is set. /login offers them in this order."""
    services: list[RemoteService] = [SpacesService(build_spaces_client(settings, transport))]
    key = settings.sendspace_key
    if key is not None:
        client = SendspaceClient(
            transport,
            key,
            settings.sendspace_base_url,
            timeout=settings.sendspace_timeout_seconds,
            user_agent=f"spaces-bridge-bot/{VERSION}",
        )
        services.append(SendspaceService(client))
    return ServiceRegistry(services)


def build_spaces_client(settings: Settings, transport: httpx.AsyncBaseTransport) -> SpacesClient:
    return SpacesClient(
        transport,
        settings.spaces_mirrors,
        rid=settings.spaces_rid,
        timeout=settings.spaces_timeout_seconds,
        user_agent=f"spaces-bridge-bot/{VERSION}",
    )


async def run(settings: Settings, *, new_database: bool = False) -> None:
    async with AsyncExitStack() as stack:
        store, owners, cipher = await prepare_store(settings, stack, new_database=new_database)

        # The services' connection pool; see bot/spaces/transport.py
        transport = AiohttpTransport()
        stack.push_async_callback(transport.aclose)
        remote_services = build_remote_services(settings, transport)
        bot = build_bot(settings)
        stack.push_async_callback(bot.session.close)
        build_types_in_use()  # before the first update, not while it waits for an answer
        if not await wait_for_telegram(bot):
            return
        fsm_storage = build_fsm_storage(settings)
        stack.push_async_callback(fsm_storage.close)

        i18n = build_i18n(settings.zone)
        services = build_services(
            settings=settings,
            store=store,
            owners=owners,
            remote_services=remote_services,
            cipher=cipher,
            bot=bot,
            i18n=i18n,
        )
        dp = build_dispatcher(services, fsm_storage)
        watch = build_watch(services)
        watch_task = BackgroundTask("session-watch", watch.run)
        health = (
            build_health_server(services, watch, bot, dp)
            if settings.health_port is not None
            else None
        )

        async def on_startup(bot: Bot) -> None:
            me = await bot.get_me()
            await set_command_menu(bot, i18n, store, settings.admin_ids)
            if health is not None:
                await health.start()
            watch_task.start()
            await services.broadcasts.report_interrupted()
            log.info("bot @%s started (id %s)", me.username, me.id)

        async def on_shutdown() -> None:
            await services.broadcasts.stop_all()
            await watch_task.stop()
            if health is not None:
                await health.stop()

        dp.startup.register(on_startup)
        dp.shutdown.register(on_shutdown)
        await dp.start_polling(bot, handle_signals=True, close_bot_session=False)
        log.info("bot stopped")
