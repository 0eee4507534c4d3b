"""The notice outbox: delivered on its own loop, through failures, stops and restarts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram import Bot
from sqlalchemy import text

from bot.domain import AccountKey, Lease, NoticeState
from bot.locales import build_i18n
from bot.services import notifier as notifier_module
from bot.services.notifier import Notifier, TelegramSender
from bot.services.watch import WatchConfig
from bot.spaces import Account, SpacesAPIError
from bot.storage.store import Store
from tests.conftest import TEST_INSTANCE, only_session, spaces_session
from tests.watch.conftest import MakeKit, WatchKit, account

I18N = build_i18n()


async def notice_of(store: Store, chat_id: int) -> NoticeState:
    async with store._sessionmaker() as db:
        value = await db.scalar(
            text("SELECT notice FROM remote_sessions WHERE chat_id = :c"), {"c": chat_id}
        )
    return NoticeState(value)


async def set_notice(store: Store, chat_id: int, state: NoticeState) -> None:
    async with store._sessionmaker.begin() as db:
        await db.execute(
            text(
                "UPDATE remote_sessions SET notice = :n, state = 'ended', next_check_at = NULL "
                "WHERE chat_id = :c"
            ),
            {"n": state.value, "c": chat_id},
        )


async def eventually(condition: Callable[[], Awaitable[bool] | bool], limit: float = 10.0) -> None:
    """Waits until `condition` holds (polling); fails the test when it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert loop.time() < deadline, "the condition never held"
        await asyncio.sleep(0.02)


async def end_sessions(kit: WatchKit, chats: range) -> None:
    """Links the chats and lets one sweep find every session ended."""
    for chat_id in chats:
        await kit.link(chat_id, f"{chat_id:04d}")
    kit.spaces.default = SpacesAPIError("01001")
    await kit.watch.sweep()
    kit.spaces.default = None


def told(kit: WatchKit, chats: range) -> list[int]:
    return [len(kit.tg.sent_messages(chat_id)) for chat_id in chats]


async def run_loop(
    body: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(body(stop))


async def stop_loop(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, 5)


# -- 1. notices are an outbox of their own --------------------------------------------------


async def test_notices_go_out_while_the_watch_is_behind(make_kit: MakeKit) -> None:
    """More sessions are due than one batch, and the checks after the first batch never
    finish: the expiry found in the first batch is told all the same."""
    kit: WatchKit = make_kit(
        config=WatchConfig(interval=900, concurrency=2, spaces_rate=0, batch_size=5)
    )
    start = datetime.now(UTC) - timedelta(minutes=5)
    for chat_id in range(1, 31):  # oldest first: chat 1 is in the first batch
        due = start + timedelta(seconds=chat_id)
        await kit.store.save_session(
            chat_id, chat_id, spaces_session(f"{chat_id:04d}"), due, next_check_at=due
        )
    gate = asyncio.Event()
    checked: list[str] = []

    async def slow_check(sid: str) -> Account:
        checked.append(sid)
        if sid == "0001":
            raise SpacesAPIError("01001")
        if len(checked) > 5:
            await gate.wait()  # Spaces answers the rest only after the test has seen the notice
        return account(sid)

    kit.spaces.check = slow_check  # type: ignore[method-assign]
    watch_stop, watch_task = await run_loop(kit.watch.run)
    outbox_stop, outbox_task = await run_loop(kit.notifier.run)
    try:
        await eventually(lambda: len(kit.tg.sent_messages(1)) == 1)
        backlog = await kit.store.backlog(datetime.now(UTC))
        assert backlog.overdue_sessions >= 20  # the watch is still behind
        assert backlog.pending_notices == 0
    finally:
        gate.set()
        await stop_loop(watch_stop, watch_task)
        await stop_loop(outbox_stop, outbox_task)
    assert told(kit, range(2, 31)) == [0] * 29


async def test_the_outbox_wakes_at_once_when_a_sweep_ends_a_session(make_kit: MakeKit) -> None:
    kit: WatchKit = make_kit(poll_seconds=3600)
    outbox_stop, outbox_task = await run_loop(kit.notifier.run)
    try:
        await kit.link(1, "1111")
        kit.spaces.answers["1111"] = SpacesAPIError("01001")
        await asyncio.sleep(0.1)  # the outbox has looked once and sleeps now
        await kit.watch.sweep()
        await eventually(lambda: len(kit.tg.sent_messages(1)) == 1)  # long before the poll
    finally:
        await stop_loop(outbox_stop, outbox_task)


# -- 2. delivery never deadlocks ----------------------------------------------------------


async def test_a_proxy_page_instead_of_telegram_is_a_passing_failure(
    kit: WatchKit, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An HTML error page (aiogram's ClientDecodeError) mid-burst: nothing is stranded, and
    every notice arrives once after a retry."""
    monkeypatch.setattr(notifier_module, "NOTICE_RETRY_SECONDS", 0.0)
    chats = range(1, 41)
    await end_sessions(kit, chats)
    kit.tg.answer_page_next("sendMessage", times=5)
    stop, task = await run_loop(kit.notifier.run)
    try:
        await eventually(lambda: told(kit, chats) == [1] * 40)
    finally:
        await stop_loop(stop, task)
    pages = [c for c in kit.tg.calls_of("sendMessage") if c.status == 502]
    assert len(pages) == 5
    assert [await notice_of(kit.store, c) for c in chats] == [NoticeState.SENT] * 40
    assert "got no answer from Telegram" in caplog.text


async def test_an_unexpected_error_in_a_send_is_retried(
    kit: WatchKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notifier_module, "NOTICE_RETRY_SECONDS", 0.0)
    chats = range(1, 13)
    await end_sessions(kit, chats)
    real = kit.sender.send
    failures = 0

    async def flaky(chat_id: int, *args: object, **kwargs: object) -> object:
        nonlocal failures
        if chat_id == 3 and failures < 2:
            failures += 1
            raise RuntimeError("a bug somewhere below")
        return await real(chat_id, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(kit.sender, "send", flaky)
    stop, task = await run_loop(kit.notifier.run)
    try:
        await eventually(lambda: told(kit, chats) == [1] * 12)
    finally:
        await stop_loop(stop, task)
    assert failures == 2


async def test_a_database_hiccup_recording_a_notice_is_retried_not_resent(
    kit: WatchKit, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    chats = range(1, 21)
    await end_sessions(kit, chats)
    real = kit.store.finish_notice
    hiccups = 0

    async def hiccup(chat_id: int, key: AccountKey, owner: str, **kwargs: object) -> None:
        nonlocal hiccups
        if hiccups < 3:
            hiccups += 1
            raise OSError("database is locked")
        await real(chat_id, key, owner, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(kit.store, "finish_notice", hiccup)
    monkeypatch.setattr(Notifier, "_backoff", lambda self, failures: 0.01)
    delivered = await asyncio.wait_for(kit.notifier.deliver_pending(), 10)
    assert delivered == 20
    assert told(kit, chats) == [1] * 20
    assert [await notice_of(kit.store, c) for c in chats] == [NoticeState.SENT] * 20
    assert caplog.text.count("recording the notice to chat") == 3


async def test_a_database_error_while_claiming_is_logged_and_retried(
    kit: WatchKit, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    chats = range(1, 6)
    await end_sessions(kit, chats)
    real = kit.store.claim_notice
    broken = True

    async def claim(now: datetime, owner: str) -> object:
        if broken:
            raise OSError("disk I/O error")
        return await real(now, owner)

    monkeypatch.setattr(kit.store, "claim_notice", claim)
    monkeypatch.setattr(Notifier, "_backoff", lambda self, failures: 0.05)
    stop, task = await run_loop(kit.notifier.run)
    try:
        await eventually(lambda: "delivering expiry notices failed" in caplog.text)
        broken = False
        await eventually(lambda: told(kit, chats) == [1] * 5)
    finally:
        await stop_loop(stop, task)


# -- 3. a stop loses no notices -------------------------------------------------------------


async def test_a_stop_mid_burst_returns_promptly_and_gives_back_unsent_claims(
    store: Store,
    kit: WatchKit,
    make_kit: MakeKit,
    bot: Bot,
) -> None:
    chats = range(1, 31)
    await end_sessions(kit, chats)
    kit.tg.hold("sendMessage")  # the first send is in flight and stays there
    slow = TelegramSender(bot, rate=0.2)  # the others wait for their slot
    notifier = Notifier(store, slow, I18N, [], instance=TEST_INSTANCE, concurrency=4)
    delivery = asyncio.create_task(notifier.deliver_pending())
    await eventually(lambda: kit.tg.held_calls("sendMessage") == 1)

    async def others_claimed() -> bool:  # each other sender holds one while it waits its slot
        async with store._sessionmaker() as db:
            claimed = await db.scalar(
                text("SELECT count(*) FROM remote_sessions WHERE notice='claimed'")
            )
        return bool(claimed == 3)

    await eventually(others_claimed)
    delivery.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(delivery, 3)
    states = [await notice_of(store, c) for c in chats]
    assert states.count(NoticeState.SENDING) == 1  # only the message in flight is in doubt
    assert states.count(NoticeState.CLAIMED) == 0  # the others were given back
    assert states.count(NoticeState.PENDING) == 29
    kit.tg.release("sendMessage")

    restarted = make_kit()
    stop, task = await run_loop(restarted.notifier.run)
    try:
        await eventually(lambda: sum(told(kit, chats)) >= 29)
    finally:
        await stop_loop(stop, task)
    assert max(told(kit, chats)) == 1  # none twice
    states = [await notice_of(store, c) for c in chats]
    assert states.count(NoticeState.UNCERTAIN) == 1
    assert states.count(NoticeState.SENT) == 29


async def test_a_restart_resends_claims_never_handed_over_and_settles_the_one_in_flight(
    kit: WatchKit, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    chats = range(1, 5)
    await end_sessions(kit, chats)
    await set_notice(kit.store, 1, NoticeState.CLAIMED)  # a crash while waiting for its slot
    await set_notice(kit.store, 2, NoticeState.SENDING)  # a crash while Telegram had it
    await set_notice(kit.store, 3, NoticeState.SENT)
    stop, task = await run_loop(kit.notifier.run)
    try:
        await eventually(lambda: told(kit, chats) == [1, 0, 0, 1])
        await asyncio.sleep(0.2)  # a few more rounds of the outbox: still nothing twice
    finally:
        await stop_loop(stop, task)
    assert told(kit, chats) == [1, 0, 0, 1]
    assert await notice_of(kit.store, 2) == NoticeState.UNCERTAIN
    assert "1 expiry notice(s) claimed by a stopped process" in caplog.text
    assert "1 expiry notice(s) were in flight" in caplog.text


async def test_a_429_gives_the_claim_back_to_claimed(kit: WatchKit) -> None:
    """While Telegram asks to wait, the notice is not in flight: a stop then gives it back."""
    await end_sessions(kit, range(1, 2))
    kit.tg.fail_next(
        "sendMessage",
        error_code=429,
        description="Too Many Requests: retry after 30",
        retry_after=30,
    )
    delivery = asyncio.create_task(kit.notifier.deliver_pending())
    await eventually(lambda: len(kit.tg.calls_of("sendMessage")) == 1)

    async def claimed_again() -> bool:
        return await notice_of(kit.store, 1) == NoticeState.CLAIMED

    await eventually(claimed_again)
    delivery.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(delivery, 3)
    assert await notice_of(kit.store, 1) == NoticeState.PENDING


# -- 4. a silent database hangs nothing ---------------------------------------------------


async def test_a_stuck_database_step_of_the_outbox_is_logged_and_recovered(
    store: Store, kit: WatchKit, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    chats = range(1, 4)
    await end_sessions(kit, chats)
    real = store.claim_notice
    silent = True

    async def claim(now: datetime, owner: str) -> object:
        if silent:
            await asyncio.Event().wait()  # a connection that never answers
        return await real(now, owner)

    monkeypatch.setattr(store, "claim_notice", claim)
    monkeypatch.setattr(Notifier, "_backoff", lambda self, failures: 0.05)
    notifier = Notifier(
        store, kit.sender, I18N, [], instance=TEST_INSTANCE, database_step_seconds=0.2
    )
    stop, task = await run_loop(notifier.run)
    try:
        await eventually(lambda: "claiming a notice is stuck" in caplog.text)
        silent = False
        await eventually(lambda: told(kit, chats) == [1] * 3)
    finally:
        await stop_loop(stop, task)
    stuck = [r for r in caplog.records if "is stuck" in r.getMessage()]
    assert stuck and all(r.exc_info is None for r in stuck)  # one line each, no traceback


async def test_a_stuck_database_step_of_the_watch_is_logged_and_recovered(
    make_kit: MakeKit,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kit: WatchKit = make_kit(
        config=WatchConfig(interval=900, spaces_rate=0, database_step_seconds=0.2)
    )
    await kit.link(1, "1111")
    real = kit.store.claim_due_sessions
    silent = True

    async def due(now: datetime, limit: int, lease: Lease) -> object:
        if silent:
            await asyncio.Event().wait()
        return await real(now, limit, lease)

    monkeypatch.setattr(kit.store, "claim_due_sessions", due)
    monkeypatch.setattr("bot.services.watch.MAX_RESTART_PAUSE", 0.05)
    stop, task = await run_loop(kit.watch.run)
    try:
        await eventually(lambda: "claiming the due sessions is stuck" in caplog.text)
        before = kit.watch.heartbeat.age()
        silent = False
        await eventually(lambda: kit.spaces.calls == ["1111"])
    finally:
        await stop_loop(stop, task)
    assert before is None  # no progress while it was stuck: readiness says so
    assert kit.watch.heartbeat.age() is not None


async def test_a_check_that_never_answers_is_transient(
    make_kit: MakeKit,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kit: WatchKit = make_kit(config=WatchConfig(interval=900, spaces_rate=0, spaces_timeout=0.01))
    await kit.link(1, "1111")
    await kit.link(2, "2222")

    async def hangs(sid: str) -> Account:
        if sid == "1111":
            await asyncio.Event().wait()
        return account(sid)

    kit.spaces.check = hangs  # type: ignore[method-assign]
    await asyncio.wait_for(kit.watch.sweep(), 10)
    assert "checking a spaces session of chat 1 is stuck" in caplog.text
    one = await only_session(kit.store, 1)
    two = await only_session(kit.store, 2)
    assert one is not None and one.state == "unconfirmed"
    assert two is not None and two.state == "active"
