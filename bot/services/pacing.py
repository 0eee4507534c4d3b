"""Pacing: a rate limiter that hands out evenly spaced slots, and can be paused."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """At most `rate` acquisitions per second, spread evenly; `rate=0` means no limit.

    Waiters are served in arrival order (the lock is FIFO), so nobody starves.
    """

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    def set_rate(self, rate: float) -> None:
        """From the next slot on (0: no limit)."""
        self._interval = 1.0 / rate if rate > 0 else 0.0

    @property
    def unlimited(self) -> bool:
        return self._interval == 0.0

    async def acquire(self) -> None:
        if self.unlimited and self._next <= time.monotonic():
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            # The next slot counts from this slot's own time, not from a late wake-up,
            # so the rate does not drift below what was asked.
            self._next = start + self._interval
            if start > now:
                await asyncio.sleep(start - now)

    def pause(self, seconds: float) -> None:
        """Nobody gets a slot for `seconds` from now (Telegram's retry_after)."""
        self._next = max(self._next, time.monotonic() + seconds)
