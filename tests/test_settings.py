"""Settings with a typo: `python -m bot` says which one and what is wrong, in one line each."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.__main__ import main
from bot.config import EXAMPLE_BOT_TOKEN, Settings, describe_settings_errors

GOOD_TOKEN = "123456:AAFakeTokenForTheTestsOnly_0123456-x"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def run_with(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], **env: str
) -> tuple[int, list[str]]:
    monkeypatch.setenv("BOT_TOKEN", GOOD_TOKEN)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main([])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("BOT_TOKEN", "12345-not-a-token", "does not look like a token"),
        ("BOT_TOKEN", EXAMPLE_BOT_TOKEN, "example"),
        ("LOG_LEVEL", "LOUD", '"LOUD" is not a log level'),
        ("ADMIN_IDS", "123, alice", '"alice" is not a Telegram user id'),
        ("SPACES_BASE_URL", "spcs.me", "spcs.me' is not a web address"),
        ("SPACES_BASE_URL", "https://spcs.me, spaces.ru", "spaces.ru' is not a web address"),
        ("TELEGRAM_API_URL", "localhost:8081", "is not a web address"),
        ("DATABASE_URL", "bot.sqlite3", "is not a database URL"),
        ("DATABASE_URL", "postgresql://u:pw@db/bot", "not asynchronous"),
        ("REDIS_URL", "localhost:6379", "is not a Redis URL"),
        ("HEALTH_PORT", "eighty", "must be a whole number"),
        ("HEALTH_PORT", "99999", "must be at most 65535"),
        ("CHECK_INTERVAL_SECONDS", "soon", "must be a number"),
        ("ACCESS_MODE", "closed", "must be one of"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    words: str,
) -> None:
    code, lines = run_with(monkeypatch, capsys, **{name: value})
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"{name} ") and words in lines[0], lines
    assert "Traceback" not in lines[0] and "Value error" not in lines[0]
    assert "invalid literal" not in lines[0]  # Python's words, not the owner's


def test_secrets_are_never_repeated(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run_with(
        monkeypatch,
        capsys,
        BOT_TOKEN="999:tooshort-secret",
        DATABASE_URL="postgresql://u:hunter2@db/bot",
        REDIS_URL="http://:hunter3@redis",
    )
    assert code == 2 and len(lines) == 3
    assert not any(s in "\n".join(lines) for s in ("tooshort", "hunter2", "hunter3"))


def test_missing_token_says_where_to_get_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("BOT_TOKEN is not set") and "@BotFather" in lines[0]
    )


def test_one_line_per_setting_even_with_several_errors() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(
            _env_file=None, bot_token=GOOD_TOKEN, log_level="x", admin_ids="a,b", health_port="p"
        )
    lines = describe_settings_errors(caught.value)
    assert [line.split()[0] for line in lines] == ["ADMIN_IDS", "HEALTH_PORT", "LOG_LEVEL"]


def test_good_values_are_kept() -> None:
    settings = Settings(
        _env_file=None,
        bot_token=f" {GOOD_TOKEN} ",
        log_level="warn",
        admin_ids="1; 2",
        spaces_base_url="https://spcs.me/",
        database_url="postgresql+asyncpg://u:p@db/bot",
        redis_url="redis://localhost:6379/0",
    )
    assert settings.bot_token.get_secret_value() == GOOD_TOKEN
    assert settings.log_level == "WARNING"
    assert settings.admin_ids == frozenset({1, 2})
    assert settings.spaces_base_url == "https://spcs.me"
