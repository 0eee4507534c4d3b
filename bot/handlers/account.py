"""/status and /logout for the chat's linked accounts, and /forget."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.domain import StoredAccount
from bot.handlers.chats import group_only, private_only
from bot.handlers.steps import Flow, StepButton, ask, finish, step_button, working
from bot.handlers.ui import login_keyboard, sentence_text
from bot.locales import PoI18n
from bot.remote import Confirmed, Ended, EndReason, Transient
from bot.services.account import AccountService, AccountStatus, LogoutResult, NotSetUp
from bot.services.clock import utcnow
from bot.services.notifier import relogin_data
from bot.services.registry import ServiceRegistry


class ForgetFlow(StatesGroup):
    confirm = State()


class LogoutFlow(StatesGroup):
    choose = State()


FORGET = "forget"
LOGOUT = "logout-"  # + the account's tag


def _relogin_button(
    i18n: PoI18n, services: ServiceRegistry, a: StoredAccount
) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=i18n.plain(
            "button-relogin",
            service=services.display_name(a.key.service),
            nickname=a.display_name,
        ),
        callback_data=relogin_data(a.key.tag),
    )


async def status(
    message: Message,
    bot: Bot,
    i18n: PoI18n,
    account_service: AccountService,
    remote_services: ServiceRegistry,
) -> None:
    async with working(bot, message.chat.id):
        reports = await account_service.status(message.chat.id)
    if not reports:
        await message.answer(i18n.text("status-not-linked"), reply_markup=login_keyboard(i18n))
        return
    blocks: list[str] = []
    rows: list[list[InlineKeyboardButton]] = []
    for report in reports:
        block, relogin = _status_block(i18n, remote_services, report)
        blocks.append(block)
        if relogin:
            rows.append([_relogin_button(i18n, remote_services, report.account)])
    markup = InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
    await message.answer("\n\n".join(blocks), reply_markup=markup)


def _status_block(
    i18n: PoI18n, services: ServiceRegistry, report: AccountStatus
) -> tuple[str, bool]:
    """One account's lines, and whether it needs a new login."""
    a = report.account
    now = utcnow()
    names = {
        "service": services.display_name(a.key.service),
        "nickname": a.display_name,
        "user_id": a.key.account_id,
    }
    times = {
        "linked_at": i18n.moment(a.linked_at, now),
        "confirmed_at": i18n.moment(a.last_confirmed_at, now),
        "next_check_at": i18n.moment(a.next_check_at, now),
    }
    outcome = report.outcome
    if isinstance(outcome, NotSetUp):
        return i18n.text("status-not-set-up", **names), False
    if isinstance(outcome, Confirmed):
        lines = [i18n.text("status-active", **names, **times)]
        lines += [i18n.text(s.key, **dict(s.params)) for s in outcome.details]
        return "\n".join(lines), False
    if isinstance(outcome, Ended):
        text = i18n.text("status-gone", **names, **times)
        if outcome.reason is EndReason.REPLACED:
            text += "\n" + i18n.text("status-ended-replaced", **names)
        return text, True
    if isinstance(outcome, Transient):
        reason = sentence_text(
            i18n, outcome.text, service=names["service"], service_text=outcome.service_text
        )
        return i18n.text("status-unconfirmed", reason=reason, **names, **times), False
    return i18n.text("status-unreadable", **names), True


async def logout(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    account_service: AccountService,
    remote_services: ServiceRegistry,
) -> None:
    accounts = await account_service.accounts(message.chat.id)
    if not accounts:
        await message.answer(i18n.text("logout-not-linked"))
        return
    if len(accounts) == 1:
        await _log_out(message, bot, i18n, account_service, remote_services, accounts[0])
        return
    await finish(state, bot, message.chat.id)
    await state.set_state(LogoutFlow.choose)

    def rows(token: str) -> list[list[InlineKeyboardButton]]:
        return [
            [
                step_button(
                    i18n.plain(
                        "button-account",
                        service=remote_services.display_name(a.key.service),
                        nickname=a.display_name,
                    ),
                    LOGOUT + a.key.tag,
                    token,
                )
            ]
            for a in accounts
        ]

    await ask(message, state, bot, i18n, Flow.LOGOUT, i18n.text("logout-choose"), rows)


async def logout_chosen(
    query: CallbackQuery,
    message: Message,
    callback_data: StepButton,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    account_service: AccountService,
    remote_services: ServiceRegistry,
) -> None:
    await query.answer()
    await finish(state, bot, message.chat.id)
    tag = callback_data.action.removeprefix(LOGOUT)
    chosen = [a for a in await account_service.accounts(message.chat.id) if a.key.tag == tag]
    if not chosen:  # logged out meanwhile
        await message.answer(i18n.text("logout-not-linked"))
        return
    await _log_out(message, bot, i18n, account_service, remote_services, chosen[0])


async def _log_out(
    message: Message,
    bot: Bot,
    i18n: PoI18n,
    account_service: AccountService,
    services: ServiceRegistry,
    account: StoredAccount,
) -> None:
    async with working(bot, message.chat.id):
        result = await account_service.logout(message.chat.id, account)
    await message.answer(_logout_text(i18n, services, result))


def _logout_text(i18n: PoI18n, services: ServiceRegistry, result: LogoutResult) -> str:
    names = {
        "service": services.display_name(result.account.key.service),
        "nickname": result.account.display_name,
    }
    if not result.readable:
        return i18n.text("logout-forgotten", **names)
    if result.outcome.ended:
        return i18n.text("logout-done", **names)
    return i18n.text("logout-local-only", **names)


async def account_in_group(message: Message, i18n: PoI18n) -> None:
    await message.answer(i18n.text("private-only"))


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
    private.callback_query.register(logout_chosen, StepButton.filter(F.action.startswith(LOGOUT)))
    group = group_only(Router(name=f"{__name__}.group"))
    group.message.register(account_in_group, Command("status", "logout", "forget"))
    router = Router(name=__name__)
    router.include_routers(private, group)
    return router
