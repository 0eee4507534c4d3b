"""`python -m bot` runs the bot; `python -m bot genkey` prints a fresh encryption key.

`python -m bot --new-database` starts with an empty database even where an earlier
installation left its traces (its generated key, its marker in DATA_DIR).
"""

from __future__ import annotations

import signal


def _terminate(signum: int, frame: object) -> None:
    # Until the bot installs its own handlers (and after), SIGTERM stops it like Ctrl+C.
    raise KeyboardInterrupt


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)  # nothing is open yet: just stop


# First thing, before the slow imports below: a SIGTERM while they run is a clean stop
# (main() then turns it into Ctrl+C, which the running bot handles).
signal.signal(signal.SIGTERM, _exit_quietly)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

from pydantic import ValidationError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 0


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    parser.add_argument("command", nargs="?", default="run", choices=["run", "genkey"])
    parser.add_argument(
        "--new-database",
        action="store_true",
        help="start with an empty database although this bot ran here before",
    )
    args = parser.parse_args(argv)

    if args.command == "genkey":
        from bot.storage.crypto import generate_key

        print(generate_key())
        return 0

    from pydantic_settings import SettingsError

    from bot.app import StartupError, run
    from bot.config import Settings, describe_settings_errors
    from bot.logging_setup import setup_logging

    try:
        settings = Settings()
    except ValidationError as exc:
        for line in describe_settings_errors(exc):
            print(line, file=sys.stderr)
        return 2
    except SettingsError as exc:  # e.g. a .env file that cannot be read
        print(f"settings could not be read: {exc}", file=sys.stderr)
        return 2
    secrets = [
        settings.bot_token.get_secret_value(),
        *settings.key_strings(),
        settings.effective_webhook_secret,
    ]
    setup_logging(settings.log_level, settings.log_format, secrets)
    try:
        asyncio.run(run(settings, new_database=args.new_database))
    except StartupError as exc:
        logging.getLogger("bot").error("%s", exc)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
