"""The webhook settings: which URLs and secrets are accepted, and the derived secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config import WEBHOOK_SECRET_PATTERN, Settings, derive_webhook_secret

TOKEN = "123456:" + "A" * 35


def settings(**values: str) -> Settings:
    return Settings(_env_file=None, bot_token=TOKEN, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "https://bot.example.org/telegram/hook",
        "https://bot.example.org:8443/hook?x=1",
        "http://127.0.0.1:8080/hook",
        "http://127.0.0.2/hook",
        "http://localhost:8080/hook",
        "http://[::1]:8080/hook",
    ],
)
def test_accepted_webhook_urls(url: str) -> None:
    assert settings(webhook_url=url).webhook_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://bot.example.org/hook",
        "http://10.0.0.5:8080/hook",
        "http://localhost.example.org/hook",
        "ftp://bot.example.org/hook",
        "bot.example.org/hook",
        "https://user:pass@bot.example.org/hook",
        "https://bot.example.org/hook#part",
    ],
)
def test_refused_webhook_urls(url: str) -> None:
    with pytest.raises(ValidationError, match="webhook_url"):
        settings(webhook_url=url)


def test_an_empty_url_means_long_polling() -> None:
    assert settings(webhook_url="").webhook_url is None


@pytest.mark.parametrize("secret", ["", "a b", "ключ", "x" * 257, "a/b", "a=b"])
def test_refused_secrets_are_not_echoed(secret: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(webhook_secret=secret)
    (error,) = caught.value.errors()
    assert error["loc"] == ("webhook_secret",)
    if secret:  # the message is what `python -m bot` prints
        assert secret not in error["msg"]


def test_the_secret_is_given_or_derived_from_the_token() -> None:
    assert settings(webhook_secret="Abc_-9").effective_webhook_secret == "Abc_-9"
    assert settings(webhook_secret="x" * 256).effective_webhook_secret == "x" * 256
    derived = settings().effective_webhook_secret
    assert derived == derive_webhook_secret(TOKEN) == settings().effective_webhook_secret
    assert WEBHOOK_SECRET_PATTERN.fullmatch(derived)
    assert TOKEN not in derived and derived != derive_webhook_secret("123456:" + "B" * 35)
