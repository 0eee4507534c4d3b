"""Settings: read once from the environment or `.env`, never at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.spaces.hosts import parse_mirrors

# The value the published API doc sends as `rid`; a push registration token, not a secret.
DOCUMENTED_RID = (
    "APA91bFwsPw4clF4y0RHWtg6Y4fC6UnxcrmZYLiko_ifv-8g7Qi-5koV4GRaVax5zMWTMke9eUF-MzHhzdM9iYQEF"
    "Dff5lnHuMlwIl-zNAu4MfYS4PlL0j8C28XZgNJmQbRSd1BE4eSW"
)


_SENDSPACE_URL = "https://api.sendspace.com/rest/"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

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

    # The clock times people read (/status, notices, /audit) are shown in this zone.
    timezone: str = "Europe/Moscow"

    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",")]
            return frozenset(int(p) for p in parts if p)
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

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

    @field_validator("sendspace_base_url")
    @classmethod
    def _sendspace_url(cls, value: str) -> str:
        url = value.strip()
        if not url.startswith(("https://", "http://")) or "://" == url[-3:]:
            raise ValueError(f"{value!r} is not an http(s) URL (for example {_SENDSPACE_URL})")
        return url

    @property
    def sendspace_key(self) -> str | None:
        """The API key when sendspace is to be offered; None (off) when unset or blank."""
        if self.sendspace_api_key is None:
            return None
        return self.sendspace_api_key.get_secret_value().strip() or None

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'bot.sqlite3').as_posix()}"

    def key_strings(self) -> list[str]:
        """The configured keys, first one encrypts; empty when none is configured."""
        if self.encryption_key is None:
            return []
        raw = self.encryption_key.get_secret_value()
        return [k.strip() for k in raw.split(",") if k.strip()]
