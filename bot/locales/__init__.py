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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiogram.utils.i18n import I18n
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).resolve().parent
DOMAIN = "messages"
DEFAULT_LOCALE = "en"
SUPPORTED = ("en", "ru")
# Telegram language codes whose speakers are better served in Russian than in English.
RUSSIAN_SPEAKING = frozenset({"ru", "uk", "be", "kk"})


def locale_for_language_code(language_code: str | None) -> str:
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
    """aiogram's I18n, reading ``.po`` sources directly."""

    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        translations: dict[str, gettext.GNUTranslations] = {}
        for locale in SUPPORTED:
            buffer = io.BytesIO()
            write_mo(buffer, read_catalog(locale))
            buffer.seek(0)
            translations[locale] = gettext.GNUTranslations(buffer)
        return translations

    def text(self, key: str, locale: str | None = None, /, **params: Any) -> str:
        """The sentence for `key`, with `params` HTML-escaped (messages use HTML parse mode)."""
        template = self.gettext(key, locale=locale)
        if not params:
            return template
        return template.format(**{k: _escape(v) for k, v in params.items()})


def _escape(value: Any) -> Any:
    return html.escape(value, quote=False) if isinstance(value, str) else value


def format_time(value: datetime | None, i18n: PoI18n, locale: str | None = None) -> str:
    if value is None:
        return i18n.text("time-unknown", locale)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def build_i18n() -> PoI18n:
    return PoI18n(path=LOCALES_DIR, default_locale=DEFAULT_LOCALE, domain=DOMAIN)
