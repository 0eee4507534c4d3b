"""Brute-force protection: failed logins counted per Telegram user and per Spaces login."""

from __future__ import annotations

import math
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
        found = await self._owners.failures_since(
            self.keys(telegram_user_id, login), now - self._window
        )
        waits = [
            times[-1] + self._lockout - now
            for times in found.values()
            if len(times) >= self._max and times[-1] + self._lockout > now
        ]
        if waits:
            raise LoginLocked(max(waits))

    async def failed(self, telegram_user_id: int, login: str, now: datetime | None = None) -> None:
        now = now or utcnow()
        horizon = now - max(self._window, self._lockout)
        await self._owners.add_failure(self.keys(telegram_user_id, login), now, horizon)

    async def succeeded(self, telegram_user_id: int, login: str) -> None:
        await self._owners.clear_failures(self.keys(telegram_user_id, login))
