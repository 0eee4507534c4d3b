"""Messages the bot sends on its own: paced under Telegram's limits, never dropped.

This is the one service that talks to aiogram: background notices have no update to
answer, so they are sent here, in each chat's language.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.domain import AccountKey, ExpiryNotice
from bot.locales import PoI18n, chat_locale
from bot.services.clock import utcnow
from bot.services.pacing import RateLimiter
from bot.services.watchdog import (
    DATABASE_STEP_SECONDS,
    Heartbeat,
    StepStuck,
    pause_or_stop,
    within,
)
from bot.storage.store import Store
from bot.telegram_retry import paced

log = logging.getLogger(__name__)

RELOGIN = "relogin"  # callback data of "log in again" buttons: RELOGIN:<account tag>


def relogin_data(tag: str) -> str:
    """The relogin button of one account (domain.AccountKey.tag): it names what it acts on."""
    return f"{RELOGIN}:{tag}"


PER_CHAT_INTERVAL = 1.0
MAX_RETRY_AFTER_ROUNDS = 8
# A notice that could not be sent for a reason that may pass is tried again after this.
NOTICE_RETRY_SECONDS = 60.0
# The outbox looks for notices this often even when nobody woke it: retries that came due,
# chats that unblocked the bot, notices queued by another process.
NOTICE_POLL_SECONDS = 5.0
# The longest wait between two tries of the outbox after errors.
MAX_BACKOFF_SECONDS = 30.0
# Giving back claims on shutdown must not hold the stop up for long.
GIVE_BACK_SECONDS = 2.0

T = TypeVar("T")


class SendOutcome(StrEnum):
    DELIVERED = "delivered"
    BLOCKED = "blocked"  # the person blocked the bot, or the chat is gone
    FAILED = "failed"  # network or Telegram trouble: worth another try later
    REJECTED = "rejected"  # Telegram refused this message: another try would fail too
    WITHDRAWN = "withdrawn"  # the caller's handover said no: nothing was sent


class Handover(Protocol):
    """Lets the caller record, right before each send call, that a message is in flight."""

    async def begin(self) -> bool:
        """Called right before the message is handed to Telegram; False: do not send it."""

    async def refused(self) -> None:
        """Telegram asked to wait (429): the message did not go out and will be tried again."""


class TelegramSender:
    """One queue for everything the bot sends on its own.

    A shared limiter keeps the whole bot under `rate` messages/s, each chat gets at most
    one per second, and a 429 pauses the whole queue for the time Telegram asks.
    """

    def __init__(self, bot: Bot, rate: float, per_chat_interval: float = PER_CHAT_INTERVAL):
        self._bot = bot
        self._limiter = RateLimiter(rate)
        self._per_chat = per_chat_interval
        self._last_sent: dict[int, float] = {}
        self.stats: Counter[str] = Counter()

    async def send(
        self,
        chat_id: int,
        text: str,
        reply_markup: InlineKeyboardMarkup | None = None,
        *,
        handover: Handover | None = None,
    ) -> SendOutcome:
        for _ in range(MAX_RETRY_AFTER_ROUNDS):
            await self._wait_for_chat(chat_id)
            await self._limiter.acquire()
            if handover is not None and not await handover.begin():
                return SendOutcome.WITHDRAWN
            self._last_sent[chat_id] = time.monotonic()
            try:
                with paced():  # a 429 comes straight here and pauses the whole queue
                    await self._bot.send_message(chat_id, text, reply_markup=reply_markup)
            except TelegramRetryAfter as exc:
                self.stats["retry_after"] += 1
                log.warning("Telegram asks to wait %s s; pausing all sends", exc.retry_after)
                self._limiter.pause(exc.retry_after)
                if handover is not None:
                    await handover.refused()
                continue
            except (TelegramForbiddenError, TelegramNotFound) as exc:
                log.info("chat %s cannot be reached: %s", chat_id, exc.message)
                return self._count(SendOutcome.BLOCKED)
            except TelegramBadRequest as exc:
                if "chat not found" in exc.message.lower():
                    return self._count(SendOutcome.BLOCKED)
                log.error("Telegram refused a message to chat %s: %s", chat_id, exc.message)
                return self._count(SendOutcome.REJECTED)
            except TelegramUnauthorizedError:
                raise  # a revoked token: nothing will work, let the bot fail loudly
            except (TelegramNetworkError, TelegramServerError) as exc:
                log.warning("sending to chat %s failed, will retry later: %s", chat_id, exc)
                return self._count(SendOutcome.FAILED)
            except ClientDecodeError as exc:
                # Something in front of Telegram (a proxy's HTML error page) answered instead.
                log.warning(
                    "sending to chat %s got no answer from Telegram, will retry later: %s",
                    chat_id,
                    exc.message,
                )
                return self._count(SendOutcome.FAILED)
            return self._count(SendOutcome.DELIVERED)
        return self._count(SendOutcome.FAILED)

    def _count(self, outcome: SendOutcome) -> SendOutcome:
        self.stats[outcome.value] += 1
        return outcome

    async def _wait_for_chat(self, chat_id: int) -> None:
        last = self._last_sent.get(chat_id)
        if last is not None:
            wait = last + self._per_chat - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        if len(self._last_sent) > 10_000:
            horizon = time.monotonic() - self._per_chat
            self._last_sent = {c: t for c, t in self._last_sent.items() if t > horizon}


class _NoticeHandover:
    """The outbox side of one send: CLAIMED -> SENDING right before the call, and back on 429."""

    def __init__(self, notifier: Notifier, chat_id: int, key: AccountKey) -> None:
        self._notifier = notifier
        self._chat_id = chat_id
        self._key = key

    async def begin(self) -> bool:
        n = self._notifier
        mine = await n.db_step(
            "recording a notice as sent off",
            n.store.start_sending_notice(self._chat_id, self._key, n.instance),
        )
        # In flight now (or no longer ours): not given back.
        n.claimed.discard((self._chat_id, self._key))
        return mine

    async def refused(self) -> None:
        n = self._notifier
        taken = n.store.take_back_notice(self._chat_id, self._key, n.instance)
        if await n.db_step("taking a notice back", taken):
            n.claimed.add((self._chat_id, self._key))


class Notifier:
    """Renders and sends the expiry notices (the outbox) and the owners' notices.

    The outbox is its own loop (`run`): woken when a notice becomes pending and every
    `poll_seconds`, so notices never wait for the session checks, however far behind those
    are. `concurrency` senders each claim one notice, send it, record the answer. Claims
    are this process's (`instance`); other processes never send them.
    """

    def __init__(
        self,
        store: Store,
        sender: TelegramSender,
        i18n: PoI18n,
        admin_ids: Iterable[int],
        *,
        instance: str,
        concurrency: int = 8,
        poll_seconds: float = NOTICE_POLL_SECONDS,
        database_step_seconds: float = DATABASE_STEP_SECONDS,
        stats: Callable[[Mapping[str, int], datetime], Awaitable[None]] | None = None,
        service_names: Callable[[str], str] = str,
    ) -> None:
        self.store = store
        self.instance = instance
        self._service_name = service_names
        self._sender = sender
        self._i18n = i18n
        self._admin_ids = sorted(set(admin_ids))
        self._concurrency = concurrency
        self._poll = poll_seconds
        self._db_seconds = database_step_seconds
        self._wake = asyncio.Event()
        # Claimed here and not yet handed to Telegram: given back when the loop stops.
        self.claimed: set[tuple[int, AccountKey]] = set()
        self.heartbeat = Heartbeat()
        self.delivered = 0
        self._stats = stats

    def wake(self) -> None:
        """A notice became pending: send it now rather than at the next poll."""
        self._wake.set()

    async def db_step(self, step: str, awaitable: Awaitable[T]) -> T:
        return await within(step, self._db_seconds, awaitable)

    # -- the outbox loop ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; every error is logged and retried with backoff."""
        await self._recover(stop)
        failures = 0
        while not stop.is_set():
            self._wake.clear()
            try:
                delivered = await self.deliver_pending(stop)
                if delivered and self._stats is not None:
                    await self.db_step(
                        "counting notices", self._stats({"notices": delivered}, utcnow())
                    )
                failures = 0
                pause = self._poll
                self.heartbeat.beat()  # progress: only a round that went through counts
            except StepStuck:
                failures += 1  # logged in one line where it was noticed
                pause = self._backoff(failures)
            except Exception:
                failures += 1
                pause = self._backoff(failures)
                log.exception("delivering expiry notices failed; trying again in %.0f s", pause)
            await pause_or_stop(stop, pause, self._wake)

    async def _recover(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                await self.recover_orphans()
                break
            except Exception as exc:
                failures += 1
                if not isinstance(exc, StepStuck):
                    log.warning("recovering interrupted notices failed: %r", exc)
                await pause_or_stop(stop, self._backoff(failures))
        else:
            return
        self.heartbeat.beat()

    async def recover_orphans(self) -> None:
        """Settle the claims of processes that stopped without giving them back (their lease
        ran out): at start, and from time to time (services/instance.py)."""
        resent, settled = await self.db_step(
            "recovering interrupted notices", self.store.recover_notices(utcnow())
        )
        if resent:
            log.info(
                "%d expiry notice(s) claimed by a stopped process but not sent: sending", resent
            )
            self.wake()
        if settled:
            log.warning(
                "%d expiry notice(s) were in flight when a process stopped; not resent", settled
            )

    def _backoff(self, failures: int) -> float:
        return min(MAX_BACKOFF_SECONDS, 0.5 * 2.0 ** min(failures, 10))

    async def deliver_pending(self, stop: asyncio.Event | None = None) -> int:
        """Send every notice that can be sent now; returns how many were delivered.

        Senders stop claiming once `stop` is set. The first error of any sender is raised
        after the others have finished their notice; claims never handed to Telegram are
        given back first, also when this is cancelled.
        """
        stop = stop or asyncio.Event()
        try:
            results = await asyncio.gather(
                *(self._send_until_done(stop) for _ in range(self._concurrency)),
                return_exceptions=True,
            )
        finally:
            await self._give_back()
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        return sum(r for r in results if isinstance(r, int))

    async def _send_until_done(self, stop: asyncio.Event) -> int:
        delivered = 0
        while not stop.is_set():
            notice = await self.db_step(
                "claiming a notice", self.store.claim_notice(utcnow(), self.instance)
            )
            if notice is None:
                break
            self.claimed.add((notice.chat_id, notice.key))
            delivered += await self._deliver(notice, stop)
            self.heartbeat.beat()
        return delivered

    async def _give_back(self) -> None:
        if not self.claimed:
            return
        claims = sorted(self.claimed, key=lambda c: (c[0], c[1].service, c[1].account_id))
        try:
            # Shielded: this runs on cancellation too, and must not be cut short by it.
            released = await asyncio.shield(
                within(
                    "giving back claimed notices",
                    GIVE_BACK_SECONDS,
                    self.store.release_notices(claims, self.instance),
                )
            )
        except Exception as exc:
            # Settled once this process's lease runs out (recover_notices): nothing is lost.
            log.warning(
                "claimed notices not given back now (%r); they are once this process's "
                "lease runs out",
                exc,
            )
            return
        self.claimed.difference_update(claims)
        log.info("%d claimed notice(s) given back unsent", released)

    async def _deliver(self, notice: ExpiryNotice, stop: asyncio.Event) -> int:
        locale = chat_locale(notice.language, notice.language_code)
        service = self._service_name(notice.key.service)
        text = self._i18n.text(
            "notice-session-ended",
            locale,
            service=service,
            nickname=notice.display_name,
            confirmed_at=self._i18n.moment(notice.last_confirmed_at, utcnow(), locale),
        )
        # The button names the account it logs in to again (a chat may hold several).
        button = InlineKeyboardButton(
            text=self._i18n.plain(
                "button-relogin", locale, service=service, nickname=notice.display_name
            ),
            callback_data=relogin_data(notice.key.tag),
        )
        markup = InlineKeyboardMarkup(inline_keyboard=[[button]])
        handover = _NoticeHandover(self, notice.chat_id, notice.key)
        try:
            outcome = await self._sender.send(notice.chat_id, text, markup, handover=handover)
        except Exception:
            if (notice.chat_id, notice.key) in self.claimed:
                raise  # recording the handover failed: nothing was sent, the claim goes back
            # Whatever went wrong with this one send passes: it is tried again later.
            log.exception("sending the expiry notice to chat %s failed", notice.chat_id)
            outcome = SendOutcome.FAILED
        if outcome is SendOutcome.WITHDRAWN:
            return 0
        await self._record(notice.chat_id, notice.key, outcome, stop)
        if outcome is SendOutcome.DELIVERED:
            self.delivered += 1
            return 1
        return 0

    async def _record(
        self, chat_id: int, key: AccountKey, outcome: SendOutcome, stop: asyncio.Event
    ) -> None:
        """Store what Telegram answered, retrying through a database hiccup.

        Given up only when the bot stops: the notice then stays SENDING and, once this
        process's lease has run out, it is settled as uncertain, so a message that may have
        arrived is never sent twice.
        """
        failures = 0
        while True:
            try:
                await self.db_step(
                    "recording a sent notice", self._store_outcome(chat_id, key, outcome)
                )
                return
            except Exception as exc:
                failures += 1
                if not isinstance(exc, StepStuck):
                    log.warning("recording the notice to chat %s failed: %r", chat_id, exc)
                if stop.is_set():
                    return
                await pause_or_stop(stop, self._backoff(failures))

    async def _store_outcome(self, chat_id: int, key: AccountKey, outcome: SendOutcome) -> None:
        if outcome is SendOutcome.BLOCKED:
            await self.store.mark_chat_blocked(chat_id, utcnow())
            await self.store.finish_notice(chat_id, key, self.instance, delivered=False)
        elif outcome is SendOutcome.FAILED:
            retry_at = utcnow() + timedelta(seconds=NOTICE_RETRY_SECONDS)
            await self.store.finish_notice(
                chat_id, key, self.instance, delivered=False, retry_at=retry_at
            )
        else:  # delivered, or rejected: another try would be refused the same way
            await self.store.finish_notice(chat_id, key, self.instance, delivered=True)

    async def tell_admins(self, key: str, **params: str) -> None:
        for admin_id in self._admin_ids:
            locale = chat_locale(*await self.store.chat_languages(admin_id))
            outcome = await self._sender.send(admin_id, self._i18n.text(key, locale, **params))
            if outcome is not SendOutcome.DELIVERED:
                log.warning("owner %s was not told %s: %s", admin_id, key, outcome.value)
