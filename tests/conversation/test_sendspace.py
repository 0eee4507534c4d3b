"""sendspace beside Spaces in one chat: the same conversation, the same watch, one boundary."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_notifier, build_watch
from bot.domain import AccountKey, SessionState
from bot.handlers.login import LoginFlow
from tests.conversation.conftest import CHAT, Harness, buttons, step_data, texts
from tests.fakes.sendspace_server import API_KEY, FakeSendspace, md5_hex

PASSWORD = "s3cret-Pass"  # the fake's account "alice"
SENDSPACE = AccountKey("sendspace", "alice")
SPACES = AccountKey("spaces", "1001")


@pytest.fixture
def settings_overrides(fake_sendspace: FakeSendspace) -> dict[str, Any]:
    return {
        "sendspace_api_key": API_KEY,
        "sendspace_base_url": fake_sendspace.url,
        "flood_max_messages": 100,  # two logins in a row are more than a person types
    }


async def link_spaces(h: Harness) -> None:
    await h.say("/login spaces")
    await h.say("alice")
    await h.say("secret123")
    assert await h.store.get_session(CHAT, SPACES) is not None


async def link_sendspace(h: Harness, password: str = PASSWORD) -> list[Any]:
    await h.say("/login sendspace")
    assert await h.state() == LoginFlow.login.state
    await h.say("alice")
    assert await h.state() == LoginFlow.password.state
    return await h.say(password)


async def test_login_alone_offers_the_services_set_up(h: Harness) -> None:
    calls = await h.say("/login")
    assert await h.state() == LoginFlow.choose.state
    assert h.t("login-choose-service") in texts(calls)
    offered = [b["text"] for b in buttons(calls) if "callback_data" in b]
    assert offered[:2] == ["Spaces", "sendspace"]
    calls = await h.press(step_data(calls, "use-sendspace"))
    assert await h.state() == LoginFlow.login.state
    assert h.t("login-ask-login", service="sendspace") in texts(calls)


async def test_an_unknown_service_is_named_with_the_ones_there_are(h: Harness) -> None:
    calls = await h.say("/login myspace")
    assert texts(calls) == [
        h.t("login-unknown-service", services="/login spaces, /login sendspace")
    ]
    assert await h.state() is None


async def test_sendspace_login_sends_only_the_tokened_password(
    h: Harness, fake_sendspace: FakeSendspace, engine: AsyncEngine
) -> None:
    mark = h.tg.mark()
    await h.say("/login sendspace")
    await h.say("alice")
    password_update = h.tg.send_message(PASSWORD, chat_id=CHAT)
    calls = await h._feed(password_update)
    delete = [c for c in calls if c.method == "deleteMessage"]
    assert calls.index(delete[0]) == 0  # the password leaves the chat before anything else
    assert delete[0].params["message_id"] == password_update["message"]["message_id"]
    assert any("alice" in t for t in texts(calls)) and h.tg.mark() > mark

    recorded = list(fake_sendspace.state.calls)
    assert PASSWORD not in repr(recorded) and md5_hex(PASSWORD) not in repr(recorded)
    [token] = [c.params["token"] for c in recorded if c.method == "auth.login"]
    [login] = [c for c in recorded if c.method == "auth.login"]
    assert login.params["tokened_password"] == md5_hex(token + md5_hex(PASSWORD))

    session = await h.store.get_session(CHAT, SENDSPACE)
    assert session is not None and session.state == SessionState.ACTIVE
    key = session.secrets["session_key"]
    assert key in fake_sendspace.state.live_sessions()
    async with engine.connect() as conn:
        rows = repr((await conn.execute(text("SELECT * FROM remote_sessions"))).all())
    assert key not in rows and PASSWORD not in rows  # sealed, and the password never kept
    assert PASSWORD not in repr(await h.fsm_data())


async def test_a_wrong_sendspace_password_keeps_the_login(
    h: Harness, fake_sendspace: FakeSendspace
) -> None:
    calls = await link_sendspace(h, "not-it")
    assert await h.state() == LoginFlow.retry.state
    assert h.t("login-wrong-password", service="sendspace", login="alice") in texts(calls)
    calls = await h.press(step_data(calls, "password-again"))
    assert await h.state() == LoginFlow.password.state
    await h.say(PASSWORD)
    assert await h.store.get_session(CHAT, SENDSPACE) is not None


async def test_status_lists_both_accounts(h: Harness) -> None:
    await link_spaces(h)
    await link_sendspace(h)
    [reply] = texts(await h.say("/status"))
    assert h.t("spaces-status-online") in reply
    spaces_at, sendspace_at = reply.index("<b>Spaces</b>"), reply.index("<b>sendspace</b>")
    assert spaces_at < sendspace_at  # oldest link first
    assert "Alice" in reply[:sendspace_at] and "alice" in reply[sendspace_at:]


async def test_logout_asks_which_and_ends_only_that_one(
    h: Harness, fake_sendspace: FakeSendspace
) -> None:
    await link_spaces(h)
    await link_sendspace(h)
    key = (await h.store.get_session(CHAT, SENDSPACE)).secrets["session_key"]  # type: ignore[union-attr]
    calls = await h.say("/logout")
    assert h.t("logout-choose") in texts(calls)
    named = [b["text"] for b in buttons(calls) if "callback_data" in b]
    assert "Spaces: Alice" in named and "sendspace: alice" in named
    sendspace_button = next(
        b["callback_data"] for b in buttons(calls) if b.get("text") == "sendspace: alice"
    )
    calls = await h.press(sendspace_button)
    assert texts(calls) == [h.t("logout-done", service="sendspace", nickname="alice")]
    assert key not in fake_sendspace.state.live_sessions()
    assert await h.store.get_session(CHAT, SENDSPACE) is None
    spaces = await h.store.get_session(CHAT, SPACES)
    assert spaces is not None and spaces.secrets["sid"] in h.spaces.state.sessions
    calls = await h.say("/logout")  # one left: no question
    assert texts(calls) == [h.t("logout-done", nickname="Alice")]


async def test_a_sendspace_expiry_is_told_once_naming_it_and_spaces_is_untouched(
    h: Harness, fake_sendspace: FakeSendspace
) -> None:
    await link_spaces(h)
    await link_sendspace(h)
    notifier = build_notifier(h.services)
    watch = build_watch(h.services, notifier)
    fake_sendspace.state.expire(user="alice")
    mark = h.tg.mark()
    for _ in range(2):
        for a in await h.store.accounts(CHAT):
            await h.store.defer([(CHAT, a.key)], a.linked_at)  # due now
        await watch.sweep()
        await notifier.deliver_pending()  # what the outbox loop sends right after
    [ended] = [c for c in h.tg.sent_messages(CHAT, after=mark) if c.method == "sendMessage"]
    assert "sendspace" in ended.params["text"] and "alice" in ended.params["text"]
    button = ended.params["reply_markup"]["inline_keyboard"][0][0]
    assert "sendspace" in button["text"] and "alice" in button["text"]
    states = {a.key: a.state for a in await h.store.accounts(CHAT)}
    assert states == {SPACES: SessionState.ACTIVE, SENDSPACE: SessionState.ENDED}

    # The button logs in to that account again, asking only its password.
    calls = await h.press(button["callback_data"])
    assert await h.state() == LoginFlow.password.state
    assert h.t("login-ask-password", service="sendspace", login="alice") in texts(calls)
    await h.say(PASSWORD)
    states = {a.key: a.state for a in await h.store.accounts(CHAT)}
    assert states == {SPACES: SessionState.ACTIVE, SENDSPACE: SessionState.ACTIVE}


async def test_a_sendspace_outage_is_silent_and_spaces_goes_on(
    h: Harness, fake_sendspace: FakeSendspace
) -> None:
    await link_spaces(h)
    await link_sendspace(h)
    notifier = build_notifier(h.services)
    watch = build_watch(h.services, notifier)
    fake_sendspace.state.set_mode("http500")
    mark = h.tg.mark()
    for a in await h.store.accounts(CHAT):
        await h.store.defer([(CHAT, a.key)], a.linked_at)
    await watch.sweep()
    await notifier.deliver_pending()
    assert h.tg.sent_messages(CHAT, after=mark) == []
    states = {a.key: a.state for a in await h.store.accounts(CHAT)}
    assert states == {SPACES: SessionState.ACTIVE, SENDSPACE: SessionState.UNCONFIRMED}
    assert watch.totals[("sendspace", "transient", "http_status")] == 1
    assert watch.totals[("spaces", "confirmed", "")] == 1


async def test_logging_in_again_to_a_linked_account_replaces_only_its_row(
    h: Harness, fake_sendspace: FakeSendspace
) -> None:
    await link_spaces(h)
    await link_sendspace(h)
    first = (await h.store.get_session(CHAT, SENDSPACE)).secrets["session_key"]  # type: ignore[union-attr]
    calls = await link_sendspace(h)
    assert h.t("login-replaced", service="sendspace", nickname="alice") in texts(calls)
    second = (await h.store.get_session(CHAT, SENDSPACE)).secrets["session_key"]  # type: ignore[union-attr]
    assert first != second
    live = fake_sendspace.state.live_sessions()
    assert first not in live and second in live  # the old one was logged out
    assert len(await h.store.accounts(CHAT)) == 2  # Spaces kept


@pytest.mark.parametrize(
    ("settings_overrides", "bound"),
    [
        ({"sendspace_timeout_seconds": 7}, 2.0),  # sendspace not set up: its timeout is idle
        ({"sendspace_api_key": API_KEY, "sendspace_timeout_seconds": 7}, 7.0),
    ],
    ids=["spaces-only", "with-sendspace"],
)
async def test_a_check_is_bounded_by_the_timeouts_of_the_services_set_up(
    h: Harness, bound: float
) -> None:
    watch = build_watch(h.services, build_notifier(h.services))
    assert [s.info.id for s in h.services.remote_services][1:] == (
        ["sendspace"] if bound == 7.0 else []
    )
    assert watch.config.spaces_timeout == bound  # SPACES_TIMEOUT_SECONDS is 2 here
