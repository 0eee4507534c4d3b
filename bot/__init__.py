"""Spaces bridge bot for Telegram."""

from bot._telegram_types import defer_aiogram_types

# Whichever module of the bot imports aiogram first, its types build on first use (~110 MB less).
defer_aiogram_types()
