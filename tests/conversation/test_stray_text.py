"""A password typed when nobody asked for it (after a refusal or a restart) leaves the chat;
a login interrupted by a restart goes on where it stopped."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_dispatcher, build_fsm_storage, build_services
from bot.handlers.login import LoginFlow
from bot.handlers.stray import STRAY_WINDOW_SECONDS, StrayText
from bot.storage.crypto import Cipher
from bot.storage.engine import make_sessionmaker
from bot.storage.owners import OwnerStore
from bot.storage.store import Store
from tests.conftest import only_session
from tests.conversation.conftest import CHAT, Harness, texts
from tests.fakes.telegram_server import ApiCall


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def deleted(calls: list[ApiCall]) -> list[int]:
    return [int(c.params["message_id"]) for c in calls if c.method == "deleteMessage"]


async def say_stray(h: Harness, text: str = "hunter2-secret") -> tuple[int, list[ApiCall]]:
    update = h.tg.send_message(text, chat_id=CHAT)
    return update["message"]["message_id"], await h._feed(update)


def restart(
    h: Harness, engine: AsyncEngine, cipher: Cipher, stray_text: StrayText | None = None
) -> None:
    """A new process on the same database: new store, services, storage and Dispatcher."""
    sessionmaker = make_sessionmaker(engine)
    store = Store(sessionmaker, cipher)
    services = build_services(
        settings=h.services.settings,
        store=store,
        owners=OwnerStore(sessionmaker),
        remote_services=h.services.remote_services,
        cipher=cipher,
        bot=h.bot,
        i18n=h.i18n,
    )
    if stray_text is not None:
        services.stray_text = stray_text
    h.services, h.store = services, store
    h.dp = build_dispatcher(services, build_fsm_storage(services.settings, sessionmaker))


async def test_a_login_interrupted_by_a_restart_goes_on_at_the_password(
    h: Harness, engine: AsyncEngine, cipher: Cipher
) -> None:
    await h.say("/login")
    await h.say("alice")
    assert await h.state() == LoginFlow.password.state
    restart(h, engine, cipher)
    await h.dp.emit_startup(bot=h.bot)
    assert await h.state() == LoginFlow.password.state
    message_id, calls = await say_stray(h, "secret123")
    assert deleted(calls) == [message_id] and calls[0].method == "deleteMessage"
    assert h.t("stray-text-deleted") not in texts(calls)  # it was asked for, and used
    session = await only_session(h.store, CHAT)
    assert session is not None and session.display_name == "Alice"
    assert await h.state() is None


async def test_after_a_restart_unasked_text_is_deleted(
    h: Harness, engine: AsyncEngine, cipher: Cipher
) -> None:
    restart(h, engine, cipher)
    await h.dp.emit_startup(bot=h.bot)
    message_id, calls = await say_stray(h)
    assert deleted(calls) == [message_id]
    assert texts(calls) == [h.t("stray-text-deleted")]
    # a command is not free text: it is answered as ever
    calls = await h.say("/nonsense")
    assert deleted(calls) == [] and texts(calls) == [h.t("unknown-input")]


@pytest.mark.parametrize(
    "settings_overrides",
    [{"login_max_failures": 1, "login_lockout_seconds": 600, "flood_max_messages": 100}],
)
async def test_after_a_lockout_the_password_typed_anyway_is_deleted(h: Harness) -> None:
    await h.say("/login")
    await h.say("alice")
    await h.say("wrong-password")
    await h.say("/login")
    calls = await h.say("alice")
    assert texts(calls) == [h.t("login-locked", wait=h.i18n.duration(600))]
    message_id, calls = await say_stray(h)
    assert deleted(calls) == [message_id]
    assert texts(calls) == [h.t("stray-text-deleted")]


@pytest.mark.parametrize("settings_overrides", [{"access_mode": "allowlist"}])
async def test_after_an_allowlist_refusal_the_password_is_deleted(h: Harness) -> None:
    calls = await h.say("/login")
    assert texts(calls) == [h.t("access-not-allowed", user_id=CHAT)]
    message_id, calls = await say_stray(h)
    assert deleted(calls) == [message_id]
    assert texts(calls) == [h.t("stray-text-deleted")]
    assert await only_session(h.store, CHAT) is None


async def test_after_a_spaces_outage_at_login_the_password_is_deleted(h: Harness) -> None:
    await h.say("/login")
    await h.say("alice")
    h.spaces.state.set_mode("http500")
    calls = await h.say("secret123")
    assert await h.state() is None and deleted(calls)
    message_id, calls = await say_stray(h, "secret123")
    assert deleted(calls) == [message_id]
    assert texts(calls) == [h.t("stray-text-deleted")]


async def test_long_after_a_login_step_text_gets_the_usual_answer(
    h: Harness, engine: AsyncEngine, cipher: Cipher
) -> None:
    clock = Clock()
    restart(h, engine, cipher, StrayText(clock=clock))
    await h.dp.emit_startup(bot=h.bot)
    await h.say("/login")
    await h.say("/cancel")
    clock.now += STRAY_WINDOW_SECONDS - 1
    message_id, calls = await say_stray(h, "hello")
    assert deleted(calls) == [message_id]
    clock.now += STRAY_WINDOW_SECONDS + 1
    message_id, calls = await say_stray(h, "hello")
    assert deleted(calls) == []
    assert texts(calls) == [h.t("unknown-input")]


async def test_a_chat_that_never_logged_in_gets_the_usual_answer(h: Harness) -> None:
    _, calls = await say_stray(h, "hello")
    assert deleted(calls) == [] and texts(calls) == [h.t("unknown-input")]
