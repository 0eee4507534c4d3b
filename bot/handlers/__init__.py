"""aiogram routers, in the order they are tried (/cancel first, the fallback last)."""

from __future__ import annotations

from aiogram import Router

from bot.handlers import account, common, fallback, login


def routers() -> list[Router]:
    return [common.router, account.router, login.router, fallback.router]
