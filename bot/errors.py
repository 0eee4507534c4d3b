"""Errors that end the process with one line for the owner (exit status 2)."""

from __future__ import annotations


class StartupError(Exception):
    """Startup cannot go on; the message is the one line the owner reads."""
