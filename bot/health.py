"""Health and metrics endpoints for the owner's supervisor (Docker, systemd, Prometheus).

`/healthz` says the process is alive, `/readyz` that it can do its job (the database reads
and writes, Telegram and Redis answer, the watch and the notice outbox make progress),
`/metrics` exposes counters and how far behind the watch is in the Prometheus text format.
Off unless HEALTH_PORT is set; app.py decides that and wires the sources.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from bot.domain import Backlog
from bot.remote import all_outcome_labels

log = logging.getLogger(__name__)

PREFIX = "spaces_bot"
# A probe that has not answered by then counts as failed: /readyz itself must answer fast.
PROBE_TIMEOUT_SECONDS = 5.0
# Labels always exported, even at zero, so a dashboard's series exist from the start.
SEND_OUTCOMES = ("delivered", "blocked", "failed", "rejected")
SESSION_STATES = ("active", "unconfirmed", "ended")
RETRY_AFTER = "retry_after"  # the key of Telegram's 429s in the "sends" snapshot
PASSING = frozenset({"ok", "pending"})


@dataclass(frozen=True)
class LoopSource:
    """A background loop's heartbeat: seconds since its last progress (None: not yet), and
    how long it may stay silent before it counts as stuck."""

    age: Callable[[], float | None]
    max_silence_seconds: float


@dataclass(frozen=True)
class HealthSources:
    """Everything the endpoints read, as callables so each answer is current."""

    database_ok: Callable[[], Awaitable[bool]]
    telegram_ok: Callable[[], Awaitable[bool]]
    # {"watch": ..., "delivery": ...}: each is a check of /readyz under its own name.
    loops: Mapping[str, LoopSource]
    # {"updates": {"message": 3}, "checks": {"spaces:ended:expired": 5},
    #  "notices": {"sent": 1}, "sends": {"delivered": 2, "retry_after": 1}}
    # (checks keyed "<service>:<verdict>:<reason>", bot.remote's vocabulary)
    counters: Callable[[], Mapping[str, Mapping[str, float]]]
    sessions_by_state: Callable[[], Awaitable[Mapping[str, int]]]
    version: str
    # None when REDIS_URL is not set: then there is nothing to ask.
    redis_ok: Callable[[], Awaitable[bool]] | None = None
    backlog: Callable[[], Awaitable[Backlog]] | None = None
    services: tuple[str, ...] = ("spaces",)  # whose check counters exist from the start


class CachedProbe:
    """Calls a slow probe (e.g. getMe) at most once per `ttl` seconds.

    Frequent readiness checks then cost Telegram nothing; concurrent callers share one call.
    A probe that raised is remembered as False for the same time, and the exception goes to
    the one caller that saw it happen.
    """

    def __init__(
        self,
        fn: Callable[[], Awaitable[bool]],
        ttl: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fn = fn
        self._ttl = ttl
        self._clock = clock
        self._lock = asyncio.Lock()
        self._value = False
        self._expires_at: float | None = None

    async def __call__(self) -> bool:
        async with self._lock:
            if self._expires_at is not None and self._clock() < self._expires_at:
                return self._value
            try:
                value = bool(await self._fn())
            except Exception:
                self._remember(False)
                raise
            self._remember(value)
            return value

    def _remember(self, value: bool) -> None:
        self._value = value
        self._expires_at = self._clock() + self._ttl


class _BotCollector(Collector):
    """Reads the in-memory counters at scrape time; the handler sets `sessions` first."""

    def __init__(
        self,
        counters: Callable[[], Mapping[str, Mapping[str, float]]],
        uptime: Callable[[], float],
        version: str,
        services: tuple[str, ...] = (),
    ) -> None:
        self._services = services
        self._counters = counters
        self._uptime = uptime
        self._version = version
        self.sessions: Mapping[str, int] | None = None
        self.backlog: Backlog | None = None

    def _checks(self, values: Mapping[str, float]) -> Metric:
        return _check_family(values, self._services)

    def collect(self) -> Iterable[Metric]:
        try:
            snapshot = self._counters()
        except Exception as exc:
            log.warning("metrics: the counters snapshot failed: %r", exc)
            snapshot = {}

        def group(name: str) -> Mapping[str, float]:
            return snapshot.get(name) or {}

        yield _counter("updates", "Telegram updates handled, by type", "type", group("updates"))
        yield self._checks(group("checks"))
        notices = CounterMetricFamily(f"{PREFIX}_notices_sent", "Expiry notices sent")
        notices.add_metric([], group("notices").get("sent", 0))
        yield notices
        sends = group("sends")
        outcomes = _with_defaults(
            {k: v for k, v in sends.items() if k != RETRY_AFTER}, SEND_OUTCOMES
        )
        yield _counter("sends", "Messages the bot sent on its own, by outcome", "outcome", outcomes)
        throttled = CounterMetricFamily(
            f"{PREFIX}_telegram_429", "Telegram answers 429 Too Many Requests (retry_after)"
        )
        throttled.add_metric([], sends.get(RETRY_AFTER, 0))
        yield throttled
        if self.sessions is not None:
            sessions = GaugeMetricFamily(
                f"{PREFIX}_sessions", "Stored sessions, by state", labels=["state"]
            )
            for state, count in _with_defaults(self.sessions, SESSION_STATES).items():
                sessions.add_metric([state], count)
            yield sessions
        if self.backlog is not None:
            yield from _backlog_gauges(self.backlog)
        yield GaugeMetricFamily(
            f"{PREFIX}_uptime_seconds", "Seconds since the health server started", self._uptime()
        )
        info = GaugeMetricFamily(f"{PREFIX}_build_info", "The running version", labels=["version"])
        info.add_metric([self._version], 1)
        yield info


def _check_family(values: Mapping[str, float], services: Iterable[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(
        f"{PREFIX}_checks",
        "Session checks, by service and outcome (bot.remote's verdict and reason)",
        labels=["service", "verdict", "reason"],
    )
    counts = {
        (service, verdict, reason): 0.0
        for service in services
        for verdict, reason in all_outcome_labels()
    }
    for key, value in values.items():
        service, _, rest = key.partition(":")
        verdict, _, reason = rest.partition(":")
        counts[(service, verdict, reason)] = value
    for labels, value in sorted(counts.items()):
        family.add_metric(list(labels), value)
    return family


def _backlog_gauges(backlog: Backlog) -> Iterable[Metric]:
    now = datetime.now(UTC)

    def age(since: datetime | None) -> float:
        return 0.0 if since is None else max(0.0, (now - since).total_seconds())

    yield GaugeMetricFamily(
        f"{PREFIX}_watch_overdue_sessions",
        "Sessions whose check is due and not done yet (the watch is behind by this many)",
        backlog.overdue_sessions,
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_watch_oldest_overdue_seconds",
        "How long the most overdue session check has been due (0: none overdue)",
        age(backlog.oldest_overdue_since),
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_notices_pending",
        "Expiry notices waiting to be sent (retries and blocked chats included)",
        backlog.pending_notices,
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_notices_oldest_pending_seconds",
        "How long ago the session of the oldest waiting notice ended (0: none waiting)",
        age(backlog.oldest_pending_since),
    )


def _counter(name: str, doc: str, label: str, values: Mapping[str, float]) -> Metric:
    family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _with_defaults(values: Mapping[str, float], keys: Iterable[str]) -> dict[str, float]:
    return {**dict.fromkeys(keys, 0), **values}


class HealthServer:
    """A small aiohttp server with its own metrics registry, so several can share a process."""

    def __init__(
        self,
        sources: HealthSources,
        *,
        host: str = "127.0.0.1",
        port: int,
        probe_timeout: float = PROBE_TIMEOUT_SECONDS,
    ) -> None:
        self._sources = sources
        self._host = host
        self._requested_port = port
        self._probe_timeout = probe_timeout
        self._started = time.monotonic()
        self._failing: set[str] = set()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._registry = CollectorRegistry()
        self._collector = _BotCollector(
            sources.counters, self._uptime, sources.version, sources.services
        )
        self._registry.register(self._collector)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the health server is not started")
        return self._port

    def mount(self, app: web.Application) -> None:
        """Serves the endpoints from another server's app (the webhook's) instead of start()."""
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._started = time.monotonic()

    async def start(self) -> None:
        app = web.Application()
        self.mount(app)
        runner = web.AppRunner(app, access_log=None)  # a probe every few seconds is no news
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._requested_port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._started = time.monotonic()
        log.info("health server listening on %s:%d", self._host, self._port)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def _uptime(self) -> float:
        return time.monotonic() - self._started

    # -- endpoints ----------------------------------------------------------------------------

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        probes = {
            "database": self._sources.database_ok,
            "telegram": self._sources.telegram_ok,
        }
        if self._sources.redis_ok is not None:
            probes["redis"] = self._sources.redis_ok
        results = await asyncio.gather(*(self._probe(n, p) for n, p in probes.items()))
        checks = dict(zip(probes, results, strict=True))
        for name, loop in self._sources.loops.items():
            checks[name] = self._loop_check(name, loop)
        ready = all(result in PASSING for result in checks.values())
        return web.json_response(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )

    async def _metrics(self, _request: web.Request) -> web.Response:
        try:
            sessions: Mapping[str, int] | None = dict(
                await asyncio.wait_for(self._sources.sessions_by_state(), self._probe_timeout)
            )
        except Exception as exc:
            log.warning("metrics: counting sessions failed: %r", exc)
            sessions = None
        backlog: Backlog | None = None
        if self._sources.backlog is not None:
            try:
                backlog = await asyncio.wait_for(self._sources.backlog(), self._probe_timeout)
            except Exception as exc:
                log.warning("metrics: reading the backlog failed: %r", exc)
        # No await between setting and reading: another scrape cannot interleave.
        self._collector.sessions = sessions
        self._collector.backlog = backlog
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # -- checks ---------------------------------------------------------------------------------

    async def _probe(self, name: str, probe: Callable[[], Awaitable[bool]]) -> str:
        """ok, fail, or error when the probe raised or did not answer in time."""
        try:
            ok = bool(await asyncio.wait_for(probe(), self._probe_timeout))
        except Exception as exc:
            return self._note(name, "error", exc)
        return self._note(name, "ok" if ok else "fail")

    def _loop_check(self, name: str, loop: LoopSource) -> str:
        """ok or stuck; pending (which passes) while the first beat may still come, never
        after that."""
        max_age = loop.max_silence_seconds
        try:
            age = loop.age()
        except Exception as exc:
            return self._note(name, "error", exc)
        if age is None:
            return self._note(name, "pending" if self._uptime() < max_age else "never")
        return self._note(name, "ok" if age <= max_age else "stuck")

    def _note(self, name: str, result: str, exc: Exception | None = None) -> str:
        """Logs a check once when it starts failing and once when it passes again."""
        passing = result in PASSING
        if not passing and name not in self._failing:
            self._failing.add(name)
            reason = f": {exc!r}" if exc is not None else ""
            log.warning("readiness check %s: %s%s", name, result, reason)
        elif passing and name in self._failing:
            self._failing.discard(name)
            log.info("readiness check %s passes again", name)
        return result
