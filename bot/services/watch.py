"""The session watch: checks every stored session at Spaces and reports the ones that ended.

Only a definitive answer ends a session (01001, 01004, 01005 on `check`). Everything else —
HTTP errors, timeouts, HTML, broken JSON, 00007 — is transient: the session is checked again
later with backoff and nobody is told. When most checks fail at once, Spaces is taken to be
down: no session is touched and the owners are told once (and once when it is back).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from bot.domain import DueSession
from bot.services.clock import utcnow
from bot.services.notifier import Notifier
from bot.services.pacing import RateLimiter
from bot.services.watchdog import DATABASE_STEP_SECONDS, Heartbeat, StepStuck, pause_or_stop, within
from bot.spaces import Account, SpacesAPIError, SpacesClient, SpacesError
from bot.storage.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

REACHABILITY_KEY = "spaces_reachability"
# After a failed sweep the watch waits 2, 4, 8 ... seconds, at most this long.
MAX_RESTART_PAUSE = 60.0


@dataclass(frozen=True, slots=True)
class WatchConfig:
    interval: float
    concurrency: int = 4
    spaces_rate: float = 2.0  # requests per second towards Spaces; 0 = no limit
    batch_size: int = 200
    # While Spaces looks down, only this many sessions are tried per round.
    probe_size: int = 3
    spaces_timeout: float = 10.0
    database_step_seconds: float = DATABASE_STEP_SECONDS

    @property
    def check_deadline(self) -> float:
        """One check is stuck after this: its request is bounded by `spaces_timeout`, and
        the margin covers a slow connect and the wait for a slot of the pacing."""
        pacing = 1.0 / self.spaces_rate if self.spaces_rate > 0 else 0.0
        return 3 * self.spaces_timeout + self.concurrency * pacing + 1.0

    @property
    def max_sleep(self) -> float:
        return max(0.05, min(5.0, self.interval))

    @property
    def backoff_base(self) -> float:
        return max(0.05, min(60.0, self.interval / 4))


class OutageDetector:
    """Decides from recent check outcomes whether Spaces as a whole is down.

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


@dataclass(frozen=True, slots=True)
class _Confirmed:
    account: Account


@dataclass(frozen=True, slots=True)
class _Ended:
    code: str


@dataclass(frozen=True, slots=True)
class _Transient:
    reason: str


_Outcome = _Confirmed | _Ended | _Transient


@dataclass
class SweepReport:
    checked: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    ended: int = 0
    spaces_down: bool = False
    skipped_unreadable: int = 0


class SessionWatch:
    def __init__(
        self,
        store: Store,
        spaces: SpacesClient,
        notifier: Notifier,
        config: WatchConfig,
        *,
        rng: random.Random | None = None,
        stats: Callable[[Mapping[str, int], datetime], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._spaces = spaces
        self._notifier = notifier
        self.config = config
        self._rng = rng or random.Random()
        self._limiter = RateLimiter(config.spaces_rate)
        self.detector = OutageDetector()
        self.heartbeat = Heartbeat()
        self.totals: Counter[str] = Counter()
        self._reachability: str | None = None  # "up"/"down" as last stored or read; None: not yet
        self._stats = stats

    # -- scheduling -------------------------------------------------------------------------

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
        now = utcnow()
        while True:
            limit = self.config.probe_size if self.detector.down else self.config.batch_size
            due, unreadable = await self._db(
                "reading the due sessions", self._store.due_sessions(now, limit)
            )
            if unreadable:
                report.skipped_unreadable += len(unreadable)
                for chat_id in unreadable:
                    log.error("session of chat %s cannot be decrypted; skipped", chat_id)
                until = now + timedelta(seconds=self.config.interval)
                await self._db(
                    "deferring unreadable sessions", self._store.defer(unreadable, until)
                )
            if not due:
                break
            batch = SweepReport()
            outcomes = await self._check_batch(due)
            await self._apply(due, outcomes, batch)
            if batch.ended:
                self._notifier.wake()
            await self._count(batch, report)
            self.heartbeat.beat()  # progress, so a long sweep still counts as alive
            if self.detector.down or len(due) < limit:
                break
            now = utcnow()
        self.heartbeat.beat()
        if report.checked:
            log.info(
                "sweep: %d checked %s, %d ended%s",
                report.checked,
                dict(report.outcomes),
                report.ended,
                ", Spaces looks down" if report.spaces_down else "",
            )
        return await self._pause()

    async def _count(self, batch: SweepReport, report: SweepReport) -> None:
        report.checked += batch.checked
        report.ended += batch.ended
        report.outcomes.update(batch.outcomes)
        report.spaces_down = report.spaces_down or batch.spaces_down
        self.totals.update(batch.outcomes)
        if self._stats is not None:
            await self._db("counting checks", self._stats(dict(batch.outcomes), utcnow()))

    async def _db(self, step: str, awaitable: Awaitable[T]) -> T:
        """A database call of the watch, cancelled (and said once) when it hangs."""
        return await within(
            f"the session watch: {step}", self.config.database_step_seconds, awaitable
        )

    async def _pause(self) -> float:
        if self.detector.down:
            return self.config.backoff_base
        next_due = await self._db("reading the next due time", self._store.next_due_at())
        if next_due is None:
            return self.config.max_sleep
        wait = (next_due - utcnow()).total_seconds()
        return min(max(wait, 0.05), self.config.max_sleep)

    async def _check_batch(self, due: list[DueSession]) -> list[_Outcome]:
        """Outcomes in `due`'s order. `concurrency` workers each take the next session as soon
        as they are free: fewer tasks and wake-ups than a task per session behind a semaphore
        (about a third of the watcher's own CPU per check, bench/watch_bench.py)."""
        outcomes: list[_Outcome] = [_Transient("not checked")] * len(due)
        slots = iter(range(len(due)))

        async def worker() -> None:
            for i in slots:  # shared: each session is taken once, in order
                outcomes[i] = await self._check(due[i])

        workers = min(self.config.concurrency, len(due))
        await asyncio.gather(*(worker() for _ in range(workers)))
        return outcomes

    async def _check(self, due: DueSession) -> _Outcome:
        await self._limiter.acquire()
        step = f"the session watch: checking the session of chat {due.chat_id}"
        try:
            return _Confirmed(
                await within(step, self.config.check_deadline, self._spaces.check(due.sid))
            )
        except StepStuck:
            return _Transient("stuck")
        except SpacesAPIError as exc:
            if exc.is_session_gone:
                return _Ended(exc.code)
            return _Transient(f"code {exc.code}")
        except SpacesError as exc:
            return _Transient(str(exc))
        except Exception:
            # One broken session must not stop the sweep for everyone else.
            log.exception("checking the session of chat %s failed unexpectedly", due.chat_id)
            return _Transient("unexpected")

    async def _apply(
        self, due: list[DueSession], outcomes: list[_Outcome], report: SweepReport
    ) -> None:
        now = utcnow()
        for outcome in outcomes:
            self.detector.observe(isinstance(outcome, _Transient))
            report.outcomes[type(outcome).__name__.strip("_").lower()] += 1
        report.checked += len(due)

        if self.detector.down:
            # Spaces looks down: no session changes; they are simply looked at later.
            report.spaces_down = True
            later = [(d, self._retry_after(now, d.failures)) for d in due]
            await self._db("recording checks", self._store.record_checks(now, postponed=later))
            await self._set_reachability(up=False)
            return

        confirmed: list[tuple[DueSession, str, datetime]] = []
        ended: list[DueSession] = []
        deferred: list[tuple[DueSession, datetime]] = []
        for d, outcome in zip(due, outcomes, strict=True):
            if isinstance(outcome, _Confirmed):
                confirmed.append((d, outcome.account.nickname, self.next_check_after(now)))
            elif isinstance(outcome, _Ended):
                ended.append(d)
            else:
                deferred.append((d, self._retry_after(now, d.failures + 1)))
        report.ended += await self._db(
            "recording checks",
            self._store.record_checks(now, confirmed=confirmed, ended=ended, deferred=deferred),
        )
        if confirmed or ended:
            await self._set_reachability(up=True)

    # -- Spaces reachability, told to the owners on change ------------------------------------

    async def _restore_reachability(self) -> None:
        if self._reachability is None:
            stored = await self._db("reading reachability", self._store.get_meta(REACHABILITY_KEY))
            self._reachability = stored or "up"
            self.detector.down = self._reachability == "down"

    async def _set_reachability(self, *, up: bool) -> None:
        value = "up" if up else "down"
        if self._reachability == value:
            return  # as this watcher last stored or read it: no query per batch
        # Read again before a change: another process on this database may have told them.
        stored = (
            await self._db("reading reachability", self._store.get_meta(REACHABILITY_KEY)) or "up"
        )
        self._reachability = stored
        if stored == value:
            return
        # Stored first: the owners hear of each change once, even across a restart.
        await self._db("storing reachability", self._store.set_meta(REACHABILITY_KEY, value))
        self._reachability = value
        log.warning("Spaces looks %s", "reachable again" if up else "unreachable")
        await self._notifier.tell_admins("admin-spaces-up" if up else "admin-spaces-down")

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
