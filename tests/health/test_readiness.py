"""/readyz as bot.app wires it, against a real database, Redis and the fake Telegram."""

from __future__ import annotations

import functools
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import (
    build_bot,
    build_fsm_storage,
    build_health_server,
    build_instance_lease,
    build_notifier,
    build_remote_services,
    build_services,
    build_watch,
)
from bot.config import Settings
from bot.health import HealthServer
from bot.locales import build_i18n
from bot.spaces.transport import AiohttpTransport
from bot.storage.crypto import Cipher
from bot.storage.engine import create_engine, make_sessionmaker, migrate
from bot.storage.owners import OwnerStore
from bot.storage.store import Store
from tests.conftest import close_bot
from tests.external import pg_url, redis_url  # noqa: F401  (fixtures)
from tests.fakes.telegram_server import FakeTelegram


@dataclass
class Ready:
    server: HealthServer
    beat: Callable[[], None]  # both loops report progress

    async def checks(self) -> tuple[int, dict[str, str]]:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{self.server.port}/readyz")
        return response.status_code, response.json()["checks"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def ready_cleanup(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[Any]]:
    monkeypatch.setattr("bot.app.DATABASE_PROBE_TTL", 0.0)  # each request probes anew
    closers: list[Any] = []
    yield closers
    for close in reversed(closers):
        await close()


async def open_ready(
    tg: FakeTelegram, cipher: Cipher, engine: AsyncEngine, closers: list[Any], **overrides: Any
) -> Ready:
    settings = Settings(
        _env_file=None,
        bot_token=tg.token,
        telegram_api_url=tg.url,
        **overrides,
    )
    transport = AiohttpTransport()
    closers.append(transport.aclose)
    bot = build_bot(settings)
    closers.append(functools.partial(close_bot, bot))
    store = Store(make_sessionmaker(engine), cipher)
    services = build_services(
        settings=settings,
        store=store,
        owners=OwnerStore(make_sessionmaker(engine)),
        remote_services=build_remote_services(settings, transport),
        cipher=cipher,
        bot=bot,
        i18n=build_i18n(),
    )
    notifier = build_notifier(services)
    watch = build_watch(services, notifier)
    fsm_storage = build_fsm_storage(settings, make_sessionmaker(engine))
    closers.append(fsm_storage.close)
    lease = build_instance_lease(services, notifier, watch)
    server = build_health_server(services, watch, notifier, bot, fsm_storage, lease)
    await server.start()
    closers.append(server.stop)

    def beat() -> None:
        watch.heartbeat.beat()
        notifier.heartbeat.beat()
        lease.heartbeat.beat()

    beat()
    return Ready(server, beat)


async def test_ready_with_a_working_database(
    tg: FakeTelegram, cipher: Cipher, engine: AsyncEngine, ready_cleanup: list[Any]
) -> None:
    ready = await open_ready(tg, cipher, engine, ready_cleanup)
    status, checks = await ready.checks()
    assert status == 200, checks
    assert set(checks) == {"database", "telegram", "watch", "delivery", "lease"}


async def test_not_ready_when_the_database_file_is_deleted(
    tg: FakeTelegram,
    cipher: Cipher,
    engine: AsyncEngine,
    db_url: str,
    tmp_path: Path,
    ready_cleanup: list[Any],
) -> None:
    ready = await open_ready(tg, cipher, engine, ready_cleanup)
    (tmp_path / "bot.sqlite3").unlink()
    # The open connections would go on reading and writing the deleted file.
    status, checks = await ready.checks()
    assert status == 503
    assert checks["database"] == "error"


async def test_not_ready_when_the_database_takes_no_writes(
    tg: FakeTelegram, cipher: Cipher, db_url: str, ready_cleanup: list[Any]
) -> None:
    engine = create_engine(db_url)
    ready_cleanup.append(engine.dispose)
    await migrate(engine)
    read_only = False

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if read_only:  # as a read-only mount or a full disk would: reads work, writes fail
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA query_only=ON")
            cursor.close()

    event.listen(engine.sync_engine, "connect", on_connect)
    ready = await open_ready(tg, cipher, engine, ready_cleanup)
    assert (await ready.checks())[0] == 200
    read_only = True
    await engine.dispose()  # new connections from now on
    status, checks = await ready.checks()
    assert status == 503
    assert checks["database"] == "error"


async def test_not_ready_when_postgres_is_read_only(
    tg: FakeTelegram,
    cipher: Cipher,
    pg_url: str,  # noqa: F811
    ready_cleanup: list[Any],
) -> None:
    engine = create_engine(pg_url)
    ready_cleanup.append(engine.dispose)
    await migrate(engine)
    ready = await open_ready(tg, cipher, engine, ready_cleanup)
    assert (await ready.checks())[0] == 200
    async with engine.connect() as conn:
        name = engine.url.database
        await conn.exec_driver_sql(
            f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'
        )
        await conn.commit()
    await engine.dispose()
    status, checks = await ready.checks()
    assert status == 503
    assert checks["database"] == "error"


async def test_not_ready_when_redis_is_configured_and_unreachable(
    tg: FakeTelegram, cipher: Cipher, engine: AsyncEngine, ready_cleanup: list[Any]
) -> None:
    ready = await open_ready(
        tg, cipher, engine, ready_cleanup, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    status, checks = await ready.checks()
    assert status == 503
    assert checks["redis"] == "error"


async def test_ready_when_redis_answers(
    tg: FakeTelegram,
    cipher: Cipher,
    engine: AsyncEngine,
    redis_url: str,  # noqa: F811
    ready_cleanup: list[Any],
) -> None:
    ready = await open_ready(tg, cipher, engine, ready_cleanup, redis_url=redis_url)
    status, checks = await ready.checks()
    assert status == 200, checks
    assert checks["redis"] == "ok"
