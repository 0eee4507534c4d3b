"""The limiter hands out evenly spaced slots; a pause holds everyone (no real sleeping)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.services.pacing import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds + 0.003  # every wake-up is a little late, as in real life


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "monotonic", fake.monotonic)
    monkeypatch.setattr(asyncio, "sleep", fake.sleep)
    return fake


async def test_slots_are_evenly_spaced_without_drift(clock: Clock) -> None:
    limiter = RateLimiter(25.0)
    start = clock.now
    for _ in range(101):
        await limiter.acquire()
    # 100 intervals of 40 ms; late wake-ups must not add up (only the last one shows)
    assert clock.now - start == pytest.approx(4.0, abs=0.01)


async def test_pause_holds_the_next_slot(clock: Clock) -> None:
    limiter = RateLimiter(25.0)
    await limiter.acquire()
    limiter.pause(1.0)
    before = clock.now
    await limiter.acquire()
    assert clock.now - before >= 1.0


async def test_zero_means_unlimited(clock: Clock) -> None:
    limiter = RateLimiter(0)
    for _ in range(1000):
        await limiter.acquire()
    assert clock.slept == []
