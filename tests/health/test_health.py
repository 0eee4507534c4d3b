from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.domain import Backlog
from bot.health import CachedProbe, HealthServer, HealthSources, LoopSource
from bot.remote import all_outcome_labels


@dataclass
class Fake:
    """What the sources answer; tests change it between requests."""

    database: bool | Exception = True
    telegram: bool | Exception = True
    redis: bool | Exception | None = None  # None: REDIS_URL not set
    # Seconds since each loop's last heartbeat (None: none yet).
    watch_age: float | None = 1.0
    delivery_age: float | None = 1.0
    max_age: float = 60.0
    backlog: Backlog | None = None
    counters: dict[str, dict[str, float]] = field(
        default_factory=lambda: {
            "updates": {"message": 3, "callback_query": 1},
            "checks": {
                "spaces:confirmed:": 5,
                "spaces:ended:expired": 1,
                "sendspace:transient:timeout": 2,
            },
            "notices": {"sent": 4},
            "sends": {"delivered": 2, "blocked": 1, "failed": 0, "rejected": 0, "retry_after": 7},
        }
    )
    sessions: dict[str, int] = field(
        default_factory=lambda: {"active": 10, "unconfirmed": 2, "ended": 3}
    )
    version: str = "1.2.3"

    def sources(self) -> HealthSources:
        async def answer(value: bool | Exception) -> bool:
            if isinstance(value, Exception):
                raise value
            return value

        async def sessions() -> Mapping[str, int]:
            return self.sessions

        async def backlog() -> Backlog:
            assert self.backlog is not None
            return self.backlog

        redis = self.redis
        return HealthSources(
            database_ok=lambda: answer(self.database),
            telegram_ok=lambda: answer(self.telegram),
            loops={
                "watch": LoopSource(lambda: self.watch_age, self.max_age),
                "delivery": LoopSource(lambda: self.delivery_age, self.max_age),
            },
            counters=lambda: self.counters,
            sessions_by_state=sessions,
            version=self.version,
            services=("spaces", "sendspace"),
            redis_ok=None if redis is None else (lambda: answer(redis)),
            backlog=None if self.backlog is None else backlog,
        )


def checks(service: str, verdict: str, reason: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The checks counter's sample for bot.remote's (verdict, reason) of one service."""
    labels = (("reason", reason), ("service", service), ("verdict", verdict))
    return ("spaces_bot_checks_total", labels)


@pytest.fixture
def fake() -> Fake:
    return Fake()


async def running(fake: Fake) -> HealthServer:
    server = HealthServer(fake.sources(), port=0)
    await server.start()
    return server


@pytest.fixture
async def server(fake: Fake) -> AsyncIterator[HealthServer]:
    server = await running(fake)
    yield server
    await server.stop()


@pytest.fixture
async def client(server: HealthServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        yield client


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_every_check_passes(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {
        "database": "ok",
        "telegram": "ok",
        "watch": "ok",
        "delivery": "ok",
    }


@pytest.mark.parametrize(
    ("change", "check", "result"),
    [
        ({"database": False}, "database", "fail"),
        ({"telegram": False}, "telegram", "fail"),
        ({"database": OSError("disk gone")}, "database", "error"),
        ({"telegram": RuntimeError("getMe refused")}, "telegram", "error"),
        ({"watch_age": 61.0}, "watch", "stuck"),
        ({"delivery_age": 61.0}, "delivery", "stuck"),
        ({"redis": OSError("Connection refused")}, "redis", "error"),
        ({"redis": False}, "redis", "fail"),
    ],
)
async def test_not_ready_names_the_failing_check(
    fake: Fake, change: dict[str, object], check: str, result: str
) -> None:
    for name, value in change.items():
        setattr(fake, name, value)
    server = await running(fake)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/readyz")
    finally:
        await server.stop()
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks[check] == result
    assert [name for name, value in checks.items() if value != "ok"] == [check]


async def test_a_raising_probe_is_logged_once_without_traceback(
    fake: Fake, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake.database = OSError("disk gone")
    with caplog.at_level(logging.INFO, logger="bot.health"):
        for _ in range(3):
            assert (await client.get("/readyz")).status_code == 503
        fake.database = True
        assert (await client.get("/readyz")).status_code == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "database" in warnings[0].getMessage()
    assert warnings[0].exc_info is None
    assert any("passes again" in r.getMessage() for r in caplog.records)


async def test_a_hanging_probe_counts_as_not_ready(fake: Fake) -> None:
    sources = fake.sources()

    async def hangs() -> bool:
        await asyncio.sleep(10)
        return True

    server = HealthServer(replace(sources, telegram_ok=hangs), port=0, probe_timeout=0.1)
    await server.start()
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["telegram"] == "error"
    finally:
        await server.stop()


async def test_redis_is_asked_only_when_configured(client: httpx.AsyncClient) -> None:
    assert "redis" not in (await client.get("/readyz")).json()["checks"]


async def test_waits_for_the_first_heartbeat_during_the_grace_period(fake: Fake) -> None:
    fake.watch_age = None
    fake.delivery_age = 0.0
    fake.max_age = 3.0  # room for a busy machine between the start and the first request
    server = await running(fake)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            early = await client.get("/readyz")
            assert early.status_code == 200
            assert early.json()["checks"]["watch"] == "pending"

            await asyncio.sleep(3.1)
            late = await client.get("/readyz")
            assert late.status_code == 503
            assert late.json()["checks"]["watch"] == "never"

            fake.watch_age = 0.0
            assert (await client.get("/readyz")).status_code == 200
    finally:
        await server.stop()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_expose_the_snapshot(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)
    expected = {
        ("spaces_bot_updates_total", (("type", "message"),)): 3,
        ("spaces_bot_updates_total", (("type", "callback_query"),)): 1,
        checks("spaces", "confirmed", ""): 5,
        checks("spaces", "ended", "expired"): 1,
        checks("sendspace", "transient", "timeout"): 2,
        checks("sendspace", "ended", "expired"): 0,  # every pair of each service, from zero
        ("spaces_bot_notices_sent_total", ()): 4,
        ("spaces_bot_telegram_429_total", ()): 7,
        ("spaces_bot_sends_total", (("outcome", "delivered"),)): 2,
        ("spaces_bot_sends_total", (("outcome", "blocked"),)): 1,
        ("spaces_bot_sends_total", (("outcome", "failed"),)): 0,
        ("spaces_bot_sends_total", (("outcome", "rejected"),)): 0,
        ("spaces_bot_sessions", (("state", "active"),)): 10,
        ("spaces_bot_sessions", (("state", "unconfirmed"),)): 2,
        ("spaces_bot_sessions", (("state", "ended"),)): 3,
        ("spaces_bot_build_info", (("version", "1.2.3"),)): 1,
    }
    for key, value in expected.items():
        assert got.get(key) == value, key
    assert ("spaces_bot_sends_total", (("outcome", "retry_after"),)) not in got
    assert got[("spaces_bot_uptime_seconds", ())] >= 0


async def test_metrics_show_how_far_behind_the_watch_is(fake: Fake) -> None:
    now = datetime.now(UTC)
    fake.backlog = Backlog(
        overdue_sessions=1900,
        oldest_overdue_since=now - timedelta(minutes=20),
        pending_notices=3,
        oldest_pending_since=now - timedelta(seconds=30),
    )
    server = await running(fake)
    try:
        async with httpx.AsyncClient() as client:
            got = samples((await client.get(f"http://127.0.0.1:{server.port}/metrics")).text)
    finally:
        await server.stop()
    assert got[("spaces_bot_watch_overdue_sessions", ())] == 1900
    assert 1199 <= got[("spaces_bot_watch_oldest_overdue_seconds", ())] <= 1300
    assert got[("spaces_bot_notices_pending", ())] == 3
    assert 29 <= got[("spaces_bot_notices_oldest_pending_seconds", ())] <= 100


async def test_metrics_read_the_counters_at_scrape_time(
    fake: Fake, client: httpx.AsyncClient
) -> None:
    fake.counters = {"updates": {"message": 9}}
    fake.sessions = {"active": 1}
    got = samples((await client.get("/metrics")).text)
    assert got[("spaces_bot_updates_total", (("type", "message"),))] == 9
    # Known labels are exported at zero before anything happened.
    for service in ("spaces", "sendspace"):
        for verdict, reason in all_outcome_labels():
            assert got[checks(service, verdict, reason)] == 0
    assert got[("spaces_bot_sends_total", (("outcome", "delivered"),))] == 0
    assert got[("spaces_bot_sessions", (("state", "ended"),))] == 0
    assert got[("spaces_bot_sessions", (("state", "active"),))] == 1


async def test_metrics_survive_a_failing_session_count(fake: Fake) -> None:
    sources = fake.sources()

    async def broken() -> Mapping[str, int]:
        raise OSError("database gone")

    server = HealthServer(replace(sources, sessions_by_state=broken), port=0)
    await server.start()
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/metrics")
        assert response.status_code == 200
        assert "spaces_bot_updates_total" in response.text
        assert "spaces_bot_sessions{" not in response.text
    finally:
        await server.stop()


async def test_two_servers_in_one_process_do_not_clash() -> None:
    first, second = Fake(version="1"), Fake(version="2")
    second.counters = {"updates": {"message": 42}}
    servers = [await running(first), await running(second)]
    try:
        assert servers[0].port != servers[1].port
        async with httpx.AsyncClient() as client:
            texts = [(await client.get(f"http://127.0.0.1:{s.port}/metrics")).text for s in servers]
        assert samples(texts[0])[("spaces_bot_updates_total", (("type", "message"),))] == 3
        assert samples(texts[1])[("spaces_bot_updates_total", (("type", "message"),))] == 42
        assert 'spaces_bot_build_info{version="1"}' in texts[0]
        assert 'spaces_bot_build_info{version="2"}' in texts[1]
    finally:
        for server in servers:
            await server.stop()


async def test_stop_frees_the_port(fake: Fake) -> None:
    server = await running(fake)
    port = server.port
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    await server.stop()
    await server.stop()  # twice is harmless

    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/healthz")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    again = HealthServer(fake.sources(), port=port)
    await again.start()
    try:
        assert again.port == port
    finally:
        await again.stop()


def test_port_before_start_is_an_error(fake: Fake) -> None:
    with pytest.raises(RuntimeError):
        _ = HealthServer(fake.sources(), port=0).port


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_cached_probe_calls_at_most_once_per_ttl() -> None:
    calls: list[int] = []
    answers = [True, False]

    async def probe() -> bool:
        calls.append(1)
        await asyncio.sleep(0.01)
        return answers[len(calls) - 1]

    clock = Clock()
    cached = CachedProbe(probe, ttl=30, clock=clock)
    assert list(await asyncio.gather(cached(), cached(), cached())) == [True, True, True]
    assert len(calls) == 1
    clock.now = 29.9
    assert await cached() is True
    clock.now = 30.1
    assert await cached() is False
    assert len(calls) == 2


async def test_cached_probe_remembers_a_failure() -> None:
    calls: list[int] = []

    async def probe() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise TimeoutError("getMe timed out")
        return True

    clock = Clock()
    cached = CachedProbe(probe, ttl=30, clock=clock)
    with pytest.raises(TimeoutError):
        await cached()
    assert await cached() is False  # no second call to Telegram within the ttl
    assert len(calls) == 1
    clock.now = 31
    assert await cached() is True
