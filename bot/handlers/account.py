"""/status and /logout for the chat's linked account."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, Message

from bot.handlers.chats import group_only, private_only
from bot.handlers.steps import Flow, StepButton, ask, finish, step_button, working
from bot.handlers.ui import login_keyboard, spaces_error_text
from bot.locales import PoI18n
from bot.services.account import AccountService, Active, Gone, NotLinked, Unconfirmed, Unreadable
from bot.services.clock import utcnow
from bot.spaces import codes


class ForgetFlow(StatesGroup):
    confirm = State()


async def status(message: Message, bot: Bot, i18n: PoI18n, account_service: AccountService) -> None:
    async with working(bot, message.chat.id):
        report = await account_service.status(message.chat.id)
    if isinstance(report, NotLinked):
        await message.answer(i18n.text("status-not-linked"), reply_markup=login_keyboard(i18n))
        return
    if isinstance(report, Unreadable):
        await message.answer(i18n.text("status-unreadable"), reply_markup=login_keyboard(i18n))
        return
    session = report.session
    now = utcnow()
    times = {
        "linked_at": i18n.moment(session.linked_at, now),
        "confirmed_at": i18n.moment(session.last_confirmed_at, now),
        "next_check_at": i18n.moment(session.next_check_at, now),
    }
    if isinstance(report, Gone):
        text = i18n.text("status-gone", nickname=session.nickname, **times)
        if report.replaced:
            text += "\n" + i18n.text(f"spaces-auth-error-{codes.AUTH_DUPLICATE_SESSION}")
        await message.answer(text, reply_markup=login_keyboard(i18n))
        return
    if isinstance(report, Unconfirmed):
        await message.answer(
            i18n.text(
                "status-unconfirmed",
                nickname=session.nickname,
                reason=spaces_error_text(i18n, report.error),
                **times,
            )
        )
        return
    assert isinstance(report, Active)
    account = report.account
    online = {True: "status-online", False: "status-offline", None: "status-online-unknown"}
    lines = [
        i18n.text(
            "status-active",
            nickname=account.nickname,
            user_id=account.user_id,
            online=i18n.text(online[account.is_online]),
            **times,
        )
    ]
    if report.counters is not None:
        c = report.counters
        lines.append(i18n.text("status-counters", mail=c.mail, journal=c.journal, feed=c.feed))
    await message.answer("\n".join(lines))


async def logout(message: Message, bot: Bot, i18n: PoI18n, account_service: AccountService) -> None:
    async with working(bot, message.chat.id):
        result = await account_service.logout(message.chat.id)
    if not result.was_linked:
        await message.answer(i18n.text("logout-not-linked"))
    elif result.nickname is None:
        await message.answer(i18n.text("logout-forgotten"))
    elif result.ended_at_spaces:
        await message.answer(i18n.text("logout-done", nickname=result.nickname))
    else:
        await message.answer(i18n.text("logout-local-only", nickname=result.nickname))


async def account_in_group(message: Message, i18n: PoI18n) -> None:
    await message.answer(i18n.text("private-only"))


FORGET = "forget"


async def forget(message: Message, state: FSMContext, bot: Bot, i18n: PoI18n) -> None:
    await finish(state, bot, message.chat.id)
    await state.set_state(ForgetFlow.confirm)

    def rows(token: str) -> list[list[InlineKeyboardButton]]:
        return [[step_button(i18n.plain("button-forget"), FORGET, token)]]

    await ask(message, state, bot, i18n, Flow.FORGET, i18n.text("forget-confirm"), rows)


async def forget_confirmed(
    query: CallbackQuery,
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    account_service: AccountService,
) -> None:
    await query.answer()
    await state.clear()
    async with working(bot, message.chat.id):
        await account_service.forget(message.chat.id, query.from_user.id)
    await message.edit_text(i18n.text("forget-done"), reply_markup=None)


def build_router() -> Router:
    private = private_only(Router(name=f"{__name__}.private"))
    private.message.register(status, Command("status"))
    private.message.register(logout, Command("logout"))
    private.message.register(forget, Command("forget"))
    private.callback_query.register(forget_confirmed, StepButton.filter(F.action == FORGET))
    group = group_only(Router(name=f"{__name__}.group"))
    group.message.register(account_in_group, Command("status", "logout", "forget"))
    router = Router(name=__name__)
    router.include_routers(private, group)
    return router
