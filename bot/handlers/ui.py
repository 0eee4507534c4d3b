"""Keyboards, callback data and the sentences for errors: presentation shared by routers."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from markupsafe import Markup

from bot.locales import PoI18n
from bot.spaces import CaptchaRequired, OAuthLink, SpacesAPIError, SpacesError, SpacesUnavailable

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
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=i18n.plain("button-login"), callback_data=LOGIN)]
        ]
    )


def oauth_rows(i18n: PoI18n, links: list[OAuthLink]) -> list[list[InlineKeyboardButton]]:
    return [
        [InlineKeyboardButton(text=i18n.plain(_PROVIDER_KEYS[link.provider]), url=link.url)]
        for link in links
        if link.provider in _PROVIDER_KEYS
    ]


def spaces_error_text(i18n: PoI18n, error: SpacesError) -> Markup:
    """Our sentence for anything Spaces (or the way to it) answered, then Spaces' own words
    about it, quoted and escaped, when the answer carried some (as the site shows them).

    HTML for a message: pass it as a placeholder value and it is not escaped twice."""
    sentence = Markup(_sentence(i18n, error))
    words = error.server_text if isinstance(error, SpacesAPIError) else None
    if words is None:
        return sentence
    return Markup(i18n.text("spaces-says", sentence=sentence, words=words))


def _sentence(i18n: PoI18n, error: SpacesError) -> str:
    if isinstance(error, SpacesUnavailable):
        return i18n.text(f"spaces-unavailable-{error.reason}")
    if isinstance(error, CaptchaRequired):
        return i18n.text("captcha-unavailable")
    if isinstance(error, SpacesAPIError):
        if error.auth_error is not None:  # 01006 says more precisely what went wrong
            key = f"spaces-auth-error-{error.auth_error}"
            text = i18n.text(key)
            if text != key:
                return text
        key = f"spaces-code-{error.code}"
        text = i18n.text(key)
        if text != key:
            return text
        return i18n.text("spaces-code-unknown", code=error.code)
    return i18n.text("error-generic")
