"""The session watch: checks every stored session at its service and reports the ones
that ended.

Each service's adapter decides what a check meant (bot.remote's CheckOutcome): only Ended
ends a session; a Transient outcome is checked again later with backoff and nobody is told.
When most checks of one service fail at once, that service is taken to be down: none of its
sessions is touched and the owners are told once (and once when it is back); the other
services' sessions go on as usual.

Several instances may watch one database: each claims the sessions it checks under a lease
(storage/sessions.py), so a session is checked by one of them per interval, and a dead
instance's sessions are due again when its lease runs out. The politeness limit towards a
service is shared: each instance takes its part of it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, TypeVar

from bot.domain import DueSession, Lease
from bot.remote import (
    CheckOutcome,
    Confirmed,
    Ended,
    Sentence,
    Transient,
    TransientReason,
    Verdict,
    outcome_labels,
)
from bot.services.clock import utcnow
from bot.services.notifier import Notifier
from bot.services.pacing import RateLimiter
from bot.services.registry import ServiceRegistry
from bot.services.watchdog import DATABASE_STEP_SECONDS, Heartbeat, StepStuck, pause_or_stop, within
from bot.storage.store import CheckConfirmed, Store

log = logging.getLogger(__name__)

T = TypeVar("T")

# After a failed sweep the watch waits 2, 4, 8 ... seconds, at most this long.
MAX_RESTART_PAUSE = 60.0
# A claim's lease covers its checks at their slowest, plus this for the database writes.
LEASE_MARGIN_SECONDS = 30.0


def reachability_key(service_id: str) -> str:
    """The meta row that remembers whether a service looked down ("spaces_reachability")."""
    return f"{service_id}_reachability"


# What a session that could not be checked at all counts as (a bug, logged where caught).
_UNEXPECTED: Final = Transient(TransientReason.UNEXPECTED, Sentence("error-generic"))
# A check that took far longer than its request may (said once where it was noticed).
_STUCK: Final = Transient(TransientReason.TIMEOUT, Sentence("error-generic"), "stuck")


@dataclass(frozen=True, slots=True)
class WatchConfig:
    interval: float
    concurrency: int = 4
    spaces_rate: float = 2.0  # requests per second towards each service; 0 = no limit
    batch_size: int = 200
    # While a service looks down, only this many of its sessions are tried per round.
    probe_size: int = 3
    spaces_timeout: float = 10.0  # the longest request timeout of the services
    database_step_seconds: float = DATABASE_STEP_SECONDS

    @property
    def check_deadline(self) -> float:
        """One check is stuck after this: its request is bounded by `spaces_timeout`, and
        the margin covers a slow connect and the wait for a slot of the pacing."""
        pacing = 1.0 / self.spaces_rate if self.spaces_rate > 0 else 0.0
        return 3 * self.spaces_timeout + self.concurrency * pacing + 1.0

    @property
    def claim_size(self) -> int:
        """Sessions claimed at once: few enough that the lease covering the slowest case
        stays short, so a dead instance's claims are checked again a few minutes later."""
        return max(1, min(self.batch_size, self.concurrency * 8))

    def lease_seconds(self, rate: float) -> float:
        """How long a claim of `claim_size` sessions is held when checks are paced at
        `rate` per second: every check may run into its deadline."""
        rounds = math.ceil(self.claim_size / self.concurrency)
        pacing = self.claim_size / rate if rate > 0 else 0.0
        return rounds * self.check_deadline + pacing + LEASE_MARGIN_SECONDS

    @property
    def max_sleep(self) -> float:
        return max(0.05, min(5.0, self.interval))

    @property
    def backoff_base(self) -> float:
        return max(0.05, min(60.0, self.interval / 4))


class OutageDetector:
    """Decides from recent check outcomes whether one service as a whole is down.

    Down: at least `min_samples` of the last `window` checks, and `threshold` of them,
    failed transiently. Up again: the last `recover_after` checks all got a definitive answer.
    """

    def __init__(
        self, window: int = 20, min_samples: int = 5, threshold: float = 0.8, recover_after: int = 3
    ) -> None:
        self._recent: deque[bool] = deque(maxlen=window)
        self._min = min_samples
        self._threshold = threshold
        self._recover = recover_after
        self.down = False

    def observe(self, transient: bool) -> None:
        self._recent.append(transient)
        if self.down:
            tail = list(self._recent)[-self._recover :]
            if len(tail) == self._recover and not any(tail):
                self.down = False
                self._recent.clear()
        elif len(self._recent) >= self._min:
            if sum(self._recent) / len(self._recent) >= self._threshold:
                self.down = True


@dataclass
class SweepReport:
    checked: int = 0
    # (service, verdict, reason) -> count; the labels of /stats and /metrics
    outcomes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    ended: int = 0
    down: set[str] = field(default_factory=set)  # services that looked down
    skipped_unreadable: int = 0

    def stat_counts(self) -> dict[str, int]:
        """Hourly stat buckets: checks per service and verdict ("spaces:ended")."""
        counts: Counter[str] = Counter()
        for (service, verdict, _), n in self.outcomes.items():
            counts[f"{service}:{verdict}"] += n
        return dict(counts)


class SessionWatch:
    def __init__(
        self,
        store: Store,
        services: ServiceRegistry,
        notifier: Notifier,
        config: WatchConfig,
        *,
        instance: str,
        rng: random.Random | None = None,
        stats: Callable[[Mapping[str, int], datetime], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._services = services
        self._notifier = notifier
        self.config = config
        self.instance = instance
        self._rate = config.spaces_rate  # this instance's part of it
        self._rng = rng or random.Random()
        # Each service has its own pace and its own outage: one being down slows no other.
        self._limiters = {s.info.id: RateLimiter(config.spaces_rate) for s in services}
        self.detectors = {s.info.id: OutageDetector() for s in services}
        self.heartbeat = Heartbeat()
        self.totals: Counter[tuple[str, str, str]] = Counter()
        # "up"/"down" per service as last stored or read; absent: not read yet
        self._reachability: dict[str, str] = {}
        self._stats = stats

    # -- scheduling -------------------------------------------------------------------------

    async def take_over_checks(self) -> None:
        """Sessions a stopped process had claimed are checked now, not when its claim's
        lease would have ended (run by services/instance.py once that process's lease ran out)."""
        released = await self._db(
            "taking over checks", self._store.release_orphaned_checks(utcnow())
        )
        if released:
            log.info("%d session check(s) of a stopped process taken over", released)

    def next_check_after(self, now: datetime) -> datetime:
        """A confirmed session's next check: one interval on, ±10% so checks stay spread."""
        spread = self._rng.uniform(0.9, 1.1)
        return now + timedelta(seconds=self.config.interval * spread)

    def _retry_after(self, now: datetime, failures: int) -> datetime:
        delay = min(self.config.interval, self.config.backoff_base * 2 ** min(failures, 16))
        return now + timedelta(seconds=delay * self._rng.uniform(0.8, 1.2))

    # -- one sweep --------------------------------------------------------------------------

    async def sweep(self) -> float:
        """Check everything that is due now; returns how long to wait before the next sweep.

        Ended sessions queue their notice and wake the outbox (Notifier.run), which sends
        it at once: however many sessions are due, a notice never waits for the checks.
        """
        report = SweepReport()
        await self._restore_reachability()
        await self._share_rate()
        now = utcnow()
        limit = self.config.claim_size
        while True:
            lease = Lease(
                self.instance, now + timedelta(seconds=self.config.lease_seconds(self._rate))
            )
            due, unreadable = await self._db(
                "claiming the due sessions", self._store.claim_due_sessions(now, limit, lease)
            )
            if unreadable:
                report.skipped_unreadable += len(unreadable)
                for chat_id, key in unreadable:
                    log.error(
                        "a %s session of chat %s cannot be decrypted; skipped", key.service, chat_id
                    )
                until = now + timedelta(seconds=self.config.interval)
                await self._db(
                    "deferring unreadable sessions",
                    self._store.defer(unreadable, until),
                )
            if not due:
                if len(unreadable) < limit:
                    break
                continue
            checked, later = self._probes(due, now)
            if later:
                await self._db(
                    "postponing checks",
                    self._store.record_checks(now, self.instance, postponed=later),
                )
            batch = SweepReport()
            outcomes = await self._check_batch(checked)
            await self._apply(checked, outcomes, batch)
            if batch.ended:
                self._notifier.wake()
            await self._count(batch, report)
            self.heartbeat.beat()  # progress, so a long sweep still counts as alive
            if len(due) + len(unreadable) < limit or len(checked) < len(due):
                break
            now = utcnow()
        self.heartbeat.beat()
        if report.checked:
            log.info(
                "sweep: %d checked %s, %d ended%s",
                report.checked,
                {"/".join(k): v for k, v in report.outcomes.items()},
                report.ended,
                f", looks down: {', '.join(sorted(report.down))}" if report.down else "",
            )
        return await self._pause()

    async def _share_rate(self) -> None:
        """Each live instance takes an equal part of the politeness limit towards a service."""
        if self.config.spaces_rate <= 0:
            return
        instances = await self._db("counting instances", self._store.live_instance_count(utcnow()))
        rate = self.config.spaces_rate / max(1, instances)
        if rate != self._rate:
            self._rate = rate
            for limiter in self._limiters.values():
                limiter.set_rate(rate)

    async def _count(self, batch: SweepReport, report: SweepReport) -> None:
        report.checked += batch.checked
        report.ended += batch.ended
        report.outcomes.update(batch.outcomes)
        report.down |= batch.down
        self.totals.update(batch.outcomes)
        if self._stats is not None:
            await self._db("counting checks", self._stats(batch.stat_counts(), utcnow()))

    async def _db(self, step: str, awaitable: Awaitable[T]) -> T:
        """A database call of the watch, cancelled (and said once) when it hangs."""
        return await within(
            f"the session watch: {step}", self.config.database_step_seconds, awaitable
        )

    def _probes(
        self, due: list[DueSession], now: datetime
    ) -> tuple[list[DueSession], list[tuple[DueSession, datetime]]]:
        """While a service looks down only `probe_size` of its sessions are asked per round;
        the rest only move on in time (and so do sessions of a service no longer set up)."""
        checked: list[DueSession] = []
        later: list[tuple[DueSession, datetime]] = []
        probes: Counter[str] = Counter()
        for d in due:
            detector = self.detectors.get(d.service)
            if detector is None:
                later.append((d, now + timedelta(seconds=self.config.interval)))
            elif detector.down and probes[d.service] >= self.config.probe_size:
                later.append((d, self._retry_after(now, d.failures)))
            else:
                probes[d.service] += 1
                checked.append(d)
        return checked, later

    async def _pause(self) -> float:
        if any(d.down for d in self.detectors.values()):
            return self.config.backoff_base
        next_due = await self._db("reading the next due time", self._store.next_due_at())
        if next_due is None:
            return self.config.max_sleep
        wait = (next_due - utcnow()).total_seconds()
        return min(max(wait, 0.05), self.config.max_sleep)

    async def _check_batch(self, due: list[DueSession]) -> list[CheckOutcome]:
        """Outcomes in `due`'s order. `concurrency` workers each take the next session as soon
        as they are free: fewer tasks and wake-ups than a task per session behind a semaphore
        (about a third of the watcher's own CPU per check, bench/watch_bench.py)."""
        outcomes: list[CheckOutcome] = [_UNEXPECTED] * len(due)
        slots = iter(range(len(due)))

        async def worker() -> None:
            for i in slots:  # shared: each session is taken once, in order
                outcomes[i] = await self._check(due[i])

        workers = min(self.config.concurrency, len(due))
        await asyncio.gather(*(worker() for _ in range(workers)))
        return outcomes

    async def _check(self, due: DueSession) -> CheckOutcome:
        await self._limiters[due.service].acquire()
        step = f"the session watch: checking a {due.service} session of chat {due.chat_id}"
        check = self._services[due.service].check(due.secrets)
        try:
            return await within(step, self.config.check_deadline, check)
        except StepStuck:
            return _STUCK
        except Exception:
            # `check` never raises for what the service does: a bug, and one broken session
            # must not stop the sweep for everyone else.
            log.exception(
                "checking a %s session of chat %s failed unexpectedly", due.service, due.chat_id
            )
            return _UNEXPECTED

    async def _apply(
        self, due: list[DueSession], outcomes: list[CheckOutcome], report: SweepReport
    ) -> None:
        now = utcnow()
        by_service: dict[str, list[tuple[DueSession, CheckOutcome]]] = {}
        for d, outcome in zip(due, outcomes, strict=True):
            by_service.setdefault(d.service, []).append((d, outcome))
            report.outcomes[(d.service, *outcome_labels(outcome))] += 1
        report.checked += len(due)

        confirmed: list[CheckConfirmed] = []
        ended: list[DueSession] = []
        deferred: list[tuple[DueSession, datetime]] = []
        postponed: list[tuple[DueSession, datetime]] = []
        decided: set[str] = set()
        for service_id, pairs in by_service.items():
            detector = self.detectors[service_id]
            for _, outcome in pairs:
                detector.observe(outcome.verdict is Verdict.TRANSIENT)
            if detector.down:
                # The service looks down: none of its sessions changes; they are simply
                # looked at later.
                report.down.add(service_id)
                postponed += [(d, self._retry_after(now, d.failures)) for d, _ in pairs]
                await self._set_reachability(service_id, up=False)
                continue
            for d, outcome in pairs:
                if isinstance(outcome, Confirmed):
                    next_at = self.next_check_after(now)
                    confirmed.append(
                        CheckConfirmed(d, outcome.display_name, outcome.renewed, next_at)
                    )
                    decided.add(service_id)
                elif isinstance(outcome, Ended):
                    ended.append(d)
                    decided.add(service_id)
                else:
                    deferred.append((d, self._retry_after(now, d.failures + 1)))
        report.ended += await self._db(
            "recording checks",
            self._store.record_checks(
                now,
                self.instance,
                confirmed=confirmed,
                ended=ended,
                deferred=deferred,
                postponed=postponed,
            ),
        )
        for service_id in sorted(decided):
            await self._set_reachability(service_id, up=True)

    # -- each service's reachability, told to the owners on change ---------------------------

    async def _restore_reachability(self) -> None:
        for service_id, detector in self.detectors.items():
            if service_id not in self._reachability:
                key = reachability_key(service_id)
                stored = await self._db("reading reachability", self._store.get_meta(key)) or "up"
                self._reachability[service_id] = stored
                detector.down = stored == "down"

    async def _set_reachability(self, service_id: str, *, up: bool) -> None:
        value = "up" if up else "down"
        if self._reachability.get(service_id) == value:
            return  # as this watcher last stored or read it: no query per batch
        # Stored first, and only by the one process that changes it: the owners hear of each
        # change once, across instances and restarts.
        key = reachability_key(service_id)
        changed = await self._db(
            "storing reachability",
            self._store.swap_meta(key, "down" if up else "up", value),
        )
        self._reachability[service_id] = value
        if not changed:
            return  # it already said so (another instance told them)
        log.warning("%s looks %s", service_id, "reachable again" if up else "unreachable")
        await self._notifier.tell_admins(
            "admin-service-up" if up else "admin-service-down",
            service=self._services.display_name(service_id),
        )

    # -- the background task ----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep until `stop` is set; a crash or a stuck step is logged and the loop goes on."""
        crashes = 0
        while not stop.is_set():
            try:
                pause = await self.sweep()
                crashes = 0
            except StepStuck:
                crashes += 1  # said in one line where it was noticed
                pause = min(MAX_RESTART_PAUSE, 2.0**crashes)
            except Exception:
                crashes += 1
                pause = min(MAX_RESTART_PAUSE, 2.0**crashes)
                log.exception("the session watch failed; starting again in %.0f s", pause)
            await pause_or_stop(stop, pause)
