"""Spaces' own words about an error reach the person after our sentence, escaped and clipped."""

from __future__ import annotations

from typing import Any

from bot.spaces.errors import SERVER_TEXT_MAX_CHARS
from tests.conftest import only_session
from tests.conversation.conftest import CHAT, Harness
from tests.conversation.test_account import log_in
from tests.conversation.test_login import walk_to_password
from tests.fakes.telegram_server import ApiCall


def shown(calls: list[ApiCall]) -> list[dict[str, Any]]:
    """The messages as Telegram accepted them: the text a person reads and its formatting."""
    sent = [c for c in calls if c.method == "sendMessage"]
    assert sent and all(c.ok for c in sent), [c.response for c in sent]
    return [c.response["result"] for c in sent if c.response]


async def fail_login_with(h: Harness, code: str, **extra: object) -> dict[str, Any]:
    await walk_to_password(h)
    h.spaces.state.next_code("login", code, extra)
    messages = shown(await h.say("secret123"))
    assert len(messages) == 1
    assert await only_session(h.store, CHAT) is None
    return messages[0]


async def test_the_servers_error_text_follows_our_sentence_escaped(h: Harness) -> None:
    words = "<b>Account</b> blocked until 01.12 & more"
    message = await fail_login_with(h, "00025", error=words)
    text = message["text"]
    ours = h.t("spaces-code-00025")
    assert ours in text
    assert words in text  # read as typed: the tag is text, not formatting
    assert text.index(ours) < text.index(words)
    assert not [e for e in message.get("entities", []) if e["type"] == "bold"]


async def test_the_servers_message_is_shown_for_the_codes_the_site_shows_it_for(
    h: Harness,
) -> None:
    message = await fail_login_with(h, "00032", message="Karma of 50 needed")
    assert h.t("spaces-code-00032") in message["text"]
    assert "Karma of 50 needed" in message["text"]


async def test_a_message_on_another_code_is_not_shown(h: Harness) -> None:
    message = await fail_login_with(h, "00025", message="internal detail")
    assert h.t("spaces-code-00025") in message["text"]
    assert "internal detail" not in message["text"]


async def test_a_very_long_or_garbled_text_is_clipped_and_cleaned(h: Harness) -> None:
    words = "Spaces\x00 says\u202e\x1b[31m " + "x" * 10_000
    message = await fail_login_with(h, "00006", error=words)
    text = message["text"]
    assert h.t("spaces-code-00006") in text
    assert "Spaces says[31m x" in text  # NUL, bidi override and ESC gone
    assert "x" * SERVER_TEXT_MAX_CHARS not in text and "\u2026" in text
    assert len(text) < len(h.t("spaces-code-00006")) + SERVER_TEXT_MAX_CHARS + 100


async def test_no_words_no_quote(h: Harness) -> None:
    message = await fail_login_with(h, "00025", error="   ")
    assert message["text"].endswith(h.t("spaces-code-00025"))


async def test_status_shows_the_servers_words_too(h: Harness) -> None:
    await log_in(h)
    h.spaces.state.next_code("check", "00006", {"error": "Maintenance <until> 5 pm"})
    message = shown(await h.say("/status"))[0]
    assert h.t("spaces-code-00006") in message["text"]
    assert "Maintenance <until> 5 pm" in message["text"]
    assert await only_session(h.store, CHAT) is not None
