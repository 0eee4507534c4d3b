"""The login conversation: login → password (deleted at once) → captcha when asked."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.enums import ChatAction
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandStart, StateFilter
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
from bot.handlers.ui import (
    LOGIN,
    login_keyboard,
    oauth_rows,
    spaces_error_text,
)
from bot.locales import PoI18n
from bot.services.guard import LoginLocked
from bot.services.login import (
    CaptchaChallenge,
    LoginNotSaved,
    LoginService,
    PasswordSeal,
    PendingExpired,
    clean_captcha,
    clean_login,
    clean_password,
)
from bot.services.notifier import RELOGIN
from bot.spaces import LoginCookies, OAuthLink, SpacesAPIError, SpacesError, codes

log = logging.getLogger(__name__)


class LoginFlow(StatesGroup):
    login = State()
    password = State()
    captcha = State()
    retry = State()  # the password was wrong: enter it again, or start over


# Actions of the buttons under the "wrong password" answer, and under a captcha.
PASSWORD_AGAIN = "password-again"
START_OVER = "start-over"
NEW_PICTURE = "new-picture"


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
    message: Message, state: FSMContext, bot: Bot, i18n: PoI18n, login_service: LoginService
) -> None:
    await _ask_login(message, state, bot, i18n, login_service)


async def login_start_button(
    query: CallbackQuery,
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
) -> None:
    await query.answer()
    await _ask_login(message, state, bot, i18n, login_service)


async def relogin_button(
    query: CallbackQuery,
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
) -> None:
    """From the expiry notice: the nickname is known, so only the password is asked."""
    await query.answer()
    nickname = await login_service.known_nickname(message.chat.id)
    if nickname is None:
        await _ask_login(message, state, bot, i18n, login_service)
        return
    await finish(state, bot, message.chat.id)
    await _ask_password(message, state, bot, i18n, nickname)


async def password_again_button(
    query: CallbackQuery, message: Message, state: FSMContext, bot: Bot, i18n: PoI18n
) -> None:
    """After a wrong password: the login is kept, only the password is asked again."""
    await query.answer()
    login = (await state.get_data()).get("login")
    if not isinstance(login, str):
        await _start_over(message, state, bot, i18n)
        return
    await _ask_password(message, state, bot, i18n, login)


async def start_over_button(
    query: CallbackQuery,
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
) -> None:
    await query.answer()
    await _ask_login(message, state, bot, i18n, login_service)


async def _ask_login(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
) -> None:
    await finish(state, bot, message.chat.id)
    await state.set_state(LoginFlow.login)
    token = await new_step(state, Flow.LOGIN)
    # The social links never delay the prompt: shown at once when known lately, else the
    # prompt goes out now and gets its buttons when Spaces gives them.
    links = login_service.cached_oauth_links()
    prompt = await message.answer(
        _login_text(i18n, links), reply_markup=_login_markup(i18n, token, links)
    )
    await shown(state, bot, prompt.chat.id, prompt.message_id)
    if links is not None:
        return
    links = await login_service.oauth_links()
    if not links or not await is_current(state, token):
        return
    try:
        await prompt.edit_text(
            _login_text(i18n, links), reply_markup=_login_markup(i18n, token, links)
        )
    except TelegramAPIError as exc:
        log.info("social sign-in buttons not added in chat %s: %s", prompt.chat.id, exc)


def _login_text(i18n: PoI18n, links: list[OAuthLink] | None) -> str:
    text = i18n.text("login-ask-login")
    if links:
        text += "\n\n" + i18n.text("login-oauth-explain")
    return text


def _login_markup(i18n: PoI18n, token: str, links: list[OAuthLink] | None) -> InlineKeyboardMarkup:
    rows = oauth_rows(i18n, links or [])
    return InlineKeyboardMarkup(inline_keyboard=[*rows, cancel_row(i18n, token)])


# -- login --------------------------------------------------------------------------------


async def got_login(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
) -> None:
    login = clean_login(message.text)
    if login is None:
        await ask(message, state, bot, i18n, Flow.LOGIN, i18n.text("login-bad-login"))
        return
    user_id = message.from_user.id if message.from_user else message.chat.id
    try:
        await login_service.ensure_not_locked(user_id, login)
    except LoginLocked as locked:
        await finish(state, bot, message.chat.id)
        await message.answer(i18n.text("login-locked", wait=i18n.duration(locked.minutes * 60)))
        return
    await _ask_password(message, state, bot, i18n, login)


async def _ask_password(
    message: Message, state: FSMContext, bot: Bot, i18n: PoI18n, login: str
) -> None:
    await state.update_data(login=login)
    await state.set_state(LoginFlow.password)
    text = i18n.text("login-ask-password", login=login)
    await ask(message, state, bot, i18n, Flow.LOGIN, text)


# -- password -----------------------------------------------------------------------------


async def got_password(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
    password_seal: PasswordSeal,
) -> None:
    # The password leaves the chat before anything else happens.
    await _delete_secret_message(message, bot, i18n)
    password = clean_password(message.text)
    if password is None:
        await ask(message, state, bot, i18n, Flow.LOGIN, i18n.text("login-bad-password"))
        return
    login = (await state.get_data()).get("login")
    if not isinstance(login, str):
        await _start_over(message, state, bot, i18n)
        return
    await _attempt(message, state, bot, i18n, login_service, password_seal, login, password)


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


# -- captcha ------------------------------------------------------------------------------


async def got_captcha(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
    password_seal: PasswordSeal,
) -> None:
    code = clean_captcha(message.text)
    if code is None:
        text = i18n.text("captcha-bad-answer")
        await ask(message, state, bot, i18n, Flow.LOGIN, text, lambda t: captcha_rows(i18n, t))
        return
    pending = await _pending_attempt(message.chat.id, state, password_seal)
    if pending is None:
        await _start_over(message, state, bot, i18n)
        return
    login, password, cookies = pending
    await _attempt(
        message, state, bot, i18n, login_service, password_seal, login, password, code,
        cookies=cookies,
    )  # fmt: skip


async def new_picture(
    query: CallbackQuery,
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
    password_seal: PasswordSeal,
) -> None:
    """The same login sent again without a code: Spaces answers with a fresh picture."""
    await query.answer()
    pending = await _pending_attempt(message.chat.id, state, password_seal)
    if pending is None:
        await _start_over(message, state, bot, i18n)
        return
    login, password, cookies = pending
    await _attempt(
        message, state, bot, i18n, login_service, password_seal, login, password,
        cookies=cookies, user_id=query.from_user.id, action=ChatAction.UPLOAD_PHOTO,
    )  # fmt: skip


async def _pending_attempt(
    chat_id: int, state: FSMContext, password_seal: PasswordSeal
) -> tuple[str, str, LoginCookies] | None:
    """The login, password and cookies a waiting captcha belongs to; None when lost or old."""
    data = await state.get_data()
    login = data.get("login")
    try:
        password = password_seal.open(chat_id, data.get("pending"))
        cookies = password_seal.open_cookies(chat_id, data.get("pending_cookies"))
    except PendingExpired:
        return None
    return (login, password, cookies) if isinstance(login, str) else None


# -- anything else while a step waits for text --------------------------------------------


async def not_text(message: Message, state: FSMContext, bot: Bot, i18n: PoI18n) -> None:
    step = await state.get_state()
    if step == LoginFlow.password.state and message.caption:
        await _delete_secret_message(message, bot, i18n)
    await ask(message, state, bot, i18n, Flow.LOGIN, i18n.text("step-needs-text"))


async def text_while_retry(message: Message, state: FSMContext, bot: Bot, i18n: PoI18n) -> None:
    """After a wrong password, text nobody asked for is most likely the password again:
    it leaves the chat, and the two ways on are offered again."""
    await _delete_secret_message(message, bot, i18n)
    login = (await state.get_data()).get("login")
    await _offer_retry(message, state, bot, i18n, login if isinstance(login, str) else "")


async def _offer_retry(
    message: Message, state: FSMContext, bot: Bot, i18n: PoI18n, login: str
) -> None:
    await state.set_state(LoginFlow.retry)

    def rows(token: str) -> list[list[InlineKeyboardButton]]:
        return [
            [step_button(i18n.plain("button-password-again"), PASSWORD_AGAIN, token)],
            [step_button(i18n.plain("button-start-over"), START_OVER, token)],
        ]

    text = i18n.text("login-wrong-password", login=login)
    await ask(message, state, bot, i18n, Flow.LOGIN, text, rows)


# -- the attempt --------------------------------------------------------------------------


async def _attempt(
    message: Message,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    login_service: LoginService,
    password_seal: PasswordSeal,
    login: str,
    password: str,
    captcha_code: str | None = None,
    *,
    cookies: LoginCookies | None = None,
    user_id: int | None = None,
    action: ChatAction = ChatAction.TYPING,
) -> None:
    chat_id = message.chat.id
    if user_id is None:
        user_id = message.from_user.id if message.from_user else chat_id
    attempt = await new_attempt(state)
    failure: LoginLocked | LoginNotSaved | SpacesError | None = None
    async with working(bot, chat_id, action):
        try:
            outcome = await login_service.login(
                chat_id=chat_id,
                telegram_user_id=user_id,
                login=login,
                password=password,
                captcha_code=captcha_code,
                cookies=cookies,
            )
        except (LoginLocked, LoginNotSaved, SpacesError) as exc:
            failure = exc
    if await superseded(state, attempt):
        log.info("login attempt in chat %s superseded; its result is not shown", chat_id)
        return
    if isinstance(failure, LoginNotSaved):
        await finish(state, bot, chat_id)
        await message.answer(i18n.text("login-not-saved"), reply_markup=login_keyboard(i18n))
        return
    if isinstance(failure, LoginLocked):
        await finish(state, bot, chat_id)
        await message.answer(i18n.text("login-locked", wait=i18n.duration(failure.minutes * 60)))
        return
    if isinstance(failure, SpacesAPIError) and failure.code == codes.WRONG_LOGIN_OR_PASSWORD:
        log.info("login for chat %s failed: %s", chat_id, failure)
        await _offer_retry(message, state, bot, i18n, login)
        return
    if failure is not None:
        log.info("login for chat %s failed: %s", chat_id, failure)
        reason = spaces_error_text(i18n, failure)
        auth_error = failure.auth_error if isinstance(failure, SpacesAPIError) else None
        if auth_error == codes.AUTH_TOO_FAST:
            # Nothing is wrong with what was typed: the same step waits for it again.
            await ask(message, state, bot, i18n, Flow.LOGIN, reason)
            return
        await finish(state, bot, chat_id)
        blocked = auth_error == codes.AUTH_ACCOUNT_BLOCKED  # trying again cannot help
        await message.answer(
            i18n.text("login-failed", reason=reason),
            reply_markup=None if blocked else login_keyboard(i18n),
        )
        return

    if isinstance(outcome, CaptchaChallenge):
        # The attempt's cookies go with its password: sealed, this chat's, this attempt's.
        await state.update_data(
            pending=password_seal.seal(chat_id, password),
            pending_cookies=password_seal.seal_cookies(chat_id, outcome.cookies),
        )
        await state.set_state(LoginFlow.captcha)
        caption = i18n.text("captcha-wrong" if outcome.wrong_answer else "captcha-ask")
        token = await new_step(state, Flow.LOGIN)
        keyboard = [*captcha_rows(i18n, token), cancel_row(i18n, token)]
        sent = await message.answer_photo(
            BufferedInputFile(outcome.image, filename="captcha.png"),
            caption=caption,
            reply_markup=InlineKeyboardMarkup(inline_keyboard=keyboard),
        )
        await shown(state, bot, chat_id, sent.message_id, picture=True)
        return

    await finish(state, bot, chat_id)
    session = outcome.session
    await message.answer(
        i18n.text("login-success", nickname=session.nickname, user_id=session.spaces_user_id)
    )
    if outcome.replaced_nickname and outcome.replaced_nickname != session.nickname:
        await message.answer(i18n.text("login-replaced", nickname=outcome.replaced_nickname))


def build_router() -> Router:
    group = group_only(Router(name=f"{__name__}.group"))
    group.message.register(login_in_group, Command("login"))
    private = private_only(Router(name=f"{__name__}.private"))
    private.message.register(login_start, Command("login"))
    private.message.register(login_start, CommandStart(deep_link=True, magic=F.args == "login"))
    private.callback_query.register(login_start_button, F.data == LOGIN)
    private.callback_query.register(relogin_button, F.data == RELOGIN)
    private.callback_query.register(
        password_again_button, StepButton.filter(F.action == PASSWORD_AGAIN)
    )
    private.callback_query.register(start_over_button, StepButton.filter(F.action == START_OVER))
    private.message.register(got_login, LoginFlow.login, F.text)
    private.message.register(got_password, LoginFlow.password, F.text)
    private.message.register(got_captcha, LoginFlow.captcha, F.text)
    private.callback_query.register(
        new_picture, LoginFlow.captcha, StepButton.filter(F.action == NEW_PICTURE)
    )
    private.message.register(text_while_retry, LoginFlow.retry, F.text)
    private.message.register(not_text, StateFilter(LoginFlow))
    router = Router(name=__name__)
    router.include_routers(group, private)
    return router
