"""The login conversation, the same for every service: its `info.steps` in order (a secret
answer deleted at once and kept sealed), then whatever further step it asks (a captcha)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from aiogram import Bot, F, Router
from aiogram.enums import ChatAction
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bot.handlers.chats import group_only, private_only
from bot.handlers.filters import InLoop
from bot.handlers.steps import (
    Flow,
    StepButton,
    ask,
    cancel_row,
    finish,
    is_current,
    new_attempt,
    new_step,
    shown,
    step_button,
    superseded,
    working,
)
from bot.handlers.ui import LOGIN, error_text, login_keyboard, sign_in_rows
from bot.locales import PoI18n
from bot.remote import (
    LoginRefused,
    NextStep,
    RefusalReason,
    RemoteError,
    RemoteService,
    SignInLink,
    Step,
)
from bot.services.guard import LoginLocked
from bot.services.login import Linked, LoginNotSaved, LoginService, PasswordSeal, PendingExpired
from bot.services.notifier import RELOGIN

log = logging.getLogger(__name__)


class LoginFlow(StatesGroup):
    choose = State()  # which service
    login = State()
    password = State()
    token = State()
    captcha = State()
    retry = State()  # the password was wrong: enter it again, or start over


_STATE_OF: Final = {
    Step.LOGIN_NAME: LoginFlow.login,
    Step.PASSWORD: LoginFlow.password,
    Step.TOKEN: LoginFlow.token,
    Step.CAPTCHA: LoginFlow.captcha,
}
_STEP_OF: Final = {state.state: step for step, state in _STATE_OF.items()}
# What each step asks and what it says to an answer that cannot be right.
_ASK: Final = {
    Step.LOGIN_NAME: "login-ask-login",
    Step.PASSWORD: "login-ask-password",
    Step.TOKEN: "login-ask-token",
}
_BAD: Final = {
    Step.LOGIN_NAME: "login-bad-login",
    Step.PASSWORD: "login-bad-password",
    Step.TOKEN: "login-bad-token",
}

# Conversation-state keys. The login name is kept plain under LOGIN (it is shown in the
# prompts); a secret answer only sealed, under SEALED.
SERVICE = "service"
LOGIN_KEY = "login"
SEALED = "sealed"
PENDING_ATTEMPT = "pending_attempt"

# Actions of step buttons.
PASSWORD_AGAIN = "password-again"
START_OVER = "start-over"
NEW_PICTURE = "new-picture"
USE_SERVICE = "use-"  # + the service id: the choice under /login


def captcha_rows(i18n: PoI18n, token: str) -> list[list[InlineKeyboardButton]]:
    """Under a captcha: another picture (as the site's own client offers); Cancel follows."""
    return [[step_button(i18n.plain("button-new-picture"), NEW_PICTURE, token)]]


# -- groups: never a place for credentials ------------------------------------------------


async def login_in_group(message: Message, bot: Bot, i18n: PoI18n) -> None:
    me = await bot.me()
    markup = None
    if me.username:
        url = f"https://t.me/{me.username}?start=login"
        markup = InlineKeyboardMarkup(
            inline_keyboard=[
                [InlineKeyboardButton(text=i18n.plain("button-open-private"), url=url)]
            ]
        )
    await message.reply(i18n.text("login-private-only"), reply_markup=markup)


# -- starting -----------------------------------------------------------------------------


async def login_start(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
    command: CommandObject | None = None,
) -> None:
    """`/login` offers the services set up (straight to the one when there is one);
    `/login <service>` starts that one."""
    wanted = (command.args or "").strip().casefold() if command is not None else ""
    if command is not None and command.command == "start":
        wanted = ""  # the deep link "?start=login" names no service
    if wanted:
        service = _find_service(login_service, wanted)
        if service is None:
            await finish(state, bot, message.chat.id)
            names = ", ".join(f"/login {s.info.id}" for s in login_service.services)
            await message.answer(i18n.text("login-unknown-service", services=names))
            return
        await _begin(message, state, bot, i18n, login_service, service)
        return
    await _offer_services(message, state, bot, i18n, login_service)


def _find_service(login_service: LoginService, wanted: str) -> RemoteService | None:
    for service in login_service.services:
        if wanted in (service.info.id, service.info.display_name.casefold()):
            return service
    return None


async def login_start_button(
    query: CallbackQuery,
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
) -> None:
    await query.answer()
    await _offer_services(message, state, bot, i18n, login_service)


async def _offer_services(
    message: Message, state: FSMContext, bot: Bot, i18n: PoI18n, login_service: LoginService
) -> None:
    services = list(login_service.services)
    if len(services) == 1:
        await _begin(message, state, bot, i18n, login_service, services[0])
        return
    await finish(state, bot, message.chat.id)
    await state.set_state(LoginFlow.choose)

    def rows(token: str) -> list[list[InlineKeyboardButton]]:
        # A brand name reads the same in every language: the button shows it as it is.
        return [
            [step_button(s.info.display_name, USE_SERVICE + s.info.id, token)] for s in services
        ]

    await ask(message, state, bot, i18n, Flow.LOGIN, i18n.text("login-choose-service"), rows)


async def service_chosen(
    query: CallbackQuery,
    message: Message,
    callback_data: StepButton,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
) -> None:
    await query.answer()
    service = login_service.services.get(callback_data.action.removeprefix(USE_SERVICE))
    if service is None:  # a button from before the service was switched off
        await _offer_services(message, state, bot, i18n, login_service)
        return
    await _begin(message, state, bot, i18n, login_service, service)


async def text_while_choosing(
    message: Message, state: FSMContext, bot: Bot, i18n: PoI18n, login_service: LoginService
) -> None:
    """The service's name typed instead of pressed is taken; anything else asks again."""
    service = _find_service(login_service, (message.text or "").strip().casefold())
    if service is None:
        await _offer_services(message, state, bot, i18n, login_service)
        return
    await _begin(message, state, bot, i18n, login_service, service)


async def relogin_button(
    query: CallbackQuery,
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
) -> None:
    """From an expiry notice or /status: the account is named by the button, so only what
    its service asks besides the login name is asked."""
    await query.answer()
    tag = (query.data or "").removeprefix(RELOGIN).removeprefix(":")
    if tag:
        account = await login_service.known_account(message.chat.id, tag)
    else:
        # A button from before buttons named their account: clear only with one account.
        accounts = await login_service.accounts(message.chat.id)
        account = accounts[0] if len(accounts) == 1 else None
    service = login_service.services.get(account.key.service) if account is not None else None
    if account is None or service is None:
        await _offer_services(message, state, bot, i18n, login_service)
        return
    known = {Step.LOGIN_NAME: account.display_name}
    if Step.LOGIN_NAME not in service.info.steps:
        known = {}
    await _begin(message, state, bot, i18n, login_service, service, known)


async def password_again_button(
    query: CallbackQuery,
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
) -> None:
    """After a wrong password: the login is kept, only the secret step is asked again."""
    await query.answer()
    data = await state.get_data()
    service = login_service.services.get(str(data.get(SERVICE)))
    if service is None or not isinstance(data.get(LOGIN_KEY), str):
        await _start_over(message, state, bot, i18n)
        return
    await state.update_data({SEALED: {}, PENDING_ATTEMPT: None})
    await _ask_next(message, state, bot, i18n, login_service, service)


async def start_over_button(
    query: CallbackQuery,
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
) -> None:
    await query.answer()
    service = login_service.services.get(str((await state.get_data()).get(SERVICE)))
    if service is None:
        await _offer_services(message, state, bot, i18n, login_service)
        return
    await _begin(message, state, bot, i18n, login_service, service)


async def _begin(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
    service: RemoteService,
    known: Mapping[Step, str] | None = None,
) -> None:
    await finish(state, bot, message.chat.id)
    data: dict[str, Any] = {SERVICE: service.info.id, SEALED: {}}
    if known and Step.LOGIN_NAME in known:
        data[LOGIN_KEY] = known[Step.LOGIN_NAME]
    await state.update_data(data)
    await _ask_next(message, state, bot, i18n, login_service, service)


async def _ask_next(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
    service: RemoteService,
    fresh: Mapping[Step, str] | None = None,
) -> None:
    """Ask the first of the service's steps not answered yet; with all answered, log in.
    `fresh` is the answer just typed, used as it is (its sealed copy waits for a next step)."""
    data = await state.get_data()
    sealed = data.get(SEALED) or {}
    for step in service.info.steps:
        answered = data.get(LOGIN_KEY) if step is Step.LOGIN_NAME else sealed.get(step.value)
        if not answered:
            await _ask(message, state, bot, i18n, login_service, service, step)
            return
    answers = _open_answers(message.chat.id, service, data, _seal_of(login_service), fresh)
    if answers is None:
        await _start_over(message, state, bot, i18n)
        return
    await _attempt(message, state, bot, i18n, login_service, service, answers)


def _seal_of(login_service: LoginService) -> PasswordSeal:
    seal = login_service.seal
    assert seal is not None, "the login service is built with its seal (bot/app.py)"
    return seal


async def _ask(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
    service: RemoteService,
    step: Step,
) -> None:
    await state.set_state(_STATE_OF[step])
    name = service.info.display_name
    if step is not Step.LOGIN_NAME:
        login = (await state.get_data()).get(LOGIN_KEY) or ""
        text = i18n.text(_ASK[step], service=name, login=login)
        await ask(message, state, bot, i18n, Flow.LOGIN, text)
        return
    token = await new_step(state, Flow.LOGIN)
    # Sign-in links never delay the prompt: shown at once when known lately, else the
    # prompt goes out now and gets its buttons when the service gives them.
    service_id = service.info.id
    links = login_service.cached_sign_in_links(service_id)
    prompt = await message.answer(
        _login_text(i18n, name, links), reply_markup=_login_markup(i18n, token, links)
    )
    await shown(state, bot, prompt.chat.id, prompt.message_id)
    if links is not None:
        return
    links = await login_service.sign_in_links(service_id)
    if not links or not await is_current(state, token):
        return
    try:
        await prompt.edit_text(
            _login_text(i18n, name, links), reply_markup=_login_markup(i18n, token, links)
        )
    except TelegramAPIError as exc:
        log.info("sign-in buttons not added in chat %s: %s", prompt.chat.id, exc)


def _login_text(i18n: PoI18n, service: str, links: list[SignInLink] | None) -> str:
    text = i18n.text("login-ask-login", service=service)
    if links:
        text += "\n\n" + i18n.text("login-oauth-explain")
    return text


def _login_markup(i18n: PoI18n, token: str, links: list[SignInLink] | None) -> InlineKeyboardMarkup:
    rows = sign_in_rows(i18n, links or [])
    return InlineKeyboardMarkup(inline_keyboard=[*rows, cancel_row(i18n, token)])


# -- the answers --------------------------------------------------------------------------


async def got_answer(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
) -> None:
    step = _STEP_OF[str(await state.get_state())]
    if step.secret:
        # A secret leaves the chat before anything else happens.
        await _delete_secret_message(message, bot, i18n)
    data = await state.get_data()
    service = login_service.services.get(str(data.get(SERVICE)))
    if service is None:
        await _start_over(message, state, bot, i18n)
        return
    value = service.accept(step, message.text or "")
    if value is None:
        text = i18n.text(_BAD[step], service=service.info.display_name)
        await ask(message, state, bot, i18n, Flow.LOGIN, text)
        return
    if step is Step.LOGIN_NAME:
        user_id = message.from_user.id if message.from_user else message.chat.id
        try:
            await login_service.ensure_not_locked(user_id, service.info.id, {step: value})
        except LoginLocked as locked:
            await _locked(message, state, bot, i18n, service, locked)
            return
        await state.update_data({LOGIN_KEY: value})
    else:
        sealed = dict(data.get(SEALED) or {})
        sealed[step.value] = _seal_of(login_service).seal(message.chat.id, step, value)
        await state.update_data({SEALED: sealed})
    await _ask_next(message, state, bot, i18n, login_service, service, {step: value})


def _open_answers(
    chat_id: int,
    service: RemoteService,
    data: Mapping[str, Any],
    seal: PasswordSeal,
    fresh: Mapping[Step, str] | None = None,
) -> dict[Step, str] | None:
    """Every answer of the service's steps, secrets unsealed; None when one is lost or old."""
    answers: dict[Step, str] = {}
    sealed = data.get(SEALED) or {}
    try:
        for step in service.info.steps:
            if fresh and step in fresh:
                answers[step] = fresh[step]
            elif step is Step.LOGIN_NAME:
                login = data.get(LOGIN_KEY)
                if not isinstance(login, str):
                    return None
                answers[step] = login
            else:
                answers[step] = seal.open(chat_id, step, sealed.get(step.value))
    except PendingExpired:
        return None
    return answers


async def _start_over(message: Message, state: FSMContext, bot: Bot, i18n: PoI18n) -> None:
    """The step lost what it needed (a restart, or the kept password expired)."""
    await finish(state, bot, message.chat.id)
    await message.answer(i18n.text("login-expired"), reply_markup=login_keyboard(i18n))


async def _delete_secret_message(message: Message, bot: Bot, i18n: PoI18n) -> None:
    try:
        await bot.delete_message(message.chat.id, message.message_id)
    except TelegramAPIError as exc:
        log.warning("could not delete a password message in chat %s: %s", message.chat.id, exc)
        await message.answer(i18n.text("login-delete-password-yourself"))


async def _locked(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    service: RemoteService,
    locked: LoginLocked,
) -> None:
    await finish(state, bot, message.chat.id)
    wait = i18n.duration(locked.minutes * 60)
    await message.answer(i18n.text("login-locked", wait=wait, service=service.info.display_name))


# -- a further step (the captcha) ---------------------------------------------------------


async def got_captcha(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
) -> None:
    data = await state.get_data()
    service = login_service.services.get(str(data.get(SERVICE)))
    if service is None:
        await _start_over(message, state, bot, i18n)
        return
    code = service.accept(Step.CAPTCHA, message.text or "")
    if code is None:
        text = i18n.text("captcha-bad-answer")
        await ask(message, state, bot, i18n, Flow.LOGIN, text, lambda t: captcha_rows(i18n, t))
        return
    await _attempt_again(message, state, bot, i18n, login_service, service, code)


async def new_picture(
    query: CallbackQuery,
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
) -> None:
    """The same login sent again without a code: the service answers with a fresh picture."""
    await query.answer()
    service = login_service.services.get(str((await state.get_data()).get(SERVICE)))
    if service is None:
        await _start_over(message, state, bot, i18n)
        return
    await _attempt_again(
        message, state, bot, i18n, login_service, service, None,
        user_id=query.from_user.id, action=ChatAction.UPLOAD_PHOTO,
    )  # fmt: skip


async def _attempt_again(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
    service: RemoteService,
    code: str | None,
    *,
    user_id: int | None = None,
    action: ChatAction = ChatAction.TYPING,
) -> None:
    """The waiting attempt, sent again with the step's answer (or without, for a new one)."""
    data = await state.get_data()
    seal = _seal_of(login_service)
    answers = _open_answers(message.chat.id, service, data, seal)
    try:
        attempt = seal.open_attempt(message.chat.id, data.get(PENDING_ATTEMPT))
    except PendingExpired:
        answers = None
    if answers is None:
        await _start_over(message, state, bot, i18n)
        return
    if code is not None:
        answers[Step.CAPTCHA] = code
    await _attempt(
        message, state, bot, i18n, login_service, service, answers, attempt,
        user_id=user_id, action=action,
    )  # fmt: skip


# -- anything else while a step waits for text --------------------------------------------


async def not_text(message: Message, state: FSMContext, bot: Bot, i18n: PoI18n) -> None:
    step = _STEP_OF.get(str(await state.get_state()))
    if step is not None and step.secret and message.caption:
        await _delete_secret_message(message, bot, i18n)
    await ask(message, state, bot, i18n, Flow.LOGIN, i18n.text("step-needs-text"))


async def text_while_retry(
    message: Message, state: FSMContext, bot: Bot, i18n: PoI18n, login_service: LoginService
) -> None:
    """After a wrong password, text nobody asked for is most likely the password again:
    it leaves the chat, and the two ways on are offered again."""
    await _delete_secret_message(message, bot, i18n)
    data = await state.get_data()
    login = data.get(LOGIN_KEY)
    service = login_service.services.get(str(data.get(SERVICE)))
    name = service.info.display_name if service is not None else ""
    await _offer_retry(message, state, bot, i18n, login if isinstance(login, str) else "", name)


async def _offer_retry(
    message: Message, state: FSMContext, bot: Bot, i18n: PoI18n, login: str, service: str
) -> None:
    await state.set_state(LoginFlow.retry)
    await state.update_data({SEALED: {}, PENDING_ATTEMPT: None})  # nothing secret waits

    def rows(token: str) -> list[list[InlineKeyboardButton]]:
        return [
            [step_button(i18n.plain("button-password-again"), PASSWORD_AGAIN, token)],
            [step_button(i18n.plain("button-start-over"), START_OVER, token)],
        ]

    text = i18n.text("login-wrong-password", login=login, service=service)
    await ask(message, state, bot, i18n, Flow.LOGIN, text, rows)


# -- the attempt --------------------------------------------------------------------------


async def _attempt(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
    service: RemoteService,
    answers: dict[Step, str],
    attempt_state: Mapping[str, str] | None = None,
    *,
    user_id: int | None = None,
    action: ChatAction = ChatAction.TYPING,
) -> None:
    chat_id = message.chat.id
    if user_id is None:
        user_id = message.from_user.id if message.from_user else chat_id
    name = service.info.display_name
    attempt = await new_attempt(state)
    failure: LoginLocked | LoginNotSaved | RemoteError | None = None
    async with working(bot, chat_id, action):
        try:
            outcome = await login_service.login(
                chat_id=chat_id,
                telegram_user_id=user_id,
                service=service,
                answers=answers,
                attempt=attempt_state,
            )
        except (LoginLocked, LoginNotSaved, RemoteError) as exc:
            failure = exc
    if await superseded(state, attempt):
        log.info("login attempt in chat %s superseded; its result is not shown", chat_id)
        return
    if isinstance(failure, LoginNotSaved):
        await finish(state, bot, chat_id)
        await message.answer(
            i18n.text("login-not-saved", service=service.info.display_name),
            reply_markup=login_keyboard(i18n),
        )
        return
    if isinstance(failure, LoginLocked):
        await _locked(message, state, bot, i18n, service, failure)
        return
    if failure is not None:
        await _refused(message, state, bot, i18n, service, answers, failure)
        return
    if isinstance(outcome, NextStep):
        await _next_step(message, state, bot, i18n, login_service, service, outcome)
        return

    assert isinstance(outcome, Linked)
    await finish(state, bot, chat_id)
    session = outcome.session
    await message.answer(
        i18n.text(
            "login-success",
            service=name,
            nickname=session.display_name,
            user_id=session.account_id,
        )
    )
    if outcome.replaced:
        await message.answer(
            i18n.text("login-replaced", service=name, nickname=session.display_name)
        )


async def _refused(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    service: RemoteService,
    answers: Mapping[Step, str],
    failure: RemoteError,
) -> None:
    chat_id = message.chat.id
    log.info("login for chat %s failed: %s", chat_id, failure)
    reason = failure.reason if isinstance(failure, LoginRefused) else None
    name = service.info.display_name
    if reason is RefusalReason.BAD_CREDENTIALS and Step.LOGIN_NAME in answers:
        await _offer_retry(message, state, bot, i18n, answers[Step.LOGIN_NAME], name)
        return
    text = error_text(i18n, failure, name)
    if reason is RefusalReason.RATE_LIMITED:
        # Nothing is wrong with what was typed: the step asked last waits for it again.
        await _forget_last_answer(state, service)
        await ask(message, state, bot, i18n, Flow.LOGIN, text)
        return
    await finish(state, bot, chat_id)
    blocked = reason is RefusalReason.BLOCKED  # trying again cannot help
    await message.answer(
        i18n.text("login-failed", reason=text),
        reply_markup=None if blocked else login_keyboard(i18n),
    )


async def _forget_last_answer(state: FSMContext, service: RemoteService) -> None:
    current = _STEP_OF.get(str(await state.get_state()))
    if current is None or current is Step.LOGIN_NAME or current is Step.CAPTCHA:
        return  # the captcha waits as it is; the login name stays
    sealed = dict((await state.get_data()).get(SEALED) or {})
    sealed.pop(current.value, None)
    await state.update_data({SEALED: sealed})


async def _next_step(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
    service: RemoteService,
    outcome: NextStep,
) -> None:
    chat_id = message.chat.id
    if outcome.step is not Step.CAPTCHA or outcome.picture is None:
        # A step this conversation cannot show: said as such, never a broken prompt.
        await finish(state, bot, chat_id)
        await message.answer(
            i18n.text("login-failed", reason=i18n.text("captcha-unavailable")),
            reply_markup=login_keyboard(i18n),
        )
        return
    # The attempt's own state goes with its secrets: sealed, this chat's, this attempt's.
    await state.update_data(
        {PENDING_ATTEMPT: _seal_of(login_service).seal_attempt(chat_id, outcome.attempt)}
    )
    await state.set_state(LoginFlow.captcha)
    caption = i18n.text("captcha-wrong" if outcome.wrong_answer else "captcha-ask")
    token = await new_step(state, Flow.LOGIN)
    keyboard = [*captcha_rows(i18n, token), cancel_row(i18n, token)]
    sent = await message.answer_photo(
        BufferedInputFile(outcome.picture, filename="captcha.png"),
        caption=caption,
        reply_markup=InlineKeyboardMarkup(inline_keyboard=keyboard),
    )
    await shown(state, bot, chat_id, sent.message_id, picture=True)


def build_router() -> Router:
    group = group_only(Router(name=f"{__name__}.group"))
    group.message.register(login_in_group, Command("login"))
    private = private_only(Router(name=f"{__name__}.private"))
    private.message.register(login_start, Command("login"))
    private.message.register(login_start, CommandStart(deep_link=True, magic=F.args == "login"))
    private.callback_query.register(login_start_button, InLoop(F.data == LOGIN))
    private.callback_query.register(
        relogin_button,
        InLoop(F.data.func(lambda d: d == RELOGIN or d.startswith(RELOGIN + ":"))),
    )
    private.callback_query.register(
        service_chosen, StepButton.filter(F.action.startswith(USE_SERVICE))
    )
    private.callback_query.register(
        password_again_button, StepButton.filter(F.action == PASSWORD_AGAIN)
    )
    private.callback_query.register(start_over_button, StepButton.filter(F.action == START_OVER))
    private.message.register(text_while_choosing, StateFilter(LoginFlow.choose), InLoop(F.text))
    for state in (LoginFlow.login, LoginFlow.password, LoginFlow.token):
        private.message.register(got_answer, StateFilter(state), InLoop(F.text))
    private.message.register(got_captcha, StateFilter(LoginFlow.captcha), InLoop(F.text))
    private.callback_query.register(
        new_picture, StateFilter(LoginFlow.captcha), StepButton.filter(F.action == NEW_PICTURE)
    )
    private.message.register(text_while_retry, StateFilter(LoginFlow.retry), InLoop(F.text))
    private.message.register(not_text, StateFilter(LoginFlow))
    router = Router(name=__name__)
    router.include_routers(group, private)
    return router
