"""Private-only features say so once, on their routers (bot/handlers/chats.py): in a group
their commands get the group's answer, their buttons do nothing but stop the spinner."""

from __future__ import annotations

import pytest

from bot.handlers.ui import LOGIN
from bot.services.broadcast import STOP_PREFIX
from bot.services.notifier import RELOGIN
from tests.conversation.conftest import CHAT, Harness, texts

GROUP = -100777


@pytest.mark.parametrize("data", [LOGIN, RELOGIN, "lang:en"])
async def test_private_buttons_pressed_in_a_group_change_nothing(h: Harness, data: str) -> None:
    # A message in the group carries the button (a forwarded or forged one).
    sent = h.tg.send_message("hello", chat_id=GROUP, user_id=CHAT, chat_type="supergroup")
    message_id = sent["message"]["message_id"]
    calls = await h.press(data, chat_id=GROUP, user_id=CHAT, message_id=message_id)
    assert [c.method for c in calls] == ["answerCallbackQuery"]
    assert await h.state(GROUP, CHAT) is None
    assert await h.store.chat_languages(GROUP) == (None, None)


async def test_group_commands_keep_their_own_answers(h: Harness) -> None:
    for command, key in [
        ("/login", "login-private-only"),
        ("/status", "private-only"),
        ("/help", "help-group"),
    ]:
        calls = await h.say(command, chat_id=GROUP, user_id=CHAT, chat_type="group")
        assert texts(calls) == [h.t(key)], command
    # Text nobody asked for is not the bot's business in a group.
    assert await h.say("what?", chat_id=GROUP, user_id=CHAT, chat_type="group") == []


async def test_a_button_nobody_takes_still_stops_its_spinner(h: Harness) -> None:
    # An owner's button pressed by someone who is not an owner.
    (reply,) = await h.say("/start")
    assert reply.response is not None
    message_id = reply.response["result"]["message_id"]
    calls = await h.press(f"{STOP_PREFIX}1", message_id=message_id)
    assert [c.method for c in calls] == ["answerCallbackQuery"]


async def test_private_buttons_still_work_in_private(h: Harness) -> None:
    await h.say("/start")
    calls = await h.press(LOGIN)
    assert "answerCallbackQuery" in [c.method for c in calls]
    assert await h.state() is not None
