"""The updates being handled now, counted from the moment one is fed to the dispatcher (by
long polling or by the webhook alike, the person's conversation lock included), so that a
stop lets them finish before the storage and the connections close under them."""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update


class InFlightUpdates:
    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def started(self) -> None:
        self.count += 1
        self._idle.clear()

    def finished(self) -> None:
        self.count -= 1
        if not self.count:
            self._idle.set()

    async def drain(self, grace: float) -> int:
        """Wait up to `grace` seconds for the updates in hand; how many were left."""
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            return self.count
        return 0


class CountingDispatcher(Dispatcher):
    """aiogram's Dispatcher; every update fed to it counts in `in_flight` until handled
    (`in_flight` stays in the workflow data, as every other keyword does)."""

    def __init__(self, *, in_flight: InFlightUpdates, **kwargs: Any) -> None:
        super().__init__(in_flight=in_flight, **kwargs)
        self.in_flight = in_flight

    async def feed_update(self, bot: Bot, update: Update, **kwargs: Any) -> Any:
        self.in_flight.started()
        try:
            return await super().feed_update(bot, update, **kwargs)
        finally:
            self.in_flight.finished()
