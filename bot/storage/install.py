"""Traces an installation leaves in DATA_DIR, so a lost database is not taken for a new one."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import IO

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


class SqliteInUse(Exception):
    """Another bot process holds the SQLite database file."""

    def __init__(self, database: Path, holder: str) -> None:
        super().__init__(f"{database} is in use by {holder}")
        self.database = database
        self.holder = holder


def lock_sqlite_file(database: Path) -> IO[str] | None:
    """Hold `database` for this process alone: SQLite serves one bot process, and a second
    one would check every session twice. The lock is the kernel's (flock on a file beside
    the database), so it goes with the process however that ends.

    Returns the open lock file (keep it open while running), or None where locks are not
    available (no fcntl, or the folder cannot be written: the database open says why).
    """
    try:
        import fcntl
    except ImportError:  # not a POSIX system: one process is up to the owner
        return None
    path = database.with_name(f"{database.name}.instance-lock")
    try:
        handle = path.open("a+", encoding="utf-8")
    except OSError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise SqliteInUse(database, f"process {holder}" if holder else "another process") from None
    except OSError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
