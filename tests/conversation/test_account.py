from __future__ import annotations

from bot.handlers.ui import LOGIN
from tests.conftest import only_session
from tests.conversation.conftest import CHAT, Harness, buttons, texts


async def log_in(h: Harness) -> None:
    await h.say("/login")
    await h.say("alice")
    await h.say("secret123")
    assert await only_session(h.store, CHAT) is not None


async def test_status_not_linked_says_how(h: Harness) -> None:
    calls = await h.say("/status")
    assert texts(calls) == [h.t("status-not-linked")]
    assert any(b.get("callback_data") == LOGIN for b in buttons(calls))


async def test_status_live_shows_the_account_and_confirms(h: Harness) -> None:
    await log_in(h)
    before = await only_session(h.store, CHAT)
    h.spaces.state.set_counters(journal=2, feed=5, mail=1)
    checks = h.spaces.state.calls_summary()["counts"].get("check", 0)
    calls = await h.say("/status")
    assert h.spaces.state.calls_summary()["counts"]["check"] == checks + 1
    text = texts(calls)[0]
    assert "Alice" in text and "1001" in text and h.t("spaces-status-online") in text
    assert h.t("status-counters", mail=1, journal=2, feed=5) in text
    after = await only_session(h.store, CHAT)
    assert before is not None and after is not None
    assert after.last_confirmed_at >= before.last_confirmed_at


async def test_status_of_an_expired_session_offers_login(h: Harness) -> None:
    await log_in(h)
    h.spaces.state.expire(nid=1001)
    calls = await h.say("/status")
    assert "Alice" in texts(calls)[0]
    assert texts(calls)[0].startswith(h.t("status-gone", nickname="Alice", confirmed_at="")[:20])
    # The way back names the account it logs in to again.
    [again] = buttons(calls)
    assert again["callback_data"].startswith("relogin:") and "Alice" in again["text"]


async def test_status_when_spaces_is_down_keeps_the_session(h: Harness) -> None:
    await log_in(h)
    h.spaces.state.set_mode("http500")
    calls = await h.say("/status")
    assert h.t("spaces-unavailable-http_status") in texts(calls)[0]
    assert await only_session(h.store, CHAT) is not None


async def test_logout_ends_the_session_at_spaces_and_here(h: Harness) -> None:
    await log_in(h)
    session = await only_session(h.store, CHAT)
    assert session is not None
    calls = await h.say("/logout")
    assert texts(calls) == [h.t("logout-done", nickname="Alice")]
    assert await only_session(h.store, CHAT) is None
    assert session.secrets["sid"] not in h.spaces.state.sessions
    calls = await h.say("/logout")
    assert texts(calls) == [h.t("logout-not-linked")]


async def test_logout_when_spaces_is_down_forgets_locally_and_says_so(h: Harness) -> None:
    await log_in(h)
    h.spaces.state.set_mode("html")
    calls = await h.say("/logout")
    assert texts(calls) == [h.t("logout-local-only", nickname="Alice")]
    assert await only_session(h.store, CHAT) is None


async def test_status_in_a_group_points_to_the_private_chat(h: Harness) -> None:
    calls = await h.say("/status", chat_id=-100, user_id=CHAT, chat_type="group")
    assert texts(calls) == [h.t("private-only")]


async def test_russian_speaker_gets_russian(h: Harness) -> None:
    calls = await h.say("/status", language_code="ru")
    assert texts(calls) == [h.t("status-not-linked", "ru")]
    calls = await h.say("/status", language_code="uk")
    assert texts(calls) == [h.t("status-not-linked", "ru")]


async def test_status_of_a_session_replaced_by_another_sign_in_says_so(h: Harness) -> None:
    await log_in(h)
    h.spaces.state.replace_sessions(1001)
    calls = await h.say("/status")
    assert h.t("status-ended-replaced") in texts(calls)[0]
    session = await only_session(h.store, CHAT)
    assert session is not None and session.state == "ended"


async def test_status_counters_come_with_the_check(h: Harness) -> None:
    await log_in(h)
    h.spaces.state.set_counters(journal=4, feed=0, mail=9)
    calls = await h.say("/status")
    assert h.t("status-counters", mail=9, journal=4, feed=0) in texts(calls)[0]
    assert h.spaces.state.calls_summary()["counts"].get("getTopCounts", 0) == 0
