"""The one place that wires things together and runs them."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
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
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import DisabledEventIsolation
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot._telegram_types import build_types_in_use
from bot.config import Settings
from bot.domain import Backlog
from bot.errors import StartupError as StartupError  # re-exported: __main__ catches it here
from bot.handlers import routers
from bot.handlers.in_flight import CountingDispatcher, InFlightUpdates
from bot.handlers.menu import set_chat_menu, set_general_menus
from bot.handlers.middlewares import (
    AccessMiddleware,
    ChatLocaleMiddleware,
    ChatSeenMiddleware,
    CountUpdates,
    FloodMiddleware,
)
from bot.handlers.stray import StrayText
from bot.health import CachedProbe, HealthServer, HealthSources, LoopSource
from bot.locales import PoI18n, build_i18n, chat_locale
from bot.remote import RemoteService
from bot.sendspace import SendspaceClient, SendspaceService
from bot.services.account import AccountService
from bot.services.broadcast import BroadcastService
from bot.services.clock import utcnow
from bot.services.guard import LoginGuard
from bot.services.hotcache import HotCache, Invalidations, RedisInvalidations, invalidation_channel
from bot.services.instance import LEASE_SECONDS, InstanceLease, new_instance_id
from bot.services.lastseen import LastSeen
from bot.services.login import LoginService, PasswordSeal
from bot.services.notifier import Notifier, TelegramSender
from bot.services.owners import OwnerService
from bot.services.registry import ServiceRegistry
from bot.services.watch import SessionWatch, WatchConfig
from bot.services.watchdog import database_step_seconds, pause_or_stop
from bot.spaces import SpacesClient
from bot.spaces.service import SpacesService
from bot.spaces.transport import AiohttpTransport
from bot.storage.crypto import Cipher, resolve_keys
from bot.storage.engine import create_engine, make_sessionmaker, migrate, startup_lock
from bot.storage.fsm import DatabaseStorage
from bot.storage.install import (
    SqliteInUse,
    earlier_install,
    lock_sqlite_file,
    mark_installed,
    sqlite_file,
)
from bot.storage.owners import OwnerStore
from bot.storage.store import Store
from bot.telegram_retry import RetryAfterMiddleware
from bot.webhook import delete_leftover_webhook, open_webhook

try:
    VERSION = package_version("spaces-bridge-bot")
except PackageNotFoundError:  # running from a checkout that was never installed
    VERSION = "0+unknown"

REDIS_PING_SECONDS = 5.0
# At a stop, how long the updates in hand may take to finish (a login waiting for Spaces is
# the longest; one cut short is asked again by the person, never half stored). Polling and
# webhook alike; Telegram's own patience with one webhook request is about a minute.
UPDATE_GRACE_SECONDS = 20.0
# The database probe of /readyz writes; a supervisor asking every second costs one write in this.
DATABASE_PROBE_TTL = 5.0
# A cancelled background task may still give back claimed notices (bounded by the notifier).
CANCEL_CLEANUP_SECONDS = 2.5

# Conversation records kept in process on SQLite (most are "nothing going on").
CONVERSATIONS_KEPT = 10_000

log = logging.getLogger(__name__)


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


def build_fsm_storage(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> BaseStorage:
    """Conversation state survives a restart: in Redis when REDIS_URL is set (several
    processes share it), else in the bot's own database."""
    ttl = settings.conversation_ttl_seconds
    if not settings.redis_url:
        # A SQLite file serves one process, so that process may keep its own copy.
        bind = sessionmaker.kw["bind"]
        only_user = bind.dialect.name == "sqlite"
        size = CONVERSATIONS_KEPT if only_user else 0
        return DatabaseStorage(sessionmaker, ttl_seconds=ttl, cache_size=size)
    from aiogram.fsm.storage.redis import RedisStorage  # checked by check_redis

    seconds = max(1, int(ttl))
    # Keyed by every part of the StorageKey, like the database: the stray-text marker lives
    # under its own destiny, and two bots may share one Redis.
    keys = DefaultKeyBuilder(with_bot_id=True, with_destiny=True)
    return RedisStorage.from_url(
        settings.redis_url, key_builder=keys, state_ttl=seconds, data_ttl=seconds
    )


def build_event_isolation(fsm_storage: BaseStorage) -> BaseEventIsolation:
    """With the conversation in Redis (several instances), one person's updates are handled
    one at a time across all of them. Within one process they are not serialized: a /login
    or /cancel must be able to supersede an attempt still waiting for Spaces."""
    try:
        from aiogram.fsm.storage.redis import RedisStorage
    except ImportError:  # without the redis extra there is no RedisStorage either
        return DisabledEventIsolation()
    if isinstance(fsm_storage, RedisStorage):
        return fsm_storage.create_isolation()
    return DisabledEventIsolation()


async def set_command_menu(bot: Bot, i18n: PoI18n, store: Store, admin_ids: Iterable[int]) -> None:
    """The menus per language and kind of chat; owners also see their commands, in their own
    chat only, in the language they speak there."""
    await set_general_menus(bot, i18n)
    owners = frozenset(admin_ids)
    for admin_id in sorted(owners):
        locale = chat_locale(*await store.chat_languages(admin_id))
        await set_chat_menu(bot, i18n, admin_id, locale, owners)


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
    hot_cache: HotCache
    last_seen: LastSeen
    stray_text: StrayText = field(default_factory=StrayText)
    started_at: float = field(default_factory=time.monotonic)
    version: str = VERSION
    updates_seen: Counter[str] = field(default_factory=Counter)
    in_flight: InFlightUpdates = field(default_factory=InFlightUpdates)
    # This process among the others on the database: the owner of what it claims.
    instance: str = field(default_factory=new_instance_id)

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
    instance: str | None = None,
    invalidations: Invalidations | None = None,
) -> Services:
    """`invalidations`: how instances tell each other of a changed access or language
    (Redis, when several run); without it a change is exact in this process only."""
    instance = instance or new_instance_id()
    sender = TelegramSender(bot, settings.telegram_rate_per_second)
    guard = LoginGuard(
        owners,
        max_failures=settings.login_max_failures,
        window_seconds=settings.login_failure_window_seconds,
        lockout_seconds=settings.login_lockout_seconds,
    )
    last_seen = LastSeen(store)
    hot_cache = HotCache(store, owners, last_seen, invalidations=invalidations)
    accounts = AccountService(remote_services, store, owners, hot_cache)
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
        owner_service=OwnerService(owners, accounts, hot_cache),
        broadcasts=BroadcastService(owners, store, sender, bot, i18n, instance),
        password_seal=seal,
        instance=instance,
        hot_cache=hot_cache,
        last_seen=last_seen,
    )


def build_dispatcher(services: Services, fsm_storage: BaseStorage) -> Dispatcher:
    """The Dispatcher with every router and middleware, fresh each time."""
    settings = services.settings
    dp = CountingDispatcher(
        storage=fsm_storage,
        events_isolation=build_event_isolation(fsm_storage),
        **services.workflow_data(),
    )
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
            services.hot_cache,
            services.i18n,
            mode=settings.access_mode,
            admin_ids=settings.admin_ids,
            stray_text=services.stray_text,
        )
    )
    dp.update.outer_middleware(ChatSeenMiddleware(services.hot_cache))
    ChatLocaleMiddleware(services.i18n).setup(dp)
    dp.include_routers(*routers())
    dp.startup.register(services.stray_text.mark_started)
    return dp


def build_notifier(services: Services) -> Notifier:
    return Notifier(
        services.store,
        services.sender,
        services.i18n,
        services.settings.admin_ids,
        instance=services.instance,
        stats=services.owners.bump,
        database_step_seconds=database_step_seconds(services.settings.database_timeout_seconds),
        service_names=services.remote_services.display_name,
    )


def build_watch(services: Services, notifier: Notifier) -> SessionWatch:
    settings = services.settings
    # The longest request timeout of the services set up bounds one check (and so a claim).
    timeouts = [settings.spaces_timeout_seconds]
    if settings.sendspace_key is not None:
        timeouts.append(settings.sendspace_timeout_seconds)
    config = WatchConfig(
        interval=settings.check_interval_seconds,
        concurrency=settings.check_concurrency,
        spaces_rate=settings.spaces_rate_per_second,
        spaces_timeout=max(timeouts),
        database_step_seconds=database_step_seconds(settings.database_timeout_seconds),
    )
    return SessionWatch(
        services.store,
        services.remote_services,
        notifier,
        config,
        instance=services.instance,
        stats=services.owners.bump,
    )


def build_instance_lease(
    services: Services, notifier: Notifier, watch: SessionWatch
) -> InstanceLease:
    """This process's lease; while it renews it, it takes over what stopped processes left:
    the sessions they were checking, their claimed notices and the broadcasts they were
    sending."""
    return InstanceLease(
        services.store,
        services.instance,
        takeovers=[
            watch.take_over_checks,
            notifier.recover_orphans,
            services.broadcasts.report_interrupted,
        ],
        database_step_seconds=database_step_seconds(services.settings.database_timeout_seconds),
    )


def loop_max_silence(settings: Settings, watch: SessionWatch) -> tuple[float, float]:
    """How long the watch and the outbox may go without a heartbeat before they count as
    stuck: longer than their slowest healthy step, which the watchdog would cancel anyway."""
    config = watch.config
    step = max(config.check_deadline, config.database_step_seconds)
    watch_bound = max(120.0, 3 * min(settings.check_interval_seconds, 60.0), 2 * step)
    # The outbox beats per notice and every few seconds when idle; a 429 pause is the longest
    # healthy wait (Telegram asks for seconds to a minute).
    return watch_bound, max(120.0, 2 * config.database_step_seconds)


def build_health_server(
    services: Services,
    watch: SessionWatch,
    notifier: Notifier,
    bot: Bot,
    fsm_storage: BaseStorage,
    instance: InstanceLease,
) -> HealthServer:
    settings = services.settings

    async def telegram_ok() -> bool:
        await bot.get_me(request_timeout=5)
        return True

    async def redis_ok() -> bool:
        ping = getattr(fsm_storage, "redis", None)
        if ping is None:
            return True
        await ping.ping()
        return True

    def counters() -> dict[str, dict[str, float]]:
        checks = {":".join(labels): float(n) for labels, n in watch.totals.items()}
        return {
            "updates": dict(services.updates_seen),
            "checks": checks,
            "notices": {"sent": float(notifier.delivered)},
            "sends": {k: float(v) for k, v in services.sender.stats.items()},
        }

    async def backlog() -> Backlog:
        return await services.store.backlog(utcnow())

    watch_silence, outbox_silence = loop_max_silence(settings, watch)
    sources = HealthSources(
        database_ok=CachedProbe(services.store.probe, ttl=DATABASE_PROBE_TTL),
        telegram_ok=CachedProbe(telegram_ok, ttl=30.0),
        redis_ok=CachedProbe(redis_ok, ttl=DATABASE_PROBE_TTL) if settings.redis_url else None,
        loops={
            "watch": LoopSource(watch.heartbeat.age, watch_silence),
            "delivery": LoopSource(notifier.heartbeat.age, outbox_silence),
            # Not renewed for a whole lease: the other instances take this one for dead.
            "lease": LoopSource(instance.heartbeat.age, LEASE_SECONDS),
        },
        counters=counters,
        sessions_by_state=services.owners.sessions_by_state,
        backlog=backlog,
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
        """Ask it to stop; after `grace` seconds cancel it, and after as long again move on,
        so a stop never hangs on a task (it is logged then)."""
        if self._task is None:
            return
        self._stop.set()
        done, _ = await asyncio.wait({self._task}, timeout=grace)
        if done:
            return
        self._task.cancel()
        done, _ = await asyncio.wait({self._task}, timeout=grace + CANCEL_CLEANUP_SECONDS)
        if not done:
            log.error("%s did not stop in time; leaving it", self._name)


def check_data_dir(settings: Settings) -> None:
    """DATA_DIR must be writable when it holds the SQLite database or the generated key."""
    if settings.database_url and settings.key_strings():
        return  # nothing is kept there
    path = settings.data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StartupError(
            f"DATA_DIR {str(path)!r} cannot be written ({exc.strerror or exc}): "
            "make it writable for this user or point DATA_DIR elsewhere."
        ) from None


def hold_sqlite_database(settings: Settings, stack: AsyncExitStack) -> None:
    """SQLite serves one bot process: a second one on the same file is refused in one line
    instead of checking every session twice."""
    database = sqlite_file(settings.effective_database_url)
    if database is None:
        return
    try:
        lock = lock_sqlite_file(database)
    except SqliteInUse as exc:
        raise StartupError(
            f"Not starting: the SQLite database {database} is in use by {exc.holder}. SQLite "
            "serves one bot process; to run several instances use PostgreSQL and Redis "
            "(README, 'Several instances')."
        ) from None
    if lock is not None:
        stack.callback(lock.close)


def check_health_port(settings: Settings) -> None:
    """A HEALTH_PORT taken by another program is said now, not after Telegram answered."""
    if not settings.health_port:
        return  # off, or 0: any free port
    try:
        addresses = socket.getaddrinfo(
            settings.health_host, settings.health_port, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        raise StartupError(
            f"HEALTH_HOST {settings.health_host!r} is not an address of this machine ({exc})."
        ) from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # As the server itself binds: a port left in TIME_WAIT by a restart is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise StartupError(
                    f"HEALTH_PORT {settings.health_port} on {settings.health_host} cannot be "
                    f"used ({exc.strerror or exc}): another program listens there; choose "
                    "another port or leave HEALTH_PORT empty."
                ) from None


async def check_redis(settings: Settings) -> None:
    """Redis is asked once at startup, so a wrong REDIS_URL is one line, not a failure on
    every message."""
    if not settings.redis_url:
        return
    try:
        from redis.asyncio import Redis
        from redis.exceptions import RedisError
    except ImportError:
        raise StartupError(
            "REDIS_URL is set but the redis package is not installed: "
            "`pip install -e '.[redis]'`, or leave REDIS_URL empty."
        ) from None
    try:
        client = Redis.from_url(settings.redis_url, socket_connect_timeout=REDIS_PING_SECONDS)
    except ValueError as exc:
        raise StartupError(f"REDIS_URL is not a Redis URL ({exc}).") from None
    try:
        await asyncio.wait_for(client.ping(), REDIS_PING_SECONDS)
    except (RedisError, OSError, TimeoutError) as exc:
        raise StartupError(
            f"REDIS_URL: Redis does not answer ({_first_line(exc) or type(exc).__name__}): "
            "check the address, or leave REDIS_URL empty to keep conversations in the database."
        ) from None
    finally:
        await client.aclose()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else ""


async def open_database(settings: Settings, stack: AsyncExitStack) -> AsyncEngine:
    """The engine, once the database has answered; one that cannot be opened is one
    StartupError line naming DATABASE_URL (never its value: it may hold a password)."""
    try:
        engine = create_engine(
            settings.effective_database_url, timeout=settings.database_timeout_seconds
        )
    except ModuleNotFoundError as exc:
        raise StartupError(
            f"DATABASE_URL needs the {exc.name} package: `pip install -e '.[postgres]'`."
        ) from None
    stack.push_async_callback(engine.dispose)
    try:
        async with engine.connect():
            pass
    except (OSError, SQLAlchemyError) as exc:
        reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        raise StartupError(
            f"DATABASE_URL: the database cannot be opened ({_first_line(reason)})."
        ) from None
    return engine


async def prepare_store(
    settings: Settings, stack: AsyncExitStack, *, new_database: bool = False
) -> tuple[Store, OwnerStore, Cipher, async_sessionmaker[AsyncSession]]:
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
    engine = await open_database(settings, stack)
    sessionmaker = make_sessionmaker(engine)
    store = Store(sessionmaker, cipher)
    wrong_key = StartupError(
        "ENCRYPTION_KEY does not open this database: set the key it was created with "
        "(several keys may be given, comma-separated). Nothing was changed."
    )
    # Instances starting at once on PostgreSQL take turns: one migrates, one creates the
    # canary; the others then find both done.
    async with startup_lock(engine):
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
    return store, OwnerStore(sessionmaker), cipher, sessionmaker


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
            await pause_or_stop(stop, delay)
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
        # Every setting that can be checked without Telegram is checked before it.
        check_data_dir(settings)
        hold_sqlite_database(settings, stack)
        check_health_port(settings)
        await check_redis(settings)
        webhook = open_webhook(settings)  # a busy port stops here too
        if webhook is not None:
            stack.callback(webhook.close)
        store, owners, cipher, sessionmaker = await prepare_store(
            settings, stack, new_database=new_database
        )
        fsm_storage = build_fsm_storage(settings, sessionmaker)
        stack.push_async_callback(fsm_storage.close)

        # The services' connection pool; see bot/spaces/transport.py
        transport = AiohttpTransport()
        stack.push_async_callback(transport.aclose)
        remote_services = build_remote_services(settings, transport)
        bot = build_bot(settings)
        stack.push_async_callback(bot.session.close)
        build_types_in_use()  # before the first update, not while it waits for an answer
        if not await wait_for_telegram(bot):
            return
        i18n = build_i18n(settings.zone)
        invalidations = None
        if settings.redis_url:
            invalidations = RedisInvalidations(settings.redis_url, invalidation_channel(bot.id))
            stack.push_async_callback(invalidations.close)
        services = build_services(
            settings=settings,
            store=store,
            owners=owners,
            remote_services=remote_services,
            cipher=cipher,
            bot=bot,
            i18n=i18n,
            invalidations=invalidations,
        )
        dp = build_dispatcher(services, fsm_storage)
        notifier = build_notifier(services)
        watch = build_watch(services, notifier)
        instance = build_instance_lease(services, notifier, watch)
        # Before anything is claimed; on SQLite this process is the only one (its lock file).
        await instance.join(sole=sqlite_file(settings.effective_database_url) is not None)
        log.info("instance %s", instance.id)
        background = [
            BackgroundTask("instance-lease", instance.run),
            BackgroundTask("notice-outbox", notifier.run),
            BackgroundTask("session-watch", watch.run),
            BackgroundTask("last-seen", services.last_seen.run),
        ]
        if invalidations is not None:
            background.append(BackgroundTask("hot-cache-changes", services.hot_cache.listen))
        health = (
            build_health_server(services, watch, notifier, bot, fsm_storage, instance)
            if settings.health_port is not None
            else None
        )
        # HEALTH_PORT equal to WEBHOOK_PORT: one server answers both.
        shares_port = webhook is not None and settings.health_port == settings.webhook_port

        async def on_startup(bot: Bot) -> None:
            me = await bot.get_me()
            await set_command_menu(bot, i18n, store, settings.admin_ids)
            if health is not None and not shares_port:
                await health.start()
            for task in background:
                task.start()
            log.info("bot @%s started (id %s)", me.username, me.id)

        async def on_shutdown() -> None:
            # Updates in hand finish first: their conversation lock, state and last seen are
            # stored before anything closes under them.
            left = await services.in_flight.drain(UPDATE_GRACE_SECONDS)
            if left:
                log.warning("%d update(s) still being handled at stop were cut short", left)
            # Together, so a stop takes one grace period, not one per task.
            await asyncio.gather(
                services.broadcasts.stop_all(), *(task.stop() for task in background)
            )
            # Claims are given back now: the other instances need not wait for the lease.
            await instance.leave()
            if health is not None:
                await health.stop()

        dp.startup.register(on_startup)
        dp.shutdown.register(on_shutdown)
        if webhook is not None:
            await webhook.serve(bot, dp, mount=health.mount if health and shares_port else None)
        else:
            await delete_leftover_webhook(bot)
            await dp.start_polling(bot, handle_signals=True, close_bot_session=False)
        log.info("bot stopped")
