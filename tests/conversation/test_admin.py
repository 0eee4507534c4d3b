from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain import Lease
from bot.services.broadcast import STOP_PREFIX
from tests.conftest import TEST_INSTANCE, lease, only_session
from tests.conversation.conftest import ADMIN, CHAT, Harness, buttons, step_data, texts
from tests.storage.test_store import account as stored_account

STRANGER = 777


async def seen(h: Harness, *chat_ids: int) -> None:
    for chat_id in chat_ids:
        await h.store.touch_chat(chat_id, chat_id, "en", datetime.now(UTC))


@pytest.mark.parametrize("command", ["/stats", "/broadcast", "/audit", "/ban 5", "/allow 5"])
async def test_non_admins_get_no_owner_tools(h: Harness, command: str) -> None:
    calls = await h.say(command, chat_id=STRANGER)
    assert texts(calls) == [h.t("unknown-input")]
    assert await h.state(STRANGER) is None
    assert await h.services.owner_service.audit_log() == []


async def test_owner_buttons_are_checked_too(h: Harness) -> None:
    await seen(h, CHAT)
    broadcast_id = await h.services.broadcasts.start(ADMIN, ADMIN, "hello")
    calls = await h.press(f"{STOP_PREFIX}{broadcast_id}", chat_id=STRANGER, message_id=99999)
    assert not any(c.method == "answerCallbackQuery" and "Stopping" in str(c.params) for c in calls)
    await h.services.broadcasts.wait(broadcast_id)
    record = await h.services.owners.get_broadcast(broadcast_id)
    assert record is not None and record.status == "done"


async def test_stats_for_an_admin(h: Harness) -> None:
    await seen(h, CHAT, 2, 3)
    calls = await h.say("/stats", chat_id=ADMIN)
    text = texts(calls)[0]
    assert text.startswith(
        h.t(
            "admin-stats",
            "en",
            sessions=0,
            active=0,
            unconfirmed=0,
            ended=0,
            blocked=0,
            people=0,
            people_24h=0,
            people_7d=0,
            checks=0,
            expired=0,
            transient=0,
            notices=0,
            spaces="",
            uptime="",
            version="",
        )[:10]
    )
    assert "People who used the bot: 4 (24 h: 4, 7 days: 4)" in text  # three + the admin
    assert h.services.version in text


async def test_ban_logs_out_deletes_and_refuses_politely_once(h: Harness) -> None:
    await h.say("/login")
    await h.say("alice")
    await h.say("secret123")
    session = await only_session(h.store, CHAT)
    assert session is not None
    calls = await h.say(f"/ban {CHAT}", chat_id=ADMIN)
    assert texts(calls) == [h.t("admin-banned", user_id=CHAT, sessions=1)]
    assert await only_session(h.store, CHAT) is None
    assert session.secrets["sid"] not in h.spaces.state.sessions
    first = await h.say("/status")
    assert texts(first) == [h.t("access-banned")]
    again = await h.say("/login")
    assert texts(again) == []  # one polite answer, not one per message
    audit = await h.services.owner_service.audit_log()
    assert [(a.action, a.target) for a in audit] == [("ban", str(CHAT))]
    await h.say(f"/unban {CHAT}", chat_id=ADMIN)
    calls = await h.say("/status")
    assert texts(calls) == [h.t("status-not-linked")]


@pytest.mark.parametrize("settings_overrides", [{"access_mode": "allowlist"}])
async def test_allowlist_mode(h: Harness) -> None:
    calls = await h.say("/login")
    assert texts(calls) == [h.t("access-not-allowed", user_id=CHAT)]
    await h.say(f"/allow {CHAT}", chat_id=ADMIN)
    calls = await h.say("/login")
    assert texts(calls)[0].startswith(h.t("login-ask-login")[:20])
    await h.say(f"/deny {CHAT}", chat_id=ADMIN)
    await h.say("/cancel")
    actions = [a.action for a in await h.services.owner_service.audit_log()]
    assert actions == ["deny", "allow"]
    calls = await h.say("/audit", chat_id=ADMIN)
    assert "allow" in texts(calls)[0] and str(CHAT) in texts(calls)[0]


async def test_owner_command_without_an_id_explains(h: Harness) -> None:
    calls = await h.say("/ban someone", chat_id=ADMIN)
    assert texts(calls) == [h.t("admin-usage-id", command="ban")]


@pytest.mark.parametrize("command", ["allow", "deny", "ban", "unban"])
@pytest.mark.parametrize("number", ["99999999999999999999", "-99999999999999999999", "٣٤"])
async def test_owner_command_with_an_impossible_id_explains(
    h: Harness, command: str, number: str
) -> None:
    calls = await h.say(f"/{command} {number}", chat_id=ADMIN)
    assert texts(calls) == [h.t("admin-usage-id", command=command)]
    assert await h.services.owner_service.audit_log() == []


async def test_broadcast_compose_preview_confirm_deliver(h: Harness) -> None:
    await seen(h, 11, 12, 13)
    h.tg.block_chat(12)
    await h.say("/broadcast", chat_id=ADMIN)
    owner_message = h.tg.send_message("News & more", chat_id=ADMIN)
    calls = await h._feed(owner_message)
    # The preview is one message: a copy of the owner's, with the confirm buttons under it.
    [preview] = [c for c in calls if c.method == "copyMessage"]
    assert preview.params["message_id"] == owner_message["message"]["message_id"]
    assert [c.method for c in calls if c.method.startswith("send")] == []
    send = next(b["text"] for b in buttons([preview]) if "callback_data" in b)
    assert send == h.i18n.nplain("button-broadcast-send", 4, "en", count=4)  # 3 people + admin
    calls = await h.press(step_data([preview], "send"), chat_id=ADMIN)
    broadcast_id = 1
    await h.services.broadcasts.wait(broadcast_id)
    record = await h.services.owners.get_broadcast(broadcast_id)
    assert record is not None
    assert (record.status, record.sent, record.blocked, record.failed) == ("done", 3, 1, 0)
    delivered = [c.chat_id for c in h.tg.sent_messages() if c.text == "News &amp; more"]
    assert sorted(delivered) == sorted([11, 13, ADMIN])
    final = h.tg.calls_of("editMessageText")[-1]
    assert final.params["text"] == h.t("broadcast-done", id=1, sent=3, failed=0, blocked=1, total=4)
    assert [a.action for a in await h.services.owner_service.audit_log()] == ["broadcast"]


async def test_broadcast_honours_429_and_can_be_stopped(h: Harness) -> None:
    await seen(h, *range(100, 110))
    h.tg.fail_next(
        "sendMessage",
        error_code=429,
        description="Too Many Requests: retry after 1",
        retry_after=1,
        chat_id=100,
    )
    broadcast_id = await h.services.broadcasts.start(ADMIN, ADMIN, "hello")
    await asyncio.sleep(1.6)  # the 429 pauses the queue for a second
    record = await h.services.owners.get_broadcast(broadcast_id)
    assert record is not None and record.progress_message_id is not None
    await h.press(
        f"{STOP_PREFIX}{broadcast_id}", chat_id=ADMIN, message_id=record.progress_message_id
    )
    await h.services.broadcasts.wait(broadcast_id)
    record = await h.services.owners.get_broadcast(broadcast_id)
    assert record is not None and record.status in {"cancelled", "done"}
    to_100 = [c for c in h.tg.calls_of("sendMessage") if c.chat_id == 100]
    assert [c.status for c in to_100] == [429, 200]
    assert to_100[1].at - to_100[0].at >= 0.9
    got = [c.chat_id for c in h.tg.sent_messages() if c.text == "hello"]
    assert len(got) == len(set(got)) == record.sent


async def test_interrupted_broadcast_is_reported_and_resumes_without_repeats(h: Harness) -> None:
    await seen(h, ADMIN, 21, 22, 23, 24)
    owners = h.services.owners
    broadcast_id = await owners.create_broadcast(ADMIN, ADMIN, "resume me", 5, datetime.now(UTC))
    await owners.update_broadcast(broadcast_id, cursor=22, sent=2)  # 21 and 22 already had it
    assert await h.services.broadcasts.report_interrupted() == 1
    report = h.tg.sent_messages(ADMIN)[-1]
    assert report.params["text"] == h.t(
        "broadcast-interrupted", id=broadcast_id, sent=2, failed=0, blocked=0, total=5
    )
    assert await h.services.broadcasts.report_interrupted() == 0  # reported once
    await h.press(f"bc:resume:{broadcast_id}", chat_id=ADMIN)
    await h.services.broadcasts.wait(broadcast_id)
    got = [c.chat_id for c in h.tg.sent_messages() if c.text == "resume me"]
    assert 21 not in got and 22 not in got and {23, 24} <= set(got)
    record = await owners.get_broadcast(broadcast_id)
    assert record is not None and record.status == "done" and record.sent == 2 + len(got)


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "login_max_failures": 3,
            "login_failure_window_seconds": 600,
            "login_lockout_seconds": 600,
            "flood_max_messages": 100,
        }
    ],
)
async def test_brute_force_stops_forwarding_attempts(h: Harness) -> None:
    for _ in range(3):
        await h.say("/login")
        await h.say("alice")
        await h.say("wrong-password")
    logins = h.spaces.state.calls_summary()["counts"]["login"]
    assert logins == 3
    await h.say("/login")
    calls = await h.say("alice")
    assert texts(calls) == [h.t("login-locked", wait=h.i18n.duration(600))]
    assert await h.state() is None
    # another Telegram account trying the same Spaces login is stopped too
    other = CHAT + 1
    await h.say("/login", chat_id=other)
    calls = await h.say("ALICE", chat_id=other)
    assert texts(calls) == [h.t("login-locked", wait=h.i18n.duration(600))]
    assert h.spaces.state.calls_summary()["counts"]["login"] == logins


@pytest.mark.parametrize(
    "settings_overrides", [{"flood_max_messages": 3, "flood_window_seconds": 30}]
)
async def test_flood_is_throttled_with_one_notice(h: Harness) -> None:
    answers: list[Any] = []
    for _ in range(8):
        answers.append(texts(await h.say("/help")))
    assert answers[:3] == [[h.t("help")]] * 3
    assert answers[3] == [h.t("flood-slow-down")]
    assert answers[4:] == [[]] * 4


async def test_forget_deletes_everything_after_logging_out(h: Harness) -> None:
    await h.say("/login")
    await h.say("alice")
    await h.say("secret123")
    await h.say("/language")
    await h.press("lang:ru")
    session = await only_session(h.store, CHAT)
    assert session is not None
    calls = await h.say("/forget")
    await h.press(step_data(calls, "forget"))
    assert await only_session(h.store, CHAT) is None
    assert await h.store.chat_languages(CHAT) == (None, None)
    assert session.secrets["sid"] not in h.spaces.state.sessions


async def test_stats_say_how_far_behind_the_watch_is(h: Harness) -> None:
    calls = await h.say("/stats", chat_id=ADMIN)
    assert h.t("admin-stats-on-time") in texts(calls)[0]
    assert h.t("admin-stats-notices-none") in texts(calls)[0]
    now = datetime.now(UTC)
    long_ago = now - timedelta(hours=2, minutes=5)
    for chat_id in (11, 12, 13):
        await h.store.save_session(
            chat_id, chat_id, stored_account(f"{chat_id:016d}"), long_ago, next_check_at=long_ago
        )
    due, _ = await h.store.claim_due_sessions(now, 1, lease())
    await h.store.record_checks(
        long_ago, TEST_INSTANCE, ended=due
    )  # one ended two hours ago, never told

    for locale, language in (("en", "en"), ("ru", "ru")):
        await h.services.hot_cache.set_chat_language(ADMIN, language, now)
        text = texts(await h.say("/stats", chat_id=ADMIN))[0]
        behind = h.i18n.ntext(
            "admin-stats-behind", 2, locale, count=2, age=h.i18n.duration(7500, locale)
        )
        waiting = h.i18n.ntext(
            "admin-stats-notices-waiting", 1, locale, count=1, age=h.i18n.duration(7500, locale)
        )
        assert behind in text and waiting in text


async def test_stats_name_the_mirror_that_answers(h: Harness) -> None:
    calls = await h.say("/stats", chat_id=ADMIN)
    assert h.t("admin-stats-mirror", mirror=h.spaces.url) in texts(calls)[0]


async def test_cancel_names_a_broadcast_and_a_forget(h: Harness) -> None:
    calls = await h.say("/broadcast", chat_id=ADMIN)
    calls = await h.press(step_data(calls, "cancel"), chat_id=ADMIN)
    assert texts(calls) == [h.t("cancel-done-broadcast")]
    assert await h.services.owners.get_broadcast(1) is None
    calls = await h.say("/forget")
    calls = await h.say("/cancel")
    assert texts(calls) == [h.t("cancel-done-forget")]
    assert [c.method for c in calls if c.method.startswith("send")] == []  # the prompt says it


async def test_audit_speaks_the_owners_language_with_times_in_words(h: Harness) -> None:
    await h.say("/language", chat_id=ADMIN)
    await h.press("lang:ru", chat_id=ADMIN)
    await h.say(f"/ban {CHAT}", chat_id=ADMIN)
    await h.say("/broadcast", chat_id=ADMIN)
    await h.say("/cancel", chat_id=ADMIN)
    calls = await h.say("/audit", chat_id=ADMIN)
    [text] = texts(calls)
    ban = h.i18n.gettext("audit-action-ban", locale="ru").format(target=CHAT, detail=0)
    assert ban in text
    assert h.t("time-just-now", "ru") in text and "UTC" not in text
    assert " ban " not in text and "sessions ended" not in text


async def test_stats_count_the_bot_processes_sharing_the_database(h: Harness) -> None:
    now = datetime.now(UTC)
    for n in range(3):
        await h.store.hold_lease(Lease(f"host:{n}:0000000{n}", now + timedelta(minutes=1)), now)
    await h.store.hold_lease(Lease("gone:9:99999999", now - timedelta(minutes=1)), now)  # dead
    for locale in ("en", "ru"):
        await h.services.hot_cache.set_chat_language(ADMIN, locale, now)
        text = texts(await h.say("/stats", chat_id=ADMIN))[0]
        assert h.i18n.ntext("admin-stats-instances", 3, locale, count=3) in text
