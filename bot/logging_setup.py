"""Logging that never prints a secret: the bot token, SIDs, CKs, cookies or passwords."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

# Secrets whose shape we know, wherever they appear in a line (URLs, JSON, form dumps).
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b\d{5,16}:[A-Za-z0-9_-]{30,}"), "<bot-token>"),
    (re.compile(r"(?i)(\bsid[\"']?\s*[=:]\s*[\"']?)[A-Za-z0-9]+"), r"\1<redacted>"),
    (re.compile(r"(?i)(\bck[\"']?\s*[=:]\s*[\"']?)[A-Za-z0-9]+"), r"\1<redacted>"),
    (re.compile(r"(?i)(\bpassword[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,;}]+"), r"\1<redacted>"),
    (re.compile(r"(?i)(\bcookie[\"']?\s*[=:]\s*)[^\n]+"), r"\1<redacted>"),
)


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then takes every secret out of the whole text, traceback included."""

    def __init__(self, redactor: Redactor, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


class JsonFormatter(RedactingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return self._redact(json.dumps(payload, ensure_ascii=False))


def setup_logging(
    level: str, fmt: str, secrets: Iterable[str] = (), stream: TextIO | None = None
) -> Redactor:
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(redactor))
    else:
        handler.setFormatter(
            RedactingFormatter(redactor, "%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; aiogram's event log is chatty and names chats.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return redactor
