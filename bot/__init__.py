"""Spaces bridge bot for Telegram."""

from pydantic import ValidationError
from pydantic_settings import SettingsError

from bot._telegram_types import defer_aiogram_types
from bot.import_settings import ImportSettings

try:
    _deferred = ImportSettings().telegram_types_deferred
except (ValidationError, SettingsError):  # `Settings()` says what is wrong, in one line, at start
    _deferred = True

# Whichever module of the bot imports aiogram first, its types build on first use (~95 MB less).
if _deferred:
    defer_aiogram_types()
