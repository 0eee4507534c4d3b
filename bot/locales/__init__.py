"""Every text a person reads: gettext catalogues (``<lang>/LC_MESSAGES/messages.po``).

Message ids are stable keys (``login-ask-login``); each language has its own catalogue (all
the ``.po`` files of ``<lang>/LC_MESSAGES``, merged), so a
test can prove both speak every key with the same placeholders. The ``.po`` sources are
compiled in memory with Babel at startup, so there is no build step and nothing compiled
in the repository.
"""

from __future__ import annotations

import gettext
import html
import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiogram.utils.i18n import I18n
from babel.dates import format_datetime, format_timedelta
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from markupsafe import Markup

LOCALES_DIR = Path(__file__).resolve().parent
DEFAULT_TIMEZONE = "Europe/Moscow"
DOMAIN = "messages"
DEFAULT_LOCALE = "en"
SUPPORTED = ("en", "ru")
# Telegram language codes whose speakers are better served in Russian than in English.
RUSSIAN_SPEAKING = frozenset({"ru", "uk", "be", "kk"})


def chat_locale(chosen: str | None, language_code: str | None) -> str:
    """The one rule for the language a chat is spoken to in: the one it chose (/language),
    else the one its Telegram reports — Russian for ru/uk/be/kk and when none is reported
    (most of Spaces' people), English for any other."""
    if chosen in SUPPORTED:
        return chosen
    if not language_code:
        return "ru"
    base = language_code.split("-")[0].lower()
    return "ru" if base in RUSSIAN_SPEAKING else "en"


def po_files(locale: str) -> list[Path]:
    """A language's catalogue sources: the texts, plus one file per large topic."""
    return sorted((LOCALES_DIR / locale / "LC_MESSAGES").glob("*.po"))


def read_catalog(locale: str) -> Catalog:
    """All of a language's ``.po`` files as one catalogue; a key defined twice is an error."""
    merged = Catalog(locale=locale, domain=DOMAIN)
    for path in po_files(locale):
        with path.open("rb") as fh:
            part = read_po(fh, locale=locale, domain=DOMAIN)
        for message in part:
            if not message.id:
                continue
            if message.id in merged:
                raise ValueError(f"{path.name}: key {message.id!r} is defined twice for {locale}")
            merged[message.id] = message
    return merged


class PoI18n(I18n):
    """aiogram's I18n, reading ``.po`` sources directly, and the one place that turns numbers,
    durations and moments into words."""

    def __init__(self, *, timezone: ZoneInfo | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timezone = timezone or ZoneInfo(DEFAULT_TIMEZONE)

    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        translations: dict[str, gettext.GNUTranslations] = {}
        for locale in SUPPORTED:
            buffer = io.BytesIO()
            write_mo(buffer, read_catalog(locale))
            buffer.seek(0)
            translations[locale] = gettext.GNUTranslations(buffer)
        return translations

    def text(self, key: str, locale: str | None = None, /, **params: Any) -> str:
        """The sentence for `key`, with `params` HTML-escaped (messages use HTML parse mode),
        except a `Markup` value, which is HTML already."""
        return _fill(self.gettext(key, locale=locale), params, escape=True)

    def ntext(self, key: str, n: int, locale: str | None = None, /, **params: Any) -> str:
        """The plural form of `key` for the number `n` (the catalogue's plural rule)."""
        return _fill(self.gettext(key, key, n, locale=locale), params, escape=True)

    def plain(self, key: str, locale: str | None = None, /, **params: Any) -> str:
        """A text Telegram shows as typed, with no parse mode (button captions, command
        descriptions, toasts): nothing is escaped, so `<b>Bold</b>&Co` reads as typed."""
        return _fill(self.gettext(key, locale=locale), params, escape=False)

    def nplain(self, key: str, n: int, locale: str | None = None, /, **params: Any) -> str:
        """`ntext` for a text shown as typed (see `plain`)."""
        return _fill(self.gettext(key, key, n, locale=locale), params, escape=False)

    def duration(self, seconds: float, locale: str | None = None) -> str:
        """A span in words, at most its two largest units: "3 min", "2 h 5 min", "1 d 4 h"."""
        total = max(0, int(seconds))
        if total < 60:
            return self.text("duration-seconds", locale, n=total)
        minutes = total // 60
        units = [("duration-days", minutes // 1440), ("duration-hours", minutes // 60 % 24)]
        units.append(("duration-minutes", minutes % 60))
        while units[0][1] == 0:
            units.pop(0)
        shown = [self.text(key, locale, n=n) for key, n in units[:2] if n]
        return " ".join(shown)

    def moment(self, value: datetime | None, now: datetime, locale: str | None = None) -> str:
        """A moment as people read it: "5 minutes ago (14:05 MSK)", in the bot's time zone."""
        if value is None:
            return self.text("time-unknown", locale)
        lang = locale or self.current_locale
        local = value.astimezone(self.timezone)
        same_day = local.date() == now.astimezone(self.timezone).date()
        pattern = "HH:mm" if same_day else "d MMM, HH:mm"
        clock = format_datetime(local, pattern, tzinfo=self.timezone, locale=lang)
        delta: timedelta = value - now
        if abs(delta) < timedelta(minutes=1):
            relative = self.text("time-soon" if delta > timedelta(0) else "time-just-now", locale)
        else:
            relative = format_timedelta(delta, add_direction=True, locale=lang)
        return self.text("time-moment", locale, relative=relative, clock=clock, zone=local.tzname())


def _fill(template: str, params: dict[str, Any], *, escape: bool) -> str:
    if not params:
        return template
    if escape:
        params = {k: _escape(v) for k, v in params.items()}
    return template.format(**params)


def _escape(value: Any) -> Any:
    if isinstance(value, Markup):  # already HTML, e.g. a sentence built from the catalogue
        return value
    return html.escape(value, quote=False) if isinstance(value, str) else value


def build_i18n(timezone: ZoneInfo | None = None) -> PoI18n:
    return PoI18n(path=LOCALES_DIR, default_locale=DEFAULT_LOCALE, domain=DOMAIN, timezone=timezone)
