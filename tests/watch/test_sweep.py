from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from bot.domain import NoticeState, SessionState
from bot.locales import build_i18n
from bot.services.watch import OutageDetector
from bot.spaces import SpacesAPIError, SpacesUnavailable
from tests.conftest import only_session, spaces_session
from tests.watch.conftest import ADMIN, MakeKit, WatchKit

I18N = build_i18n()

TRANSIENT = [
    SpacesUnavailable("timeout"),
    SpacesUnavailable("network"),
    SpacesUnavailable("http_status", 502),
    SpacesUnavailable("not_json"),
    SpacesUnavailable("bad_answer"),
    SpacesAPIError("00007"),
    SpacesAPIError("00006"),
    SpacesAPIError("00010"),
    RuntimeError("a bug in one session's handling"),
]


async def notice_of(kit: WatchKit, chat_id: int) -> NoticeState:
    async with kit.store._sessionmaker() as db:
        value = await db.scalar(
            text("SELECT notice FROM remote_sessions WHERE chat_id = :c"), {"c": chat_id}
        )
    return NoticeState(value)


async def state_of(kit: WatchKit, chat_id: int) -> SessionState:
    session = await only_session(kit.store, chat_id)
    assert session is not None
    return session.state


@pytest.mark.parametrize("code", ["01001", "01004", "01005"])
async def test_expiry_is_told_once(kit: WatchKit, code: str) -> None:
    await kit.link(1, "1111")
    await kit.link(2, "2222", "Bob")
    kit.spaces.answers["1111"] = SpacesAPIError(code)
    await kit.sweep()
    assert await state_of(kit, 1) == SessionState.ENDED
    assert await state_of(kit, 2) == SessionState.ACTIVE
    sent = kit.tg.sent_messages(1)
    assert len(sent) == 1
    assert "Alice" in sent[0].params["text"]
    markup = sent[0].params["reply_markup"]["inline_keyboard"][0][0]
    assert markup["callback_data"].startswith("relogin:") and "Alice" in markup["text"]
    assert kit.tg.sent_messages(2) == []
    # Later sweeps, and a fresh watcher after a restart, say nothing more.
    await kit.sweep()
    session = await only_session(kit.store, 1)
    assert session is not None and session.next_check_at is None
    await kit.make_due(1)  # even if it were due again
    await kit.sweep()
    assert len(kit.tg.sent_messages(1)) == 1


async def test_a_nickname_reads_as_typed_in_the_button_and_escaped_in_the_text(
    kit: WatchKit,
) -> None:
    nickname = "<b>Bold</b>&Co"
    await kit.link(1, "1111", nickname)
    kit.spaces.answers["1111"] = SpacesAPIError("01001")
    await kit.sweep()
    [sent] = kit.tg.sent_messages(1)
    assert "&lt;b&gt;Bold&lt;/b&gt;&amp;Co" in sent.params["text"]  # HTML parse mode
    button = sent.params["reply_markup"]["inline_keyboard"][0][0]
    assert nickname in button["text"] and "&" + "lt;" not in button["text"]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: repr(e)[:40])
async def test_transient_failures_never_notify(kit: WatchKit, error: Exception) -> None:
    await kit.link(1, "1111")
    kit.spaces.default = error
    await kit.sweep()
    assert kit.tg.sent_messages() == []
    session = await only_session(kit.store, 1)
    assert session is not None and session.state == SessionState.UNCONFIRMED
    assert session.next_check_at is not None and session.next_check_at > datetime.now(UTC)
    # back to normal once Spaces answers
    kit.spaces.default = None
    await kit.make_due(1)
    await kit.sweep()
    assert await state_of(kit, 1) == SessionState.ACTIVE


async def test_confirmed_sessions_are_spread_over_the_interval(kit: WatchKit) -> None:
    for chat in range(1, 41):
        await kit.link(chat, f"{chat:04d}")
    before = datetime.now(UTC)
    await kit.sweep()
    times = []
    for chat in range(1, 41):
        s = await only_session(kit.store, chat)
        assert s is not None and s.next_check_at is not None
        times.append((s.next_check_at - before).total_seconds())
    assert min(times) >= 900 * 0.9 - 1 and max(times) <= 900 * 1.1 + 1
    assert len({round(t) for t in times}) > 20  # not all at the same moment


async def test_outage_touches_no_session_and_tells_owners_once(kit: WatchKit) -> None:
    await kit.store.touch_chat(ADMIN, ADMIN, "en-GB", datetime.now(UTC))  # owners in their language
    for chat in range(1, 11):
        await kit.link(chat, f"{chat:04d}")
    kit.spaces.default = SpacesUnavailable("http_status", 503)
    kit.spaces.answers["0001"] = SpacesAPIError("01001")  # even a "gone" is not trusted now
    await kit.sweep()
    for chat in range(1, 11):
        assert await state_of(kit, chat) == SessionState.ACTIVE
    admin = kit.notices(ADMIN)
    assert admin == [I18N.text("admin-service-down", "en", service="Spaces")]
    assert kit.tg.sent_messages(1) == []
    # still down: no second notice
    await kit.make_due(*range(1, 11))
    await kit.sweep()
    assert len(kit.notices(ADMIN)) == 1
    # back up
    kit.spaces.default = None
    kit.spaces.answers.clear()
    await kit.make_due(*range(1, 11))
    await kit.sweep()
    assert kit.notices(ADMIN) == [
        I18N.text("admin-service-down", "en", service="Spaces"),
        I18N.text("admin-service-up", "en", service="Spaces"),
    ]
    for chat in range(1, 11):
        assert await state_of(kit, chat) == SessionState.ACTIVE


async def test_outage_state_survives_a_restart(kit: WatchKit, make_kit: MakeKit) -> None:
    for chat in range(1, 8):
        await kit.link(chat, f"{chat:04d}")
    kit.spaces.default = SpacesUnavailable("timeout")
    await kit.sweep()
    assert len(kit.notices(ADMIN)) == 1
    fresh = make_kit()
    fresh.spaces.default = SpacesUnavailable("timeout")
    await kit.make_due(*range(1, 8))
    await fresh.sweep()
    assert len(kit.notices(ADMIN)) == 1


async def test_two_watchers_on_one_database_tell_the_owners_once(
    kit: WatchKit, make_kit: MakeKit
) -> None:
    await kit.store.touch_chat(ADMIN, ADMIN, "en", datetime.now(UTC))
    other = make_kit()
    await other.sweep()  # both have seen Spaces up before the outage
    for chat in range(1, 8):
        await kit.link(chat, f"{chat:04d}")
    for watcher in (kit, other, kit, other):
        watcher.spaces.default = SpacesUnavailable("timeout")
        await kit.make_due(*range(1, 8))
        await watcher.sweep()
    assert len(kit.notices(ADMIN)) == 1
    for watcher in (other, kit):
        watcher.spaces.default = None
        await kit.make_due(*range(1, 8))
        await watcher.sweep()
    assert kit.notices(ADMIN) == [
        I18N.text("admin-service-down", "en", service="Spaces"),
        I18N.text("admin-service-up", "en", service="Spaces"),
    ]


async def test_429_waits_and_delivers(kit: WatchKit) -> None:
    await kit.link(1, "1111")
    kit.spaces.answers["1111"] = SpacesAPIError("01001")
    kit.tg.fail_next(
        "sendMessage", error_code=429, description="Too Many Requests: retry after 1", retry_after=1
    )
    await kit.sweep()
    attempts = kit.tg.calls_of("sendMessage")
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 0.9
    assert len(kit.tg.sent_messages(1)) == 1


async def test_notices_over_several_claims_each_go_out_once(make_kit: MakeKit) -> None:
    kit: WatchKit = make_kit()
    for chat_id in range(1, 24):
        await kit.link(chat_id, f"{chat_id:04d}")
    kit.spaces.default = SpacesAPIError("01001")
    await kit.sweep()
    assert [len(kit.tg.sent_messages(chat_id)) for chat_id in range(1, 24)] == [1] * 23
    await kit.sweep()
    assert len(kit.tg.calls_of("sendMessage")) == 23


async def test_blocked_chat_is_marked_and_gets_the_notice_when_it_writes_again(
    kit: WatchKit,
) -> None:
    await kit.link(1, "1111")
    await kit.link(2, "2222", "Bob")
    kit.spaces.default = SpacesAPIError("01001")
    kit.tg.block_chat(1)
    await kit.sweep()
    assert len(kit.tg.sent_messages(2)) == 1  # the sweep went on for everyone else
    async with kit.store._sessionmaker() as db:
        blocked = (await db.execute(text("SELECT blocked_at FROM chats WHERE chat_id=1"))).scalar()
    assert blocked is not None
    tries = len(kit.tg.calls_of("sendMessage"))
    await kit.sweep()
    assert len(kit.tg.calls_of("sendMessage")) == tries  # not retried while blocked
    kit.tg.unblock_chat(1)
    await kit.store.touch_chat(1, 1, "en", datetime.now(UTC))
    await kit.sweep()
    assert len(kit.tg.sent_messages(1)) == 1


async def test_a_stop_after_sending_before_recording_sends_no_second_notice(
    kit: WatchKit,
    make_kit: MakeKit,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await kit.link(1, "1111")
    kit.spaces.answers["1111"] = SpacesAPIError("01001")
    await kit.watch.sweep()
    recording = asyncio.Event()

    async def never_answers(*args: object, **kwargs: object) -> None:
        recording.set()
        await asyncio.Event().wait()  # the process dies while the answer is being stored

    monkeypatch.setattr(kit.store, "finish_notice", never_answers)
    delivery = asyncio.create_task(kit.notifier.deliver_pending())
    await asyncio.wait_for(recording.wait(), 5)
    delivery.cancel()
    with pytest.raises(asyncio.CancelledError):
        await delivery
    assert len(kit.tg.sent_messages(1)) == 1
    monkeypatch.undo()

    restarted = make_kit()
    stop = asyncio.Event()
    task = asyncio.create_task(restarted.notifier.run(stop))
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert len(kit.tg.sent_messages(1)) == 1
    assert await notice_of(kit, 1) == NoticeState.UNCERTAIN


async def test_relogin_during_a_check_is_not_overwritten(kit: WatchKit) -> None:
    await kit.link(1, "1111")
    original_check = kit.spaces.check

    async def check_then_relogin(sid: str):  # type: ignore[no-untyped-def]
        now = datetime.now(UTC)
        await kit.store.save_session(
            1, 1, spaces_session("9999", "Alice"), now, next_check_at=now + timedelta(hours=1)
        )
        raise SpacesAPIError("01001")

    kit.spaces.check = check_then_relogin  # type: ignore[method-assign]
    await kit.sweep()
    kit.spaces.check = original_check  # type: ignore[method-assign]
    session = await only_session(kit.store, 1)
    assert (
        session is not None
        and session.secrets["sid"] == "9999"
        and session.state == SessionState.ACTIVE
    )
    assert kit.tg.sent_messages(1) == []


async def test_an_unreadable_session_is_skipped_and_the_rest_go_on(kit: WatchKit) -> None:
    await kit.link(1, "1111")
    await kit.link(2, "2222")
    async with kit.store._sessionmaker.begin() as db:
        await db.execute(
            text(
                'UPDATE remote_sessions SET secrets_enc=\'{"sid": "v1.deadbeef.AAAA"}\' '
                "WHERE chat_id=1"
            )
        )
    await kit.sweep()
    assert kit.spaces.calls == ["2222"]
    assert await state_of(kit, 2) == SessionState.ACTIVE


async def test_run_restarts_after_a_crash_and_stops_quickly(
    kit: WatchKit, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0
    real = kit.watch.sweep

    async def flaky() -> float:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return await real()

    monkeypatch.setattr(kit.watch, "sweep", flaky)
    monkeypatch.setattr("bot.services.watch.MAX_RESTART_PAUSE", 0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(kit.watch.run(stop))
    for _ in range(100):
        if calls >= 2:
            break
        await asyncio.sleep(0.05)
    assert calls >= 2
    assert "the session watch failed" in caplog.text
    loop = asyncio.get_running_loop()
    started = loop.time()
    stop.set()
    await asyncio.wait_for(task, 3)
    assert loop.time() - started < 2


def test_outage_detector_needs_a_majority_and_recovers() -> None:
    d = OutageDetector(window=10, min_samples=5, threshold=0.8, recover_after=3)
    for _ in range(4):
        d.observe(True)
    assert not d.down  # too few samples
    d.observe(True)
    assert d.down
    d.observe(False)
    d.observe(False)
    assert d.down
    d.observe(False)
    assert not d.down
    for t in [True, False, True, False, True, False, True]:
        d.observe(t)
    assert not d.down  # half failing is not an outage
