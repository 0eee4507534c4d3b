"""Traces an installation leaves in DATA_DIR, so a lost database is not taken for a new one."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.storage.crypto import KEY_FILE_NAME

log = logging.getLogger(__name__)

MARKER_NAME = "installed"
_MARKER_TEXT = (
    "This folder belongs to a spaces-bridge bot whose database was created earlier.\n"
    "If the database goes missing the bot refuses to start; `python -m bot --new-database`\n"
    "starts it with an empty one on purpose.\n"
)


def sqlite_file(database_url: str) -> Path | None:
    """The file of a SQLite database URL; None for other databases and in-memory ones."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def earlier_install(data_dir: Path) -> Path | None:
    """A file showing the bot ran here before (its generated key, or the marker), if any."""
    for name in (KEY_FILE_NAME, MARKER_NAME):
        path = data_dir / name
        if path.exists():
            return path
    return None


def mark_installed(data_dir: Path) -> None:
    """Leave the marker once the database is known good; a failure only costs the warning."""
    path = data_dir / MARKER_NAME
    if path.exists():
        return
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(_MARKER_TEXT, encoding="utf-8")
    except OSError as exc:
        log.warning("could not write %s (%s): a lost database may go unnoticed", path, exc)
