"""The one rule for a chat's language (bot.locales.chat_locale), used by answers, notices,
broadcasts and command menus alike."""

from __future__ import annotations

import pytest

from bot.locales import chat_locale


@pytest.mark.parametrize(
    ("chosen", "reported", "expected"),
    [
        ("en", "ru", "en"),  # a chosen language wins over Telegram's
        ("ru", "de", "ru"),
        (None, "ru", "ru"),
        (None, "uk", "ru"),  # Russian-speaking families
        (None, "be", "ru"),
        (None, "kk", "ru"),
        (None, "ru-RU", "ru"),
        (None, "UK", "ru"),
        (None, "en-GB", "en"),
        (None, "de", "en"),  # any other language: English
        (None, None, "ru"),  # nothing reported: most of Spaces' people read Russian
        (None, "", "ru"),
        ("de", "en", "en"),  # a choice that is not (or no longer) offered is ignored
        ("", "en", "en"),
    ],
)
def test_chat_locale(chosen: str | None, reported: str | None, expected: str) -> None:
    assert chat_locale(chosen, reported) == expected
