"""Keeping the background loops honest: a step that overruns its deadline is cancelled and
said in one log line, and each loop leaves a heartbeat that readiness reads."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# A database call the loops make (one short transaction) is stuck after this long, unless
# the settings say otherwise (database_step_seconds).
DATABASE_STEP_SECONDS = 65.0


def database_step_seconds(statement_timeout: float) -> float:
    """A loop's database step (a transaction of a few statements) is stuck after this.

    Each statement times out by itself (DATABASE_TIMEOUT_SECONDS) and that fires first; this
    is the backstop for a connection that never answers at all, not even with a timeout.
    """
    return 2 * statement_timeout + 5.0


class StepStuck(Exception):
    """A step overran its deadline and was cancelled; it has been logged already."""

    def __init__(self, step: str, seconds: float) -> None:
        super().__init__(f"{step} took longer than {seconds:g} s")
        self.step = step
        self.seconds = seconds


async def within(step: str, seconds: float, awaitable: Awaitable[T]) -> T:
    """`awaitable`'s result, or StepStuck (after one warning line) when it takes too long."""
    try:
        async with asyncio.timeout(seconds) as deadline:
            return await awaitable
    except TimeoutError:
        if not deadline.expired():
            raise  # a timeout of the step's own, not ours: the caller handles it as usual
        log.warning("%s is stuck (over %g s): cancelled, trying again", step, seconds)
        raise StepStuck(step, seconds) from None


class Heartbeat:
    """When a loop last made progress; readiness calls the loop stuck when it is too old."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: float | None = None

    def beat(self) -> None:
        self._last = self._clock()

    def age(self) -> float | None:
        """Seconds since the last beat; None before the first."""
        return None if self._last is None else self._clock() - self._last


async def pause_or_stop(stop: asyncio.Event, seconds: float, *wake: asyncio.Event) -> None:
    """Sleep `seconds`, or less when `stop` (or any of `wake`) is set meanwhile."""
    waits = [asyncio.ensure_future(event.wait()) for event in (stop, *wake)]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()
