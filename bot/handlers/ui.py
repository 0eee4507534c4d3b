"""Keyboards, callback data and the sentences for errors: presentation shared by routers."""

from __future__ import annotations

import functools

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from markupsafe import Markup

from bot.locales import PoI18n
from bot.remote import RemoteError, Sentence, SignInLink

LOGIN = "login:start"
# Callback data of step buttons sent before steps carried a token (bot/handlers/steps.py):
# they are out of date by definition.
LEGACY_STEP_BUTTONS = frozenset({"cancel", "forget:yes", "bc:send", "captcha:new"})

_PROVIDER_KEYS = {
    "vk": "oauth-provider-vk",
    "ok": "oauth-provider-ok",
    "mail_ru": "oauth-provider-mail_ru",
    "facebook": "oauth-provider-facebook",
    "google": "oauth-provider-google",
}


def login_keyboard(i18n: PoI18n) -> InlineKeyboardMarkup:
    """The "Log in" button, in the update's language."""
    return _login_keyboard(i18n, i18n.current_locale)


@functools.lru_cache(maxsize=16)
def _login_keyboard(i18n: PoI18n, locale: str) -> InlineKeyboardMarkup:
    # Built once per language (it is never changed once built): building it cost about a
    # fifth of answering /start.
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=i18n.plain("button-login", locale), callback_data=LOGIN)]
        ]
    )


def sign_in_rows(i18n: PoI18n, links: list[SignInLink]) -> list[list[InlineKeyboardButton]]:
    return [
        [InlineKeyboardButton(text=i18n.plain(_PROVIDER_KEYS[link.provider]), url=link.url)]
        for link in links
        if link.provider in _PROVIDER_KEYS
    ]


def sentence_text(
    i18n: PoI18n, sentence: Sentence, *, service: str = "", service_text: str | None = None
) -> Markup:
    """Our sentence for what a service (or the way to it) answered, then the service's own
    words about it, quoted and escaped, when the answer carried some (as its site shows them).

    HTML for a message: pass it as a placeholder value and it is not escaped twice."""
    words = Markup(i18n.text(sentence.key, **dict(sentence.params)))
    if service_text is None:
        return words
    return Markup(i18n.text("service-says", sentence=words, service=service, words=service_text))


def error_text(i18n: PoI18n, error: RemoteError, service: str) -> Markup:
    return sentence_text(i18n, error.text, service=service, service_text=error.service_text)
