"""The settings read when the bot's package is imported, before aiogram is.

They come from the same places, by the same rules, as every other setting (`Settings` in
bot/config.py extends this class): the environment first, then a `.env` file in the working
directory, empty values ignored.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

SETTINGS_SOURCES = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)


class ImportSettings(BaseSettings):
    model_config = SETTINGS_SOURCES

    # Off: aiogram builds all its Telegram types at import, as it does on its own (about 95 MB
    # more); the way back should an aiogram or pydantic release break bot/_telegram_types.py.
    telegram_types_deferred: bool = True
