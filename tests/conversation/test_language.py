from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiogram.fsm.storage.memory import MemoryStorage

from bot.app import build_dispatcher, set_command_menu
from bot.handlers.menu import ADMIN_COMMANDS, GROUP_COMMANDS, USER_COMMANDS
from bot.storage.crypto import Cipher
from tests.conversation.conftest import CHAT, Harness, buttons, texts


@pytest.mark.parametrize(
    ("language_code", "locale"),
    [
        ("ru", "ru"),
        ("uk", "ru"),
        ("be", "ru"),
        ("kk", "ru"),
        ("en", "en"),
        ("de", "en"),
        ("pt-br", "en"),
    ],
)
async def test_each_person_walks_login_in_their_language(
    h: Harness, language_code: str, locale: str
) -> None:
    calls = await h.say("/login", language_code=language_code)
    assert texts(calls)[0].startswith(h.t("login-ask-login", locale))
    calls = await h.say("alice", language_code=language_code)
    assert texts(calls) == [h.t("login-ask-password", locale, login="alice")]
    calls = await h.say("wrong-password", language_code=language_code)
    assert texts(calls)[-1] == h.t("login-wrong-password", locale, login="alice")
    await h.say("/login", language_code=language_code)
    await h.say("alice", language_code=language_code)
    calls = await h.say("secret123", language_code=language_code)
    assert texts(calls)[-1] == h.t("login-success", locale, nickname="Alice", user_id=1001)
    assert h.t("button-cancel", locale) == h.t("button-cancel", locale)  # sanity of the key


async def test_language_command_switches_and_persists_across_a_restart(
    h: Harness, cipher: Cipher
) -> None:
    calls = await h.say("/language", language_code="ru")
    labels = {b["text"]: b["callback_data"] for b in buttons(calls)}
    assert labels == {"English": "lang:en", "Русский": "lang:ru"}
    calls = await h.press("lang:en", language_code="ru")
    assert any(
        c.method == "editMessageText" and c.params["text"] == h.t("language-set", "en")
        for c in calls
    )
    calls = await h.say("/status", language_code="ru")
    assert texts(calls) == [h.t("status-not-linked", "en")]

    # A new Dispatcher on the same database, nothing kept in process: the choice is there.
    h.services.hot_cache.clear()
    h.dp = build_dispatcher(h.services, MemoryStorage())
    calls = await h.say("/status", language_code="ru")
    assert texts(calls) == [h.t("status-not-linked", "en")]


async def test_background_notices_use_the_chosen_language(h: Harness) -> None:
    await h.say("/language", language_code="en")
    await h.press("lang:ru", language_code="en")
    chosen, reported = await h.store.chat_languages(CHAT)
    assert (chosen, reported) == ("ru", "en")
    from bot.services.notifier import Notifier, TelegramSender
    from tests.conftest import spaces_session

    now = datetime.now(UTC)
    linked = await h.store.save_session(CHAT, CHAT, spaces_session("1234567890123456"), now)
    await h.store.end_session(CHAT, linked.key, linked.secrets, now, notify=True)
    names = h.services.remote_services.display_name
    notifier = Notifier(
        h.store,
        TelegramSender(h.bot, 25),
        h.i18n,
        [],
        instance=h.services.instance,
        service_names=names,
    )
    mark = h.tg.mark()
    assert await notifier.deliver_pending() == 1
    sent = h.tg.sent_messages(CHAT, after=mark)
    assert (
        sent[0]
        .params["text"]
        .startswith(h.t("notice-session-ended", "ru", nickname="Alice", confirmed_at="")[:30])
    )


PRIVATE = {"type": "all_private_chats"}
GROUPS = {"type": "all_group_chats"}


async def test_command_menu_in_both_languages(h: Harness) -> None:
    await set_command_menu(h.bot, h.i18n, h.store, [])
    private = h.tg.commands(PRIVATE)
    assert [c["command"] for c in private] == list(USER_COMMANDS)
    assert private[0]["description"] == h.t("command-login", "en")
    for code in ("ru", "uk", "be", "kk"):
        menu = h.tg.commands(PRIVATE, language_code=code)
        assert [c["description"] for c in menu] == [
            h.t(f"command-{n}", "ru") for n in USER_COMMANDS
        ]


async def test_groups_get_no_private_only_commands(h: Harness) -> None:
    await set_command_menu(h.bot, h.i18n, h.store, [])
    for scope in (GROUPS, None):  # None: the default scope, the fallback anywhere
        for code in ("", "ru"):
            names = {c["command"] for c in h.tg.commands(scope, language_code=code)}
            assert names == set(GROUP_COMMANDS)
            assert not names & {"status", "logout", "forget", *ADMIN_COMMANDS}


async def test_picking_a_language_switches_that_chats_menu(h: Harness) -> None:
    from tests.conversation.conftest import ADMIN

    await h.say("/language")
    await h.press("lang:ru")
    menu = h.tg.commands({"type": "chat", "chat_id": CHAT})
    assert [c["command"] for c in menu] == list(USER_COMMANDS)
    assert menu[0]["description"] == h.t("command-login", "ru")
    await h.say("/language", chat_id=ADMIN)
    await h.press("lang:ru", chat_id=ADMIN)
    owner = h.tg.commands({"type": "chat", "chat_id": ADMIN})
    assert [c["command"] for c in owner] == [*USER_COMMANDS, *ADMIN_COMMANDS]
    assert owner[-1]["description"] == h.t("command-audit", "ru")
    await h.say("/language", chat_id=ADMIN)
    await h.press("lang:en", chat_id=ADMIN)
    owner = h.tg.commands({"type": "chat", "chat_id": ADMIN})
    assert owner[-1]["description"] == h.t("command-audit", "en")


async def test_owners_get_their_commands_in_their_own_chat_only(h: Harness) -> None:
    from tests.conversation.conftest import ADMIN

    await h.store.touch_chat(ADMIN, ADMIN, "en", datetime.now(UTC))
    await set_command_menu(h.bot, h.i18n, h.store, [ADMIN])
    owner_menu = h.tg.commands(scope={"type": "chat", "chat_id": ADMIN})
    assert [c["command"] for c in owner_menu] == [*USER_COMMANDS, *ADMIN_COMMANDS]
    assert not set(ADMIN_COMMANDS) & {c["command"] for c in h.tg.commands()}
    for code in ("ru", "uk"):
        assert not set(ADMIN_COMMANDS) & {c["command"] for c in h.tg.commands(language_code=code)}
