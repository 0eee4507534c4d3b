"""aiogram routers, built fresh for each Dispatcher, in the order they are tried."""

from __future__ import annotations

from aiogram import Router

from bot.handlers import account, admin, common, fallback, language, login


def routers() -> list[Router]:
    # /cancel first so it leaves any step; the fallback last so it takes only what is left.
    return [
        common.build_router(),
        admin.build_router(),
        account.build_router(),
        language.build_router(),
        login.build_router(),
        fallback.build_router(),
    ]
