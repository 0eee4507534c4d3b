"""Settings: read once from the environment or `.env`, never at import time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, HttpUrl, SecretStr, ValidationError, field_validator
from pydantic_settings import NoDecode

from bot.import_settings import SETTINGS_SOURCES, ImportSettings
from bot.spaces.hosts import parse_mirrors

# The value the published API doc sends as `rid`; a push registration token, not a secret.
DOCUMENTED_RID = (
    "APA91bFwsPw4clF4y0RHWtg6Y4fC6UnxcrmZYLiko_ifv-8g7Qi-5koV4GRaVax5zMWTMke9eUF-MzHhzdM9iYQEF"
    "Dff5lnHuMlwIl-zNAu4MfYS4PlL0j8C28XZgNJmQbRSd1BE4eSW"
)

# What Telegram accepts as a webhook's secret_token.
WEBHOOK_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Keyed by the bot token, so every instance derives the same secret without being told.
_WEBHOOK_SECRET_LABEL = b"spaces-bridge-bot webhook secret v1"
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def derive_webhook_secret(bot_token: str) -> str:
    """The webhook secret when WEBHOOK_SECRET is unset: HMAC-SHA256 of a fixed label."""
    digest = hmac.new(bot_token.encode(), _WEBHOOK_SECRET_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")  # 43 of A-Z a-z 0-9 _ -


def is_loopback_host(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_webhook_url(value: str) -> str:
    """https, or http to this very host only (the secret would cross a network in clear)."""
    try:
        url = HttpUrl(value)
    except ValidationError:
        raise ValueError("is not a URL (for example https://bot.example.org/telegram)") from None
    host = url.host or ""
    if url.scheme == "http" and not is_loopback_host(host):
        raise ValueError(
            "must start with https:// (http:// is accepted only for 127.0.0.1, ::1 or "
            "localhost, e.g. a local Bot API server)"
        )
    if url.fragment is not None or url.username is not None:
        raise ValueError("must not carry a #fragment or user:password@")
    return value


# The README's quick start shows this token; left in place it must say so, not "refused".
EXAMPLE_BOT_TOKEN = "123456:your-token-from-BotFather"
# @BotFather's tokens: the bot's id, a colon, then 35 URL-safe characters (a margin either way).
_BOT_TOKEN_SHAPE = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{30,64}")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Settings whose value never appears in a message, not even a wrong one.
SECRET_SETTINGS = frozenset({"bot_token", "encryption_key", "database_url", "redis_url"})


def _check_web_url(value: str, example: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ValueError(f'"{value}" is not a web address: write it in full, like {example}')


_SENDSPACE_URL = "https://api.sendspace.com/rest/"


class Settings(ImportSettings):
    """Every setting; those needed before aiogram is imported come from `ImportSettings`."""

    model_config = SETTINGS_SOURCES

    bot_token: SecretStr
    telegram_api_url: str | None = None

    # One or more mirrors, comma-separated; the first is asked first (bot/spaces/hosts.py).
    spaces_base_url: str = "https://spcs.me"
    spaces_timeout_seconds: float = Field(default=10.0, gt=0)
    spaces_rid: str = DOCUMENTED_RID

    # sendspace is offered beside Spaces when its API key is set (bot/sendspace/).
    sendspace_api_key: SecretStr | None = None
    sendspace_base_url: str = _SENDSPACE_URL
    sendspace_timeout_seconds: float = Field(default=10.0, gt=0)

    data_dir: Path = Path("data")
    database_url: str | None = None
    # Every database statement fails after this long instead of hanging (lock waits too).
    database_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    encryption_key: SecretStr | None = None
    redis_url: str | None = None
    # A conversation left half-way (a login waiting for its password, …) is forgotten after this.
    conversation_ttl_seconds: float = Field(default=86_400.0, gt=0)

    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    check_interval_seconds: float = Field(default=900.0, gt=0)
    # Politeness towards Spaces: its own web client stays under ~6 calls/s.
    check_concurrency: int = Field(default=4, ge=1, le=256)
    spaces_rate_per_second: float = Field(default=2.0, ge=0)  # 0 = no limit (benchmarks)
    # Telegram allows about 30 messages/s overall and 1/s per chat.
    telegram_rate_per_second: float = Field(default=25.0, gt=0, le=30)

    # Owners' protections.
    access_mode: Literal["open", "allowlist"] = "open"
    login_max_failures: int = Field(default=5, ge=1)
    login_failure_window_seconds: float = Field(default=900.0, gt=0)
    login_lockout_seconds: float = Field(default=900.0, gt=0)
    flood_max_messages: int = Field(default=8, ge=1)
    flood_window_seconds: float = Field(default=4.0, gt=0)

    # Health and metrics endpoints (/healthz, /readyz, /metrics); off unless a port is set.
    health_port: int | None = Field(default=None, ge=0, le=65535)
    health_host: str = "127.0.0.1"

    # Webhook mode when WEBHOOK_URL is set (Telegram POSTs updates there); else long polling.
    webhook_url: str | None = None
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(default=8080, ge=1, le=65535)
    webhook_secret: SecretStr | None = None

    # The clock times people read (/status, notices, /audit) are shown in this zone.
    timezone: str = "Europe/Moscow"

    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        if token == EXAMPLE_BOT_TOKEN or "your-token" in token.lower():
            raise ValueError(
                "is still the example from the README: put the token @BotFather gave you"
            )
        if not _BOT_TOKEN_SHAPE.fullmatch(token):
            raise ValueError(
                "does not look like a token from @BotFather (the bot's number, a colon, "
                "then about 35 letters, digits, - or _): copy it again"
            )
        return SecretStr(token)

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",")]
            for part in parts:
                if part and not part.isdigit():
                    raise ValueError(
                        f'"{part}" is not a Telegram user id: give numbers such as '
                        "123456789, separated by commas (@userinfobot tells yours)"
                    )
            return frozenset(int(p) for p in parts if p)
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        return check_webhook_url(value) if value else None

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not WEBHOOK_SECRET_PATTERN.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1 to 256 characters, each one of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone name (for example Europe/Moscow or UTC)"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @field_validator("spaces_base_url")
    @classmethod
    def _mirrors(cls, value: str) -> str:
        return ",".join(parse_mirrors(value))  # raises one sentence naming a bad entry

    @property
    def spaces_mirrors(self) -> tuple[str, ...]:
        return tuple(self.spaces_base_url.split(","))

    @field_validator("telegram_api_url")
    @classmethod
    def _telegram_url(cls, value: str | None) -> str | None:
        if value:
            _check_web_url(value, "http://localhost:8081")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if not value:
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            dialect = make_url(value).get_dialect()
        except ArgumentError:
            raise ValueError(
                "is not a database URL: write it like "
                "postgresql+asyncpg://user:password@host:5432/bot or sqlite+aiosqlite:///path"
            ) from None
        except NoSuchModuleError:
            raise ValueError(
                "names a database or driver SQLAlchemy does not know: use "
                "postgresql+asyncpg://… or sqlite+aiosqlite:///…"
            ) from None
        if not getattr(dialect, "is_async", False):
            raise ValueError(
                "names a driver that is not asynchronous: use postgresql+asyncpg://… "
                "or sqlite+aiosqlite:///…"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("is not a Redis URL: write it like redis://localhost:6379/0")
        return value

    @field_validator("sendspace_base_url")
    @classmethod
    def _sendspace_url(cls, value: str) -> str:
        url = value.strip()
        _check_web_url(url, _SENDSPACE_URL)
        return url

    @property
    def sendspace_key(self) -> str | None:
        """The API key when sendspace is to be offered; None (off) when unset or blank."""
        if self.sendspace_api_key is None:
            return None
        return self.sendspace_api_key.get_secret_value().strip() or None

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.strip().upper()
        if level == "WARN":
            level = "WARNING"
        if level not in LOG_LEVELS:
            raise ValueError(f'"{value}" is not a log level: use DEBUG, INFO, WARNING or ERROR')
        return level

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'bot.sqlite3').as_posix()}"

    @property
    def effective_webhook_secret(self) -> str:
        if self.webhook_secret is not None:
            return self.webhook_secret.get_secret_value()
        return derive_webhook_secret(self.bot_token.get_secret_value())

    def key_strings(self) -> list[str]:
        """The configured keys, first one encrypts; empty when none is configured."""
        if self.encryption_key is None:
            return []
        raw = self.encryption_key.get_secret_value()
        return [k.strip() for k in raw.split(",") if k.strip()]


# Pydantic's error types, said in words (the rest fall back to pydantic's own message).
_ERROR_WORDS = {
    "missing": "is not set",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "greater_than": "must be more than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "literal_error": "must be one of {expected}",
}


def describe_settings_errors(exc: ValidationError) -> list[str]:
    """One plain line per wrong setting, naming it as it is written in .env."""
    lines: dict[str, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        name = field.upper() or "settings"
        if name in lines:
            continue  # one line per setting: the first thing wrong with it
        lines[name] = f"{name} {_error_words(field, error)}"
    return list(lines.values())


def _error_words(field: str, error: Any) -> str:
    kind = error["type"]
    if field == "bot_token" and kind == "missing":
        return (
            "is not set: get a token from @BotFather and put it in the environment or in "
            "a .env file here (see .env.example)"
        )
    if kind == "value_error":
        return str(error["ctx"]["error"])
    template = _ERROR_WORDS.get(kind)
    ctx = {k: str(v) for k, v in (error.get("ctx") or {}).items()}
    words = template.format(**ctx) if template else str(error["msg"]).lower()
    value = error.get("input")
    if field not in SECRET_SETTINGS and isinstance(value, str) and kind != "missing":
        words += f' (it is "{value}")'
    return words
