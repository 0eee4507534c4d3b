"""Numbers, durations and moments in words, in both languages and in the configured zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from bot.locales import build_i18n

NOW = datetime(2026, 11, 29, 11, 0, tzinfo=UTC)  # 14:00 in Moscow


@pytest.mark.parametrize(
    ("seconds", "en", "ru"),
    [
        (5, "5 s", "5 с"),  # noqa: RUF001
        (180, "3 min", "3 мин"),
        (2 * 3600 + 5 * 60 + 59, "2 h 5 min", "2 ч 5 мин"),
        (3600, "1 h", "1 ч"),
        (86400 + 4 * 3600 + 1800, "1 d 4 h", "1 дн 4 ч"),
        (-3, "0 s", "0 с"),  # noqa: RUF001
    ],
)
def test_durations_in_words(seconds: float, en: str, ru: str) -> None:
    i18n = build_i18n()
    assert i18n.duration(seconds, "en") == en
    assert i18n.duration(seconds, "ru") == ru


def test_a_past_moment_is_relative_with_the_clock_in_the_zone() -> None:
    i18n = build_i18n(ZoneInfo("Europe/Moscow"))
    en = i18n.moment(NOW - timedelta(minutes=5), NOW, "en")
    ru = i18n.moment(NOW - timedelta(minutes=5), NOW, "ru")
    assert en.startswith("5 minutes ago") and "13:55" in en and "MSK" in en
    assert ru.startswith("5 минут назад") and "13:55" in ru
    assert "UTC" not in en and "10:55" not in en


def test_a_future_moment_and_another_day_show_the_date() -> None:
    i18n = build_i18n(ZoneInfo("Asia/Almaty"))
    soon = i18n.moment(NOW + timedelta(minutes=3), NOW, "ru")
    assert soon.startswith("через 3 минуты") and "16:03" in soon
    days_ago = i18n.moment(NOW - timedelta(days=2), NOW, "en")
    assert days_ago.startswith("2 days ago") and "27 Nov" in days_ago


def test_within_a_minute_it_is_just_now_or_soon() -> None:
    i18n = build_i18n()
    assert i18n.moment(NOW, NOW, "en").startswith(i18n.text("time-just-now", "en"))
    soon = i18n.moment(NOW + timedelta(seconds=20), NOW, "ru")
    assert soon.startswith(i18n.text("time-soon", "ru"))


def test_an_unknown_moment_says_so() -> None:
    i18n = build_i18n()
    assert i18n.moment(None, NOW, "en") == i18n.text("time-unknown", "en")


def test_plain_text_is_not_escaped_and_html_text_is() -> None:
    i18n = build_i18n()
    nickname = "<b>Bold</b>&Co"
    assert nickname in i18n.plain("button-relogin", "en", service="Spaces", nickname=nickname)
    assert nickname not in i18n.text("button-relogin", "en", service="Spaces", nickname=nickname)


def test_timezone_setting_defaults_to_moscow_and_refuses_a_bad_name() -> None:
    base = {"_env_file": None, "bot_token": "1:" + "A" * 35}
    assert Settings(**base).zone == ZoneInfo("Europe/Moscow")  # type: ignore[arg-type]
    assert Settings(**base, timezone="UTC").zone == ZoneInfo("UTC")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="IANA time zone"):
        Settings(**base, timezone="Mars/Olympus")  # type: ignore[arg-type]
