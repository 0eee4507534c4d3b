"""Self-tests of the fake Telegram Bot API against the real aiogram client."""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command, CommandObject
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BufferedInputFile,
    CallbackQuery,
    ContentType,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)

from tests.conftest import close_bot
from tests.fakes.telegram_server import ApiCall, FakeTelegram


def make_bot(fake: FakeTelegram, token: str | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.url))
    return Bot(token or fake.token, session=session)


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d)] for t, d in pairs]
    )


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    bot = make_bot(tg)
    yield bot
    await close_bot(bot)


@pytest.fixture
async def http(tg: FakeTelegram) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{tg.url}/bot{tg.token}/", timeout=10) as client:
        yield client


@contextlib.asynccontextmanager
async def polling(tg: FakeTelegram, dp: Dispatcher, bot: Bot) -> AsyncIterator[None]:
    task = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, polling_timeout=1, close_bot_session=False)
    )
    try:
        await tg.wait_for_call("getUpdates", timeout=3)
        yield
    finally:
        started = time.monotonic()
        if not task.done():
            await asyncio.wait_for(dp.stop_polling(), 2)
        await asyncio.wait_for(task, 2)
        assert time.monotonic() - started < 1.5


def echo_router() -> Router:
    router = Router()

    @router.message(Command("start"))
    async def start(message: Message, command: CommandObject) -> None:
        await message.answer(f"args={command.args}")

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(
            f"<b>echo:</b> {html.escape(message.text or '')}",
            parse_mode="HTML",
            reply_markup=keyboard(("Again", "again"), ("Done", "done")),
        )

    @router.message()
    async def other(message: Message) -> None:
        await message.answer(f"got {ContentType(message.content_type).value}")

    @router.callback_query(F.data == "again")
    async def again(query: CallbackQuery) -> None:
        await query.answer("ok")
        assert isinstance(query.message, Message)
        await query.message.edit_text("edited")

    return router


# --------------------------------------------------------------------- aiogram end to end


async def test_polling_echo_keyboard_and_callback(tg: FakeTelegram, bot: Bot) -> None:
    dp = Dispatcher()
    dp.include_router(echo_router())
    async with polling(tg, dp, bot):
        assert tg.calls[0].method == "getMe"
        first_poll = tg.calls_of("getUpdates")[0]
        assert set(first_poll.params["allowed_updates"]) == {"message", "callback_query"}

        update = tg.send_message("hello <world>")
        sent = await tg.wait_for_call("sendMessage")
        assert sent.ok
        assert sent.params["chat_id"] == 1001
        assert sent.params["text"] == "<b>echo:</b> hello &lt;world&gt;"
        assert sent.params["reply_markup"] == {
            "inline_keyboard": [
                [{"text": "Again", "callback_data": "again"}],
                [{"text": "Done", "callback_data": "done"}],
            ]
        }
        message = sent.result
        assert message["text"] == "echo: hello <world>"
        assert message["entities"] == [{"type": "bold", "offset": 0, "length": 5}]
        assert message["reply_markup"] == sent.params["reply_markup"]
        assert message["message_id"] == update["message"]["message_id"] + 1

        mark = tg.mark()
        press = tg.press_button("again")
        assert press["callback_query"]["message"]["message_id"] == message["message_id"]
        answer = await tg.wait_for_call("answerCallbackQuery", after=mark)
        assert answer.ok
        assert answer.params == {
            "callback_query_id": press["callback_query"]["id"],
            "text": "ok",
        }
        edit = await tg.wait_for_call("editMessageText", after=mark)
        assert edit.ok, edit.summary()
        assert edit.params["message_id"] == message["message_id"]
        stored = tg.message(1001, message["message_id"])
        assert stored is not None
        assert stored["text"] == "edited"
        assert "reply_markup" not in stored  # edited without reply_markup: keyboard is gone

        sticker = tg.send_sticker()
        other = await tg.wait_for_call("sendMessage", after=mark)
        assert other.params["text"] == "got sticker"
        assert [c.method for c in tg.sent_messages(1001)] == [
            "sendMessage",
            "editMessageText",
            "sendMessage",
        ]
        assert tg.sent_messages(999) == []
        # every update got confirmed by the next getUpdates offset
        await tg.wait_for_call(
            "getUpdates", predicate=lambda c: c.params.get("offset", 0) > sticker["update_id"]
        )
        assert tg.pending_updates == []


async def test_command_with_group_mention(tg: FakeTelegram, bot: Bot) -> None:
    dp = Dispatcher()
    dp.include_router(echo_router())
    async with polling(tg, dp, bot):
        update = tg.send_message("/start abc")
        assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
        assert update["message"]["from"]["id"] == update["message"]["chat"]["id"] == 1001
        call = await tg.wait_for_call("sendMessage")
        assert call.params["text"] == "args=abc"

        mark = tg.mark()
        group = tg.send_message(
            "/start@spaces_test_bot x", chat_id=-100500, chat_type="supergroup", user_id=7
        )
        assert group["message"]["chat"] == {
            "id": -100500,
            "type": "supergroup",
            "title": "Test supergroup",
        }
        call = await tg.wait_for_call("sendMessage", after=mark)
        assert call.params == {"chat_id": -100500, "text": "args=x"}
        assert call.result["chat"]["type"] == "supergroup"


async def test_feed_update_models_validate(tg: FakeTelegram, bot: Bot) -> None:
    dp = Dispatcher()
    dp.include_router(echo_router())
    photo = Update.model_validate(tg.send_photo(caption="look", data=b"jpegbytes"))
    assert photo.message is not None
    assert photo.message.text is None
    assert photo.message.caption == "look"
    await dp.feed_update(bot, photo)
    call = await tg.wait_for_call("sendMessage")
    assert call.params["text"] == "got photo"
    assert photo.message.photo is not None
    downloaded = await bot.download(photo.message.photo[-1].file_id)
    assert downloaded is not None
    assert downloaded.read() == b"jpegbytes"

    sticker = Update.model_validate(tg.send_sticker(chat_id=55, language_code=None))
    assert sticker.message is not None
    assert sticker.message.sticker is not None
    assert sticker.message.from_user is not None
    assert sticker.message.from_user.language_code is None


# --------------------------------------------------------------------- getUpdates semantics


async def test_get_updates_offset_and_long_poll(tg: FakeTelegram, http: httpx.AsyncClient) -> None:
    first = tg.send_message("one")
    second = tg.send_message("two")
    assert second["update_id"] == first["update_id"] + 1
    assert second["message"]["message_id"] == first["message"]["message_id"] + 1

    body = (await http.post("getUpdates", data={"timeout": "0"})).json()
    assert body == {"ok": True, "result": [first, second]}
    body = (await http.post("getUpdates", data={"offset": second["update_id"]})).json()
    assert [u["update_id"] for u in body["result"]] == [second["update_id"]]
    body = (await http.post("getUpdates", data={"offset": second["update_id"] + 1})).json()
    assert body["result"] == []
    assert tg.pending_updates == []

    # long poll returns as soon as an update arrives
    poll = asyncio.create_task(http.post("getUpdates", data={"timeout": "5"}))
    await tg.wait_for_call("getUpdates", after=3)
    started = time.monotonic()
    third = tg.send_message("three")
    body = (await poll).json()
    assert body["result"] == [third]
    assert time.monotonic() - started < 0.5

    # an empty long poll honours its timeout
    started = time.monotonic()
    body = (await http.post("getUpdates", data={"offset": "-1", "timeout": "0.3"})).json()
    assert body["result"] == [third]
    body = (
        await http.post("getUpdates", data={"offset": third["update_id"] + 1, "timeout": "0.3"})
    ).json()
    assert body["result"] == []
    assert 0.25 < time.monotonic() - started < 1.5


async def test_negative_offset_limit_and_drop_pending(
    tg: FakeTelegram, http: httpx.AsyncClient
) -> None:
    updates = [tg.send_message(str(i)) for i in range(5)]
    body = (await http.post("getUpdates", data={"limit": "2"})).json()
    assert body["result"] == updates[:2]
    body = (await http.post("getUpdates", data={"offset": "-2"})).json()
    assert body["result"] == updates[3:]
    assert tg.pending_updates == updates[3:]
    body = (await http.post("deleteWebhook", data={"drop_pending_updates": "true"})).json()
    assert body == {"ok": True, "result": True}
    assert tg.pending_updates == []


async def test_allowed_updates_are_remembered(tg: FakeTelegram, http: httpx.AsyncClient) -> None:
    await http.post("getUpdates", json={"allowed_updates": ["message"]})
    tg.inject_update(
        {
            "callback_query": {
                "id": "1",
                "from": {"id": 1, "is_bot": False, "first_name": "A"},
                "chat_instance": "1",
                "data": "x",
            }
        }
    )
    text = tg.send_message("hi")
    body = (await http.post("getUpdates")).json()
    assert body["result"] == [text]


async def test_newer_poll_terminates_older_with_conflict(
    tg: FakeTelegram, http: httpx.AsyncClient
) -> None:
    older = asyncio.create_task(http.post("getUpdates", data={"timeout": "5"}))
    await tg.wait_for_call("getUpdates")
    newer = asyncio.create_task(http.post("getUpdates", data={"timeout": "5"}))
    response = await asyncio.wait_for(older, 2)
    assert response.status_code == 409
    assert response.json()["description"].startswith("Conflict: terminated by other getUpdates")
    update = tg.send_message("x")
    assert (await asyncio.wait_for(newer, 2)).json()["result"] == [update]


async def test_close_is_fast_with_long_poll_in_flight() -> None:
    fake = FakeTelegram()
    await fake.start()
    async with httpx.AsyncClient(timeout=10) as client:
        poll = asyncio.create_task(
            client.post(f"{fake.url}/bot{fake.token}/getUpdates", data={"timeout": "30"})
        )
        await fake.wait_for_call("getUpdates")
        started = time.monotonic()
        await fake.close()
        assert time.monotonic() - started < 1.0
        response = await asyncio.wait_for(poll, 1)
        assert response.json() == {"ok": True, "result": []}


async def test_cancelled_poll_releases_server(tg: FakeTelegram, bot: Bot) -> None:
    dp = Dispatcher()
    dp.include_router(echo_router())
    task = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=30))
    await tg.wait_for_call("getUpdates")
    started = time.monotonic()
    await asyncio.wait_for(dp.stop_polling(), 2)
    await asyncio.wait_for(task, 2)
    assert time.monotonic() - started < 1.5
    await asyncio.sleep(0.05)
    assert tg.calls_of("getUpdates")[-1].response is None  # the client went away
    # the update injected later is still waiting for the next poller
    update = tg.send_message("later")
    assert tg.pending_updates == [update]


# --------------------------------------------------------------------- methods


async def test_send_photo_upload_is_recorded(tg: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_photo(
        1001,
        BufferedInputFile(b"\x89PNG fake bytes", filename="chart.png"),
        caption="<b>Chart</b> of <i>today</i>",
        parse_mode="HTML",
        reply_markup=keyboard(("Open", "open:1")),
    )
    assert sent.photo
    assert sent.caption == "Chart of today"
    assert sent.reply_markup is not None
    call = await tg.wait_for_call("sendPhoto")
    assert call.files == {"photo": b"\x89PNG fake bytes"}
    assert call.params["photo"].startswith("attach://")
    assert call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "open:1"
    assert call.params["caption"] == "<b>Chart</b> of <i>today</i>"
    downloaded = await bot.download(sent.photo[-1])
    assert downloaded is not None
    assert downloaded.read() == b"\x89PNG fake bytes"
    assert tg.sent_messages(1001) == [call]

    again = await bot.send_photo(1001, sent.photo[-1].file_id)
    assert again.photo is not None
    assert again.photo[0].file_id == sent.photo[-1].file_id
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(1001, "no-such-file-id")


async def test_retry_after_from_fail_next(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail_next(
        "sendMessage",
        error_code=429,
        description="Too Many Requests: retry after 7",
        retry_after=7,
    )
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(1001, "hi")
    assert caught.value.retry_after == 7
    failed = tg.calls_of("sendMessage")[0]
    assert failed.status == 429
    assert failed.response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    assert tg.sent_messages() == []
    assert (await bot.send_message(1001, "hi")).text == "hi"

    tg.fail_next("sendMessage", error_code=429, description="Too Many", retry_after=1, chat_id=5)
    await bot.send_message(1001, "other chat is fine")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(5, "x")

    tg.fail_delete_message()
    with pytest.raises(TelegramBadRequest, match="message can't be deleted"):
        await bot.delete_message(1001, 1)


async def test_block_chat_answers_forbidden(tg: FakeTelegram, bot: Bot) -> None:
    tg.block_chat(1001)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(1001, "hi")
    with pytest.raises(TelegramForbiddenError):
        await bot.send_chat_action(1001, "typing")
    await bot.send_message(1002, "still fine")
    tg.unblock_chat(1001)
    await bot.send_message(1001, "back")

    tg.send_message("hi", chat_id=-100777, chat_type="supergroup")
    tg.block_chat(-100777)
    with pytest.raises(TelegramForbiddenError, match="kicked from the supergroup chat"):
        await bot.send_message(-100777, "x")


async def test_validation_errors(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(1001, "")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(1001, "<b> </b>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(1001, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match=r"can't parse entities: Unsupported start tag"):
        await bot.send_message(1001, "1 < 2", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="Can't find end tag"):
        await bot.send_message(1001, "<b>open", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match=r"Character '\.' is reserved"):
        await bot.send_message(1001, "Hello.", parse_mode="MarkdownV2")
    ok = await bot.send_message(1001, "*Hi* there\\.", parse_mode="MarkdownV2")
    assert ok.text == "Hi there."
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(1001, "x", reply_markup=keyboard(("Big", "x" * 65)))
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query("12345")


async def test_raw_http_clients(tg: FakeTelegram, http: httpx.AsyncClient) -> None:
    response = await http.post("sendChatAction", data={"chat_id": "1", "action": "dancing"})
    assert response.status_code == 400
    assert response.json()["description"] == "Bad Request: wrong parameter action in request"

    response = await http.post("sendMessage", data={"chat_id": "1001"})
    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: message text is empty",
    }
    response = await http.post("sendMessage", data={"text": "x"})
    assert response.json()["description"] == "Bad Request: chat_id is empty"

    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    response = await http.post(
        "sendMessage", json={"chat_id": 7, "text": "123", "reply_markup": markup}
    )
    assert response.status_code == 200
    call = tg.calls[-1]
    assert call.params == {"chat_id": 7, "text": "123", "reply_markup": markup}

    response = await http.get("sendmessage", params={"chat_id": "7", "text": "true"})
    assert response.json()["result"]["text"] == "true"
    assert tg.calls[-1].method == "sendMessage"
    assert tg.calls[-1].params == {"chat_id": 7, "text": "true"}

    response = await http.post("sendUnicorn", data={"chat_id": "1"})
    assert response.status_code == 404
    assert response.json() == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found: method not found",
    }
    assert tg.calls[-1].method == "sendUnicorn"

    async with httpx.AsyncClient() as other:
        response = await other.post(f"{tg.url}/bot999:WRONG/getMe")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_wrong_token_raises_unauthorized(tg: FakeTelegram) -> None:
    bot = make_bot(tg, token="42:WRONG")
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await bot.get_me()
    finally:
        await close_bot(bot)


async def test_edit_and_delete_semantics(tg: FakeTelegram, bot: Bot) -> None:
    tg.send_message("hi")
    sent = await bot.send_message(1001, "menu", reply_markup=keyboard(("A", "a")))
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "menu", chat_id=1001, message_id=sent.message_id, reply_markup=keyboard(("A", "a"))
        )
    edited = await bot.edit_message_reply_markup(
        chat_id=1001, message_id=sent.message_id, reply_markup=keyboard(("B", "b"))
    )
    assert isinstance(edited, Message)
    assert edited.edit_date is not None
    with pytest.raises(AssertionError, match="callback_data='a'"):
        tg.press_button("a")
    assert tg.press_button("b")["callback_query"]["message"]["text"] == "menu"

    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text("x", chat_id=1001, message_id=1)  # the user's message
    assert await bot.delete_message(1001, 1) is True  # bots may delete users' messages
    assert await bot.delete_message(1001, sent.message_id) is True
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(1001, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("gone", chat_id=1001, message_id=sent.message_id)
    stale = tg.press_button("b", message_id=sent.message_id)
    assert stale["callback_query"]["message"]["date"] == 0  # inaccessible message
    assert tg.chat_history(1001) == []


async def test_commands_are_decoded_and_stored(tg: FakeTelegram, bot: Bot) -> None:
    commands = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="help", description="Help"),
    ]
    scope = BotCommandScopeAllPrivateChats()
    assert await bot.set_my_commands(commands, scope=scope, language_code="ru")
    call = await tg.wait_for_call("setMyCommands")
    assert call.params == {
        "commands": [
            {"command": "start", "description": "Start"},
            {"command": "help", "description": "Help"},
        ],
        "scope": {"type": "all_private_chats"},
        "language_code": "ru",
    }
    assert tg.commands({"type": "all_private_chats"}, "ru") == call.params["commands"]
    stored = await bot.get_my_commands(scope=scope, language_code="ru")
    assert [(c.command, c.description) for c in stored] == [("start", "Start"), ("help", "Help")]
    assert await bot.get_my_commands() == []
    assert await bot.delete_my_commands(scope=scope, language_code="ru")
    assert tg.commands({"type": "all_private_chats"}, "ru") == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad-Name", description="x")])


async def test_get_chat_and_misc(tg: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "spaces_test_bot", True)
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.get_chat(31337)
    tg.send_message("hi", chat_id=31337, username="alice", first_name="Alice")
    chat = await bot.get_chat(31337)
    assert (chat.id, chat.type, chat.username, chat.first_name) == (
        31337,
        "private",
        "alice",
        "Alice",
    )
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.send_chat_action(31337, "typing")
    assert await bot.log_out()
    assert await bot.close()


async def test_wait_for_call_timeout_lists_calls(tg: FakeTelegram, bot: Bot) -> None:
    await bot.get_me()
    with pytest.raises(AssertionError, match=r"no sendMessage call.*\n.*#0 getMe") as caught:
        await tg.wait_for_call("sendMessage", timeout=0.2)
    assert "-> ok" in str(caught.value)
    waiter = asyncio.create_task(
        tg.wait_for_call("sendMessage", predicate=lambda c: c.params.get("text") == "two")
    )
    await bot.send_message(1, "one")
    await bot.send_message(1, "two")
    found: ApiCall = await asyncio.wait_for(waiter, 1)
    assert found.params["text"] == "two"
    assert found is tg.calls[-1]
