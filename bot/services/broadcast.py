"""Broadcasts from the owners: paced through the shared sender, with live progress.

Each recipient's chat id is stored as the cursor *before* the message goes out, so a
broadcast cut short by a restart is reported and can be resumed without anyone getting
it twice (the one message in flight at the moment of a crash may be lost, never doubled).

A broadcast is sent by one instance (its owner). Stop may be pressed on any instance: it is
asked for in the database and the owner ends at its next recipient. A broadcast whose
instance stopped is reported once, by whichever instance notices first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.domain import BroadcastStatus
from bot.locales import PoI18n, chat_locale
from bot.services.clock import utcnow
from bot.services.notifier import SendOutcome, TelegramSender
from bot.storage.owners import BroadcastRecord, OwnerStore
from bot.storage.store import Store

log = logging.getLogger(__name__)

STOP_PREFIX = "bc:stop:"
RESUME_PREFIX = "bc:resume:"
PROGRESS_EVERY_SECONDS = 2.0
PAGE = 200


@dataclass
class _Tally:
    sent: int = 0
    failed: int = 0
    blocked: int = 0

    @classmethod
    def of(cls, record: BroadcastRecord) -> _Tally:
        """Where a stored broadcast left off."""
        return cls(record.sent, record.failed, record.blocked)

    def counts(self) -> dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "blocked": self.blocked}

    def add(self, outcome: SendOutcome) -> None:
        if outcome is SendOutcome.DELIVERED:
            self.sent += 1
        elif outcome is SendOutcome.BLOCKED:
            self.blocked += 1
        else:
            self.failed += 1


class BroadcastService:
    def __init__(
        self,
        owners: OwnerStore,
        store: Store,
        sender: TelegramSender,
        bot: Bot,
        i18n: PoI18n,
        instance: str,
    ) -> None:
        self._instance = instance
        self._owners = owners
        self._store = store
        self._sender = sender
        self._bot = bot
        self._i18n = i18n
        self._running: dict[int, tuple[asyncio.Task[None], asyncio.Event]] = {}

    async def recipients(self) -> int:
        return await self._owners.count_recipients()

    async def start(self, admin_id: int, admin_chat_id: int, text: str) -> int:
        total = await self._owners.count_recipients()
        broadcast_id = await self._owners.create_broadcast(
            admin_id, admin_chat_id, text, total, utcnow(), owner=self._instance
        )
        record = await self._owners.get_broadcast(broadcast_id)
        assert record is not None
        self._spawn(record, _Tally())
        return broadcast_id

    async def resume(self, broadcast_id: int) -> bool:
        """Send an interrupted broadcast on from here; False when it is not interrupted."""
        if broadcast_id in self._running:
            return False
        record = await self._owners.resume_broadcast(broadcast_id, self._instance)
        if record is None:
            return False
        self._spawn(record, _Tally.of(record))
        return True

    async def cancel(self, broadcast_id: int) -> bool:
        """Stop a running broadcast, whichever instance sends it; False when none runs."""
        running = self._running.get(broadcast_id)
        if running is not None:
            running[1].set()  # ours: at once, without waiting for the next recipient
        asked = await self._owners.request_broadcast_stop(broadcast_id)
        return asked or running is not None

    async def report_interrupted(self) -> int:
        """Broadcasts whose instance stopped while sending them are reported to the owner
        who started them, once across all instances (at startup and then from time to time:
        see services/instance.py)."""
        records = await self._owners.take_interrupted_broadcasts(utcnow())
        for record in records:
            locale = await self._locale(record.admin_chat_id)
            tally = _Tally.of(record)
            text = self._tally_text("broadcast-interrupted", locale, record, tally)
            button = InlineKeyboardButton(
                text=self._i18n.plain("button-resume", locale),
                callback_data=f"{RESUME_PREFIX}{record.id}",
            )
            markup = InlineKeyboardMarkup(inline_keyboard=[[button]])
            await self._sender.send(record.admin_chat_id, text, markup)
        return len(records)

    async def stop_all(self, grace: float = 1.0) -> None:
        """On shutdown: stop sending; the cursor is stored, so the next start reports it."""
        tasks = [task for task, _ in self._running.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, grace)

    async def wait(self, broadcast_id: int) -> None:
        """Until the broadcast's task ends (for tests and for shutdown)."""
        running = self._running.get(broadcast_id)
        if running is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await running[0]

    # -- the sending task -------------------------------------------------------------------

    def _spawn(self, record: BroadcastRecord, tally: _Tally) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(self._run(record, tally, stop), name=f"broadcast-{record.id}")
        self._running[record.id] = (task, stop)
        task.add_done_callback(lambda t: self._finished(record.id, t))

    def _finished(self, broadcast_id: int, task: asyncio.Task[None]) -> None:
        self._running.pop(broadcast_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("broadcast %s failed", broadcast_id, exc_info=task.exception())

    async def _run(self, record: BroadcastRecord, tally: _Tally, stop: asyncio.Event) -> None:
        locale = await self._locale(record.admin_chat_id)
        progress_id = await self._progress(record, tally, locale, None)
        await self._owners.update_broadcast(record.id, progress_message_id=progress_id)
        cursor = record.cursor
        last_progress = time.monotonic()
        status: BroadcastStatus | None = BroadcastStatus.DONE
        while status is BroadcastStatus.DONE:
            page = await self._owners.recipients(cursor, PAGE)
            if not page:
                break
            for chat_id in page:
                if stop.is_set():
                    status = BroadcastStatus.CANCELLED
                    break
                cursor = chat_id
                if not await self._owners.advance_broadcast(
                    record.id, self._instance, chat_id, tally.counts()
                ):
                    status = await self._why_not_ours(record.id)
                    break
                outcome = await self._sender.send(chat_id, record.text)
                tally.add(outcome)
                if outcome is SendOutcome.BLOCKED:
                    await self._store.mark_chat_blocked(chat_id, utcnow())
                if time.monotonic() - last_progress >= PROGRESS_EVERY_SECONDS:
                    last_progress = time.monotonic()
                    await self._progress(record, tally, locale, progress_id)
        if status is None:
            log.warning("broadcast %s was taken over by another instance; stopped here", record.id)
            return
        finished = await self._owners.finish_broadcast(
            record.id, self._instance, status, tally.counts(), utcnow()
        )
        if finished:
            await self._progress(record, tally, locale, progress_id, final=status)
        log.info("broadcast %s %s: %s", record.id, status, tally)

    async def _why_not_ours(self, broadcast_id: int) -> BroadcastStatus | None:
        """The broadcast stopped being this instance's to send: cancelled when stop was
        pressed (on any instance), None when another instance took it over."""
        record = await self._owners.get_broadcast(broadcast_id)
        if record is not None and record.status is BroadcastStatus.STOPPING:
            return BroadcastStatus.CANCELLED
        return None

    async def _progress(
        self,
        record: BroadcastRecord,
        tally: _Tally,
        locale: str,
        message_id: int | None,
        final: BroadcastStatus | None = None,
    ) -> int | None:
        key = {None: "broadcast-progress", BroadcastStatus.DONE: "broadcast-done"}.get(
            final, "broadcast-stopped"
        )
        text = self._tally_text(key, locale, record, tally)
        markup = None
        if final is None:
            button = InlineKeyboardButton(
                text=self._i18n.plain("button-stop", locale),
                callback_data=f"{STOP_PREFIX}{record.id}",
            )
            markup = InlineKeyboardMarkup(inline_keyboard=[[button]])
        try:
            if message_id is None:
                sent = await self._bot.send_message(record.admin_chat_id, text, reply_markup=markup)
                return sent.message_id
            await self._bot.edit_message_text(
                text, chat_id=record.admin_chat_id, message_id=message_id, reply_markup=markup
            )
        except TelegramAPIError as exc:
            # Progress is a courtesy: a failed edit never stops the broadcast.
            log.info("broadcast %s progress not shown: %s", record.id, exc)
        return message_id

    def _tally_text(self, key: str, locale: str, record: BroadcastRecord, tally: _Tally) -> str:
        return self._i18n.text(
            key,
            locale,
            id=record.id,
            **tally.counts(),
            total=record.total,
        )

    async def _locale(self, chat_id: int) -> str:
        return chat_locale(*await self._store.chat_languages(chat_id))
