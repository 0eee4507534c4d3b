"""Brute-force protection: failed logins counted per Telegram user and per Spaces login."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.services.clock import utcnow
from bot.storage.owners import OwnerStore


class LoginLocked(Exception):
    """Too many failed logins: nothing is sent to Spaces until `retry_after` has passed."""

    def __init__(self, retry_after: timedelta) -> None:
        super().__init__(f"login attempts paused for {retry_after}")
        self.retry_after = retry_after

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after.total_seconds() / 60))


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """An attempt counted as failed until it is known to be something else."""

    keys: list[str]
    reserved: list[int]


class LoginGuard:
    def __init__(
        self,
        owners: OwnerStore,
        *,
        max_failures: int,
        window_seconds: float,
        lockout_seconds: float,
    ) -> None:
        self._owners = owners
        self._max = max_failures
        self._window = timedelta(seconds=window_seconds)
        self._lockout = timedelta(seconds=lockout_seconds)

    @staticmethod
    def keys(telegram_user_id: int, login: str) -> list[str]:
        return [f"user:{telegram_user_id}", f"login:{login.casefold()}"]

    async def check(self, telegram_user_id: int, login: str, now: datetime | None = None) -> None:
        """Raises LoginLocked while either the person or the login name is locked out."""
        now = now or utcnow()
        wait = await self._wait(self.keys(telegram_user_id, login), now)
        if wait is not None:
            raise LoginLocked(wait)

    async def reserve(
        self, telegram_user_id: int, login: str, now: datetime | None = None
    ) -> LoginAttempt:
        """Count this attempt as a failure before it is made, or raise LoginLocked.

        One atomic step: of many simultaneous attempts, at most the limit get through.
        """
        now = now or utcnow()
        keys = self.keys(telegram_user_id, login)
        for _ in range(3):
            reserved = await self._owners.reserve_attempt(
                keys,
                now,
                since=now - self._window,
                max_failures=self._max,
                locked_after=now - self._lockout,
            )
            if reserved:
                return LoginAttempt(keys, reserved)
            wait = await self._wait(keys, now)
            if wait is not None:
                raise LoginLocked(wait)
            # Refused, then free again: reservations were given back meanwhile; try again.
        raise LoginLocked(self._lockout)

    async def failed(self, attempt: LoginAttempt, now: datetime | None = None) -> None:
        """The password was wrong: the reservation stays as the failure it was counted as."""
        now = now or utcnow()
        await self._owners.prune_failures(now - max(self._window, self._lockout))

    async def undecided(self, attempt: LoginAttempt) -> None:
        """The attempt said nothing about the password (captcha, Spaces unreachable, ...)."""
        await self._owners.release_attempt(attempt.reserved)

    async def succeeded(self, attempt: LoginAttempt) -> None:
        await self._owners.clear_failures(attempt.keys)

    async def _wait(self, keys: list[str], now: datetime) -> timedelta | None:
        found = await self._owners.failures_since(keys, now - self._window)
        waits = [
            times[-1] + self._lockout - now
            for times in found.values()
            if len(times) >= self._max and times[-1] + self._lockout > now
        ]
        return max(waits) if waits else None
