"""aiogram routers, built fresh for each Dispatcher, in the order they are tried."""

from __future__ import annotations

from aiogram import Router

from bot.handlers import account, admin, common, fallback, language, login
from bot.handlers.stray import LoginStepMarker


def routers() -> list[Router]:
    # /cancel first so it leaves any step; the fallback last so it takes only what is left.
    login_router = login.build_router()
    # Every login step is remembered, so the fallback knows when stray text may be a password.
    login_router.message.middleware(LoginStepMarker())
    login_router.callback_query.middleware(LoginStepMarker())
    return [
        common.build_router(),
        admin.build_router(),
        account.build_router(),
        language.build_router(),
        login_router,
        fallback.build_router(),
    ]
