"""A fake Telegram Bot API server for tests.

It speaks the HTTP protocol of the real Bot API (``{base}/bot{token}/{method}``, files at
``{base}/file/bot{token}/{path}``) closely enough that an unmodified aiogram bot doing long
polling works against it, whether the bot runs in the test process or in a child process::

    async with FakeTelegram() as tg:
        bot = Bot(tg.token, session=AiohttpSession(api=TelegramAPIServer.from_base(tg.url)))
        tg.send_message("/start")
        call = await tg.wait_for_call("sendMessage")
        assert call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "x"

Requests may be form-encoded, multipart (uploads), JSON or query-string; every request is
recorded in :attr:`FakeTelegram.calls` with its parameters decoded the way Telegram reads them
(``reply_markup``, ``commands``, ``scope``... become Python objects, ``chat_id`` an ``int``).

Realism that tests can rely on (and that catches bot bugs):

* ``getUpdates``: update_id sequencing, ``offset`` confirmation (an update is dropped once
  ``getUpdates`` is called with an offset greater than its id; a negative offset keeps only
  the last updates), ``limit``, ``timeout`` long polling that returns as soon as an update
  arrives, ``allowed_updates`` (remembered between calls; updates of other types are dropped
  like Telegram never creates them), a newer ``getUpdates`` terminates a pending one with
  409 Conflict, and ``getUpdates`` answers 409 while a webhook is set.
* ``parse_mode`` HTML / MarkdownV2 / Markdown are parsed like Telegram does; malformed text is
  rejected with ``400 Bad Request: can't parse entities: ...``.  Result messages carry the
  parsed plain text and its entities.
* Message ids are allocated per chat (shared by user and bot messages), bot messages are
  stored so that ``editMessageText`` / ``editMessageReplyMarkup`` / ``deleteMessage`` answer
  "message to edit not found", "message is not modified", "message to delete not found"
  when Telegram would.  Editing text without ``reply_markup`` removes the inline keyboard.
* Only inline keyboards are echoed in the returned Message (like Telegram), reply markup is
  validated (``BUTTON_DATA_INVALID`` for callback_data over 64 bytes, etc.).
* ``answerCallbackQuery`` only accepts ids of callback queries injected and not yet answered.
* Webhooks: after ``setWebhook`` the queued updates are POSTed to its URL one at a time, in
  order, with the ``X-Telegram-Bot-Api-Secret-Token`` header it was given; an update leaves
  the queue once the bot answered 2xx (else it is sent again a little later), and a method in
  the answer's body (aiogram's webhook reply) is executed like a call.  ``http://`` URLs are
  accepted, as a local Bot API server does.  :meth:`FakeTelegram.post_to_webhook` sends a
  POST with any header, as a forger would.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import itertools
import json
import re
import secrets
import time
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["DEFAULT_TOKEN", "SECRET_HEADER", "ApiCall", "FakeTelegram", "WebhookPost"]

DEFAULT_TOKEN = "123456:AAFakeTokenForTheTestsOnly_0123456-x"  # shaped like a real one

BLOCKED_DESCRIPTION = "Forbidden: bot was blocked by the user"
_KICKED_DESCRIPTIONS = {
    "group": "Forbidden: bot was kicked from the group chat",
    "supergroup": "Forbidden: bot was kicked from the supergroup chat",
    "channel": "Forbidden: bot was kicked from the channel chat",
}

# Update types Telegram delivers when allowed_updates was never given (or given empty).
_NOT_DEFAULT_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

# Methods whose answer is a message the user sees; used by sent_messages().
_MESSAGE_METHODS = frozenset(
    {"sendMessage", "sendPhoto", "sendDocument", "editMessageText", "editMessageCaption"}
)

# Fallback for methods aiogram does not know: parameters that are plain strings on the wire
# (everything else is JSON-decoded when it arrives as a string).
_FALLBACK_STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "inline_message_id",
        "url",
        "language_code",
        "description",
        "short_description",
        "name",
        "title",
        "action",
        "photo",
        "document",
        "file_id",
        "data",
        "emoji",
        "business_connection_id",
        "message_effect_id",
        "secret_token",
        "ip_address",
    }
)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_WEBHOOK_RETRY_SECONDS = 0.2

_API_PATH = re.compile(r"/bot([^/]*)/([^/]*)/?")
_FILE_PATH = re.compile(r"/file/bot([^/]*)/(.+)")


@dataclass
class ApiCall:
    """One request the fake received.

    ``params`` holds the decoded parameters (nested JSON such as ``reply_markup`` as Python
    objects, integers and booleans typed); uploaded files are in ``files`` keyed by the
    parameter that references them (``files["photo"]`` for aiogram's ``attach://`` uploads)
    or by their multipart field name.  ``at`` is ``time.monotonic()`` when the request was
    received.  ``status``/``response`` are what the fake answered (``None`` while a long
    poll is pending or if the client went away before the answer).
    """

    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    at: float = 0.0
    status: int | None = None
    response: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return bool(self.response and self.response.get("ok"))

    @property
    def result(self) -> Any:
        return self.response.get("result") if self.response else None

    @property
    def error_code(self) -> int | None:
        return self.response.get("error_code") if self.response else None

    @property
    def description(self) -> str | None:
        return self.response.get("description") if self.response else None

    @property
    def chat_id(self) -> Any:
        return self.params.get("chat_id")

    @property
    def text(self) -> str | None:
        """``text`` (or ``caption``) as sent by the bot, before entity parsing."""
        value = self.params.get("text", self.params.get("caption"))
        return value if isinstance(value, str) else None

    def summary(self) -> str:
        shown = {k: v for k, v in self.params.items() if k != "allowed_updates"}
        if self.files:
            shown["<files>"] = {k: f"{len(v)} bytes" for k, v in self.files.items()}
        if self.response is None:
            outcome = "pending"
        elif self.response.get("ok"):
            outcome = "ok"
        else:
            outcome = f"{self.response.get('error_code')} {self.response.get('description')}"
        return f"{self.method} {_short(shown)} -> {outcome}"


@dataclass
class WebhookPost:
    """One POST the fake made to the bot's webhook: the secret header it carried (None = no
    header) and the bot's HTTP status (None when the bot could not be reached)."""

    update_id: int
    secret: str | None
    status: int | None
    error: str | None = None


class _ApiError(Exception):
    def __init__(
        self,
        error_code: int,
        description: str,
        *,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        parameters: dict[str, int] = {}
        if self.retry_after is not None:
            parameters["retry_after"] = self.retry_after
        if self.migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = self.migrate_to_chat_id
        if parameters:
            body["parameters"] = parameters
        return body


class _ParseError(Exception):
    pass


@dataclass
class _FailRule:
    method: str
    error_code: int
    description: str
    retry_after: int | None
    remaining: int
    chat_id: int | str | None


class FakeTelegram:
    """In-process fake of the Telegram Bot API, served by aiohttp on 127.0.0.1."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_id: int = 123456,
        bot_username: str = "spaces_test_bot",
        bot_first_name: str = "Spaces Test Bot",
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.url = ""
        self.calls: list[ApiCall] = []
        self.errors: list[Exception] = []  # unexpected exceptions inside the fake (its bugs)

        self._runner: web.AppRunner | None = None
        self._closing = False
        self._calls_changed = asyncio.Event()

        self._update_ids = itertools.count(10_001)
        self._updates: list[dict[str, Any]] = []
        self._updates_changed = asyncio.Event()
        self._allowed_updates: frozenset[str] | None = None
        self._poller: object | None = None
        self._webhook_url = ""
        self._webhook_secret: str | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._webhook_error: tuple[int, str] | None = None
        self.webhook_posts: list[WebhookPost] = []

        self._chats: dict[int, dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._last_message_id: dict[int, int] = {}
        self._messages: dict[tuple[Any, Any], dict[str, Any]] = {}
        self._open_queries: set[str] = set()
        self._query_ids = itertools.count(4_000_000_001)
        self._files: dict[str, dict[str, Any]] = {}
        self._file_numbers = itertools.count(1)
        self._commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._bot_texts: dict[str, dict[str, str]] = {}

        self._fail_rules: list[_FailRule] = []
        self._page_rules: list[_FailRule] = []
        self._held: dict[str, asyncio.Event] = {}
        self._waiting: dict[str, int] = {}
        self._blocked: dict[int, str] = {}

        self._handlers: dict[str, Callable[[ApiCall], Any]] = {
            "getMe": self._get_me,
            "logOut": self._true,
            "close": self._true,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getMyCommands": self._get_my_commands,
            "setMyDescription": self._set_bot_text("description"),
            "setMyShortDescription": self._set_bot_text("short_description"),
            "setMyName": self._set_bot_text("name"),
            "setChatMenuButton": self._true,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "copyMessage": self._copy_message,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "deleteMessages": self._delete_messages,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action,
            "getChat": self._get_chat,
            "getFile": self._get_file,
        }
        self._canonical = {name.lower(): name for name in [*self._handlers, "getUpdates"]}
        for name in _aiogram_methods():
            self._canonical.setdefault(name.lower(), name)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> FakeTelegram:
        """Start serving on 127.0.0.1 on a free port; sets :attr:`url`."""
        if self._runner is not None:
            raise RuntimeError("FakeTelegram is already running")
        self._closing = False
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        """Stop the server; pending long polls answer at once (empty result)."""
        self._closing = True
        self._wake_pollers()
        task, self._webhook_task = self._webhook_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ------------------------------------------------------------------ injecting updates

    def send_message(
        self,
        text: str,
        *,
        chat_id: int = 1001,
        user_id: int | None = None,
        chat_type: str = "private",
        language_code: str | None = "en",
        first_name: str = "Test",
        username: str | None = None,
        message_id: int | None = None,
    ) -> dict[str, Any]:
        """A user sends a text message; returns the Update (``bot_command`` entity for "/")."""
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0] if text.strip() else text
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": _u16len(command)}]
        return self._user_message(
            content,
            chat_id=chat_id,
            user_id=user_id,
            chat_type=chat_type,
            language_code=language_code,
            first_name=first_name,
            username=username,
            message_id=message_id,
        )

    def send_sticker(
        self,
        *,
        chat_id: int = 1001,
        user_id: int | None = None,
        chat_type: str = "private",
        language_code: str | None = "en",
        first_name: str = "Test",
        username: str | None = None,
        message_id: int | None = None,
        emoji: str = "\N{THUMBS UP SIGN}",
    ) -> dict[str, Any]:
        """A user sends a sticker (a message without text)."""
        file_id = self._store_file(b"RIFF\x00\x00\x00\x00WEBPVP8 ", "stickers", ".webp")
        sticker = {
            "file_id": file_id,
            "file_unique_id": self._files[file_id]["file_unique_id"],
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "set_name": "TestStickers",
            "file_size": self._files[file_id]["file_size"],
        }
        return self._user_message(
            {"sticker": sticker},
            chat_id=chat_id,
            user_id=user_id,
            chat_type=chat_type,
            language_code=language_code,
            first_name=first_name,
            username=username,
            message_id=message_id,
        )

    def send_photo(
        self,
        *,
        chat_id: int = 1001,
        user_id: int | None = None,
        chat_type: str = "private",
        language_code: str | None = "en",
        first_name: str = "Test",
        username: str | None = None,
        message_id: int | None = None,
        caption: str | None = None,
        data: bytes | None = None,
    ) -> dict[str, Any]:
        """A user sends a photo (no ``text``; optional ``caption``); ``getFile`` serves ``data``."""
        content: dict[str, Any] = {"photo": self._photo_sizes(data or _FAKE_JPEG)}
        if caption:
            content["caption"] = caption
        return self._user_message(
            content,
            chat_id=chat_id,
            user_id=user_id,
            chat_type=chat_type,
            language_code=language_code,
            first_name=first_name,
            username=username,
            message_id=message_id,
        )

    def press_button(
        self,
        callback_data: str,
        *,
        chat_id: int = 1001,
        user_id: int | None = None,
        message_id: int | None = None,
        language_code: str | None = "en",
        first_name: str = "Test",
        username: str | None = None,
    ) -> dict[str, Any]:
        """The user presses an inline button; returns the Update with the ``callback_query``.

        Without ``message_id`` the newest message the bot sent to the chat that currently has
        an inline button with this ``callback_data`` is used (AssertionError if none, since a
        user could not press it).  With ``message_id`` the stored message is used whatever
        its buttons (to simulate stale or forged data); a message that no longer exists is
        sent as an inaccessible message (``date`` 0).
        """
        if message_id is None:
            message = self._find_button_message(chat_id, callback_data)
        else:
            stored = self._messages.get((chat_id, message_id))
            if stored is not None:
                message = copy.deepcopy(stored)
            else:
                message = {"message_id": message_id, "date": 0, "chat": self._chat(chat_id)}
        chat_type = self._chat(chat_id)["type"]
        user = self._make_user(
            user_id if user_id is not None else (chat_id if chat_type == "private" else 1001),
            first_name=first_name,
            username=username,
            language_code=language_code,
        )
        query_id = str(next(self._query_ids))
        self._open_queries.add(query_id)
        query = {
            "id": query_id,
            "from": user,
            "message": message,
            "chat_instance": str(-(abs(chat_id) * 7919 + 17)),
            "data": callback_data,
        }
        return self.inject_update({"callback_query": query})

    def inject_update(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw update (``{"message": {...}}`` etc.); ``update_id`` is assigned."""
        update = {"update_id": next(self._update_ids), **copy.deepcopy(payload)}
        self._updates.append(update)
        self._wake_pollers()
        return copy.deepcopy(update)

    @property
    def webhook_url(self) -> str:
        """The URL given to ``setWebhook``; empty while none is set."""
        return self._webhook_url

    @property
    def webhook_secret(self) -> str | None:
        """The ``secret_token`` given to ``setWebhook``, if any."""
        return self._webhook_secret

    async def post_to_webhook(self, payload: dict[str, Any], *, secret: str | None) -> int:
        """POST one update straight to the webhook with this secret header (None: no header),
        as someone who found the URL would; returns the HTTP status.  Nothing is queued."""
        if not self._webhook_url:
            raise AssertionError("no webhook is set")
        update = {"update_id": next(self._update_ids), **copy.deepcopy(payload)}
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self._webhook_url, json=update, headers=headers) as response,
        ):
            await response.read()
            return response.status

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by an ``offset``."""
        return copy.deepcopy(self._updates)

    # ------------------------------------------------------------------ waiting and reading

    async def wait_for_call(
        self,
        method: str,
        *,
        predicate: Callable[[ApiCall], bool] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - part of this helper's API
        after: int = 0,
    ) -> ApiCall:
        """First call to ``method`` (case-insensitive) at index >= ``after`` matching
        ``predicate``; waits up to ``timeout`` seconds, then raises AssertionError listing
        the calls seen."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        wanted = method.lower()
        index = after
        while True:
            while index < len(self.calls):
                call = self.calls[index]
                index += 1
                if call.method.lower() == wanted and (predicate is None or predicate(call)):
                    return call
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"no {method} call{' matching the predicate' if predicate else ''} "
                    f"within {timeout}s; calls since #{after}:\n{self.format_calls(after)}"
                )
            changed = self._calls_changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def mark(self) -> int:
        """The current number of calls, to pass as ``after=``."""
        return len(self.calls)

    def calls_of(self, method: str, *, after: int = 0) -> list[ApiCall]:
        wanted = method.lower()
        return [c for c in self.calls[after:] if c.method.lower() == wanted]

    def sent_messages(self, chat_id: int | None = None, *, after: int = 0) -> list[ApiCall]:
        """Successful sendMessage / sendPhoto / sendDocument / editMessageText /
        editMessageCaption calls, optionally only those for ``chat_id``."""
        return [
            c
            for c in self.calls[after:]
            if c.method in _MESSAGE_METHODS
            and c.ok
            and (chat_id is None or c.params.get("chat_id") == chat_id)
        ]

    def format_calls(self, after: int = 0) -> str:
        lines = [f"  #{i} {c.summary()}" for i, c in enumerate(self.calls) if i >= after]
        return "\n".join(lines) if lines else "  (none)"

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The current state of a message (user's or bot's), None once deleted."""
        stored = self._messages.get((chat_id, message_id))
        return copy.deepcopy(stored) if stored else None

    def chat_history(self, chat_id: int) -> list[dict[str, Any]]:
        """Messages currently in the chat (not deleted), oldest first, edits applied."""
        found = [m for (c, _), m in self._messages.items() if c == chat_id]
        return copy.deepcopy(sorted(found, key=lambda m: m["message_id"]))

    def commands(
        self, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, Any]]:
        """Commands currently set for ``scope`` (default scope) and ``language_code``."""
        return copy.deepcopy(self._commands.get(_scope_key(scope, language_code), []))

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        method: str,
        *,
        error_code: int,
        description: str,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | str | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` (only those for ``chat_id`` if given) answer
        this error, e.g. ``fail_next("sendMessage", error_code=429,
        description="Too Many Requests: retry after 5", retry_after=5)``."""
        name = self._canonical.get(method.lower(), method)
        self._fail_rules.append(
            _FailRule(name, error_code, description, retry_after, times, chat_id)
        )

    def answer_page_next(
        self, method: str, *, status: int = 502, times: int = 1, chat_id: int | None = None
    ) -> None:
        """The next ``times`` calls of ``method`` get an HTML error page with ``status``, as a
        proxy in front of Telegram answers when Telegram does not (aiogram cannot decode it)."""
        name = self._canonical.get(method.lower(), method)
        self._page_rules.append(_FailRule(name, status, "proxy page", None, times, chat_id))

    def hold(self, method: str) -> None:
        """Calls of ``method`` arrive (and are recorded as pending) but get no answer until
        :meth:`release`: a request in flight, for as long as a test wants."""
        name = self._canonical.get(method.lower(), method)
        self._held.setdefault(name, asyncio.Event())

    def release(self, method: str) -> None:
        name = self._canonical.get(method.lower(), method)
        held = self._held.pop(name, None)
        if held is not None:
            held.set()

    def held_calls(self, method: str) -> int:
        """How many calls of ``method`` are waiting for :meth:`release` now."""
        name = self._canonical.get(method.lower(), method)
        return self._waiting.get(name, 0)

    def fail_delete_message(
        self,
        *,
        description: str = "Bad Request: message can't be deleted",
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        self.fail_next(
            "deleteMessage", error_code=400, description=description, times=times, chat_id=chat_id
        )

    def block_chat(self, chat_id: int, *, description: str | None = None) -> None:
        """Every send*/edit*/deleteMessage to this chat answers 403 (``bot was blocked by
        the user`` for private chats, ``bot was kicked from the ... chat`` otherwise)."""
        if description is None:
            chat_type = self._chat(chat_id)["type"]
            description = _KICKED_DESCRIPTIONS.get(chat_type, BLOCKED_DESCRIPTION)
        self._blocked[chat_id] = description

    def unblock_chat(self, chat_id: int) -> None:
        self._blocked.pop(chat_id, None)

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        file_match = _FILE_PATH.fullmatch(request.path)
        if file_match:
            return self._serve_file(*file_match.groups())
        match = _API_PATH.fullmatch(request.path)
        if not match:
            return _json_response(404, _ApiError(404, "Not Found").body())
        token, raw_method = match.groups()
        method = self._canonical.get(raw_method.lower(), raw_method)
        try:
            raw, raw_files = await _read_request(request)
        except _ApiError as error:
            call = ApiCall(method, {}, {}, time.monotonic())
            return self._finish(call, error.error_code, error.body())
        params, files = _decode_params(method, raw, raw_files)
        call = ApiCall(method, params, files, time.monotonic())

        if token != self.token:
            return self._finish(call, 401, _ApiError(401, "Unauthorized").body())
        if method == "getUpdates":
            return await self._handle_get_updates(call)
        held = self._held.get(method)
        if held is not None:
            self._waiting[method] = self._waiting.get(method, 0) + 1
            try:
                await held.wait()
            finally:
                self._waiting[method] -= 1
        page = self._take_rule(self._page_rules, call)
        if page is not None:
            call.status = page.error_code
            call.response = {"page": "proxy error"}
            self._record(call)
            html = "<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
            return web.Response(status=page.error_code, text=html, content_type="text/html")
        return self._run_method(call)

    def _run_method(self, call: ApiCall) -> web.Response:
        method = call.method
        try:
            self._check_fail_rules(call)
            handler = self._handlers.get(method)
            if handler is None:
                raise _ApiError(404, "Not Found: method not found")
            result = handler(call)
        except _ApiError as error:
            return self._finish(call, error.error_code, error.body())
        except Exception as error:  # a bug in the fake: answer like Telegram's 500s do
            self.errors.append(error)
            body = _ApiError(500, f"Internal Server Error: fake failed: {error!r}").body()
            return self._finish(call, 500, body)
        return self._finish(call, 200, {"ok": True, "result": result})

    def _finish(self, call: ApiCall, status: int, body: dict[str, Any]) -> web.Response:
        call.status = status
        call.response = body
        self._record(call)
        return _json_response(status, body)

    def _record(self, call: ApiCall) -> None:
        self.calls.append(call)
        changed, self._calls_changed = self._calls_changed, asyncio.Event()
        changed.set()

    def _check_fail_rules(self, call: ApiCall) -> None:
        rule = self._take_rule(self._fail_rules, call)
        if rule is not None:
            raise _ApiError(rule.error_code, rule.description, retry_after=rule.retry_after)

    def _take_rule(self, rules: list[_FailRule], call: ApiCall) -> _FailRule | None:
        """The first rule of ``rules`` that applies to ``call``, used up by one."""
        for rule in rules:
            if rule.method != call.method or rule.remaining <= 0:
                continue
            if rule.chat_id is not None and call.params.get("chat_id") != rule.chat_id:
                continue
            rule.remaining -= 1
            rules[:] = [r for r in rules if r.remaining > 0]
            return rule
        return None

    def _serve_file(self, token: str, path: str) -> web.Response:
        if token != self.token:
            return _json_response(401, _ApiError(401, "Unauthorized").body())
        for info in self._files.values():
            if info["file_path"] == path and info["content"] is not None:
                return web.Response(body=info["content"], content_type="application/octet-stream")
        return _json_response(404, _ApiError(404, "Not Found").body())

    # ------------------------------------------------------------------ getUpdates

    async def _handle_get_updates(self, call: ApiCall) -> web.StreamResponse:
        params = call.params
        try:
            self._check_fail_rules(call)
            if self._webhook_url:
                raise _ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
            offset = _int_param(params, "offset", 0)
            limit = _int_param(params, "limit", 100)
            timeout = params.get("timeout", 0)
            if not isinstance(timeout, int | float) or isinstance(timeout, bool):
                raise _ApiError(400, "Bad Request: wrong parameter timeout")
            limit = min(max(limit, 1), 100)
            allowed = params.get("allowed_updates")
            if allowed is not None:
                if not isinstance(allowed, list):
                    raise _ApiError(400, "Bad Request: can't parse allowed updates")
                self._allowed_updates = frozenset(allowed) if allowed else None
        except _ApiError as error:
            return self._finish(call, error.error_code, error.body())

        self._confirm(offset)
        me = object()
        self._poller = me
        self._wake_pollers()  # a pending older poll sees it was superseded: 409
        self._record(call)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, float(timeout))
        try:
            while True:
                if self._poller is not me:
                    conflict = _ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; "
                        "make sure that only one bot instance is running",
                    )
                    return self._answer_poll(call, conflict.error_code, conflict.body())
                batch = self._deliverable(limit)
                remaining = deadline - loop.time()
                if batch or remaining <= 0 or self._closing:
                    return self._answer_poll(call, 200, {"ok": True, "result": batch})
                changed = self._updates_changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)
        finally:
            if self._poller is me:
                self._poller = None

    def _answer_poll(self, call: ApiCall, status: int, body: dict[str, Any]) -> web.Response:
        call.status = status
        call.response = body
        return _json_response(status, body)

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    def _deliverable(self, limit: int) -> list[dict[str, Any]]:
        kept = [u for u in self._updates if self._is_allowed(u)]
        self._updates = kept
        return copy.deepcopy(kept[:limit])

    def _is_allowed(self, update: dict[str, Any]) -> bool:
        kind = next((k for k in update if k != "update_id"), "")
        if self._allowed_updates is None:
            return kind not in _NOT_DEFAULT_UPDATES
        return kind in self._allowed_updates

    def _wake_pollers(self) -> None:
        changed, self._updates_changed = self._updates_changed, asyncio.Event()
        changed.set()

    # ------------------------------------------------------------------ chats, users, messages

    def _make_user(
        self,
        user_id: int,
        *,
        first_name: str = "Test",
        username: str | None = None,
        language_code: str | None = None,
    ) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self._users[user_id] = user
        return copy.deepcopy(user)

    def _chat(self, chat_id: int) -> dict[str, Any]:
        known = self._chats.get(chat_id)
        if known is not None:
            return copy.deepcopy(known)
        if chat_id > 0:
            user = self._users.get(chat_id, {})
            chat: dict[str, Any] = {
                "id": chat_id,
                "type": "private",
                "first_name": user.get("first_name", "Test"),
            }
            if user.get("username"):
                chat["username"] = user["username"]
            return chat
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        return {"id": chat_id, "type": kind, "title": "Test chat"}

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def _next_message_id(self, chat_id: int, wanted: int | None = None) -> int:
        last = self._last_message_id.get(chat_id, 0)
        message_id = wanted if wanted is not None else last + 1
        self._last_message_id[chat_id] = max(last, message_id)
        return message_id

    def _user_message(
        self,
        content: dict[str, Any],
        *,
        chat_id: int,
        user_id: int | None,
        chat_type: str,
        language_code: str | None,
        first_name: str,
        username: str | None,
        message_id: int | None,
    ) -> dict[str, Any]:
        if user_id is None:
            user_id = chat_id if chat_type == "private" else 1001
        user = self._make_user(
            user_id, first_name=first_name, username=username, language_code=language_code
        )
        if chat_type == "private":
            chat: dict[str, Any] = {"id": chat_id, "type": "private", "first_name": first_name}
            if username:
                chat["username"] = username
        else:
            chat = {"id": chat_id, "type": chat_type, "title": f"Test {chat_type}"}
        self._chats[chat_id] = chat
        message = {
            "message_id": self._next_message_id(chat_id, message_id),
            "from": user,
            "chat": copy.deepcopy(chat),
            "date": int(time.time()),
            **content,
        }
        self._messages[(chat_id, message["message_id"])] = copy.deepcopy(message)
        return self.inject_update({"message": message})

    def _find_button_message(self, chat_id: int, callback_data: str) -> dict[str, Any]:
        seen: list[str] = []
        bot_messages = sorted(
            (m for (c, _), m in self._messages.items() if c == chat_id and _is_bot_message(m)),
            key=lambda m: -m["message_id"],
        )
        for message in bot_messages:
            for button in _inline_buttons(message.get("reply_markup")):
                data = button.get("callback_data")
                if data == callback_data:
                    return copy.deepcopy(message)
                if data is not None:
                    seen.append(f"#{message['message_id']}:{data!r}")
        raise AssertionError(
            f"no message the bot sent to chat {chat_id} has an inline button with "
            f"callback_data={callback_data!r}; buttons present: {', '.join(seen) or 'none'}"
        )

    def _stored_bot_message(self, params: dict[str, Any], *, verb: str) -> dict[str, Any]:
        chat_id = _require_chat_id(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise _ApiError(400, f"Bad Request: message to {verb} not found")
        message = self._messages.get((chat_id, message_id))
        if message is None:
            raise _ApiError(400, f"Bad Request: message to {verb} not found")
        if not _is_bot_message(message):
            raise _ApiError(400, "Bad Request: message can't be edited")
        return message

    def _check_blocked(self, chat_id: Any) -> None:
        if isinstance(chat_id, int) and chat_id in self._blocked:
            raise _ApiError(403, self._blocked[chat_id])

    def _new_bot_message(self, params: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        chat_id = _require_chat_id(params)
        if chat_id == 0:
            raise _ApiError(400, "Bad Request: chat not found")
        markup = params.get("reply_markup")
        _check_reply_markup(markup)
        reply_to = self._reply_target(chat_id, params)
        self._check_blocked(chat_id)
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "from": self._bot_user(),
            "chat": self._chat(chat_id),
            "date": int(time.time()),
        }
        if reply_to is not None:
            reply_to = copy.deepcopy(reply_to)
            reply_to.pop("reply_to_message", None)
            message["reply_to_message"] = reply_to
        message.update(content)
        if _inline_buttons(markup):
            message["reply_markup"] = copy.deepcopy(markup)
        self._messages[(chat_id, message["message_id"])] = copy.deepcopy(message)
        return message

    def _reply_target(self, chat_id: int, params: dict[str, Any]) -> dict[str, Any] | None:
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            target_id = reply.get("message_id")
            allow = bool(reply.get("allow_sending_without_reply"))
            chat_id = reply.get("chat_id", chat_id)
        elif params.get("reply_to_message_id") is not None:
            target_id = params.get("reply_to_message_id")
            allow = bool(params.get("allow_sending_without_reply"))
        else:
            return None
        target = self._messages.get((chat_id, target_id))
        if target is None and not allow:
            raise _ApiError(400, "Bad Request: message to be replied not found")
        return target

    def _store_file(self, content: bytes | None, folder: str, suffix: str) -> str:
        number = next(self._file_numbers)
        file_id = f"AgACAgIAAxkBAAI{number:06d}{secrets.token_urlsafe(12)}"
        self._files[file_id] = {
            "file_id": file_id,
            "file_unique_id": f"AQAD{number:06d}",
            "file_size": len(content) if content is not None else 0,
            "file_path": f"{folder}/file_{number}{suffix}",
            "content": content,
        }
        return file_id

    def _photo_sizes(self, content: bytes | None) -> list[dict[str, Any]]:
        sizes = []
        for width, height in ((90, 90), (800, 800)):
            file_id = self._store_file(content, "photos", ".jpg")
            info = self._files[file_id]
            sizes.append(
                {
                    "file_id": file_id,
                    "file_unique_id": info["file_unique_id"],
                    "file_size": info["file_size"],
                    "width": width,
                    "height": height,
                }
            )
        return sizes

    def _input_file(
        self, call: ApiCall, key: str, folder: str, suffix: str
    ) -> tuple[str | None, bytes | None]:
        """(known file_id or None, uploaded bytes or None) for an InputFile parameter."""
        if key in call.files:
            return None, call.files[key]
        value = call.params.get(key)
        if not isinstance(value, str) or not value or value.startswith("attach://"):
            return None, None
        if value in self._files:
            return value, self._files[value]["content"]
        if value.startswith(("http://", "https://")):
            return None, b""
        raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    # ------------------------------------------------------------------ methods

    def _true(self, call: ApiCall) -> bool:
        return True

    def _get_me(self, call: ApiCall) -> dict[str, Any]:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _set_webhook(self, call: ApiCall) -> bool:
        url = call.params.get("url")
        if url == "":  # Telegram: an empty url removes the webhook
            return self._delete_webhook(call)
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise _ApiError(400, "Bad Request: bad webhook: HTTPS url must be provided for webhook")
        secret = call.params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(str(secret)):
            raise _ApiError(400, "Bad Request: secret token contains unallowed characters")
        allowed = call.params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) if allowed else None
        self._webhook_url = url
        self._webhook_secret = str(secret) if secret is not None else None
        self._webhook_error = None
        if call.params.get("drop_pending_updates"):
            self._updates.clear()
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.create_task(self._deliver_to_webhook())
        self._wake_pollers()
        return True

    def _delete_webhook(self, call: ApiCall) -> bool:
        self._webhook_url = ""
        self._webhook_secret = None
        if call.params.get("drop_pending_updates"):
            self._updates.clear()
        self._wake_pollers()
        return True

    def _get_webhook_info(self, call: ApiCall) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook_url and self._webhook_error is not None:
            info["last_error_date"], info["last_error_message"] = self._webhook_error
        if self._webhook_url and self._allowed_updates is not None:
            info["allowed_updates"] = sorted(self._allowed_updates)
        return info

    # ------------------------------------------------------------------ webhook delivery

    async def _deliver_to_webhook(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=65)) as session:
            while self._webhook_url and not self._closing:
                batch = self._deliverable(1)
                if not batch:
                    await self._updates_changed.wait()  # a new update, or the webhook changed
                    continue
                update = batch[0]
                if await self._post_update(session, update):
                    self._updates = [
                        u for u in self._updates if u["update_id"] != update["update_id"]
                    ]
                else:
                    await asyncio.sleep(_WEBHOOK_RETRY_SECONDS)

    async def _post_update(self, session: aiohttp.ClientSession, update: dict[str, Any]) -> bool:
        secret = self._webhook_secret
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        post = WebhookPost(update["update_id"], secret, None)
        self.webhook_posts.append(post)
        try:
            async with session.post(self._webhook_url, json=update, headers=headers) as response:
                post.status = response.status
                if 200 <= response.status < 300:
                    await self._run_webhook_reply(response)
                    return True
                post.error = f"Wrong response from the webhook: {response.status}"
        except (aiohttp.ClientError, TimeoutError) as error:
            post.error = f"Connection failed: {error!r}"
        self._webhook_error = (int(time.time()), post.error)
        return False

    async def _run_webhook_reply(self, response: aiohttp.ClientResponse) -> None:
        """Telegram executes a method given in the webhook's answer (aiogram sends it as a
        multipart form; a JSON object works too)."""
        raw: dict[str, Any] = {}
        raw_files: dict[str, bytes] = {}
        if response.content_type == "application/json":
            body = await response.json()
            raw = body if isinstance(body, dict) else {}
        elif response.content_type == "multipart/form-data":
            reader = aiohttp.MultipartReader.from_response(response)
            while (part := await reader.next()) is not None:
                if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                    continue
                if part.filename:
                    raw_files[part.name] = await part.read()
                else:
                    raw[part.name] = await part.text()
        name = raw.pop("method", None)
        if not isinstance(name, str) or not name:
            return
        method = self._canonical.get(name.lower(), name)
        params, files = _decode_params(method, raw, raw_files)
        self._run_method(ApiCall(method, params, files, time.monotonic()))

    def _set_my_commands(self, call: ApiCall) -> bool:
        commands = call.params.get("commands")
        if not isinstance(commands, list):
            raise _ApiError(400, 'Bad Request: parameter "commands" is required')
        if len(commands) > 100:
            raise _ApiError(400, "Bad Request: BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not isinstance(command, dict):
                raise _ApiError(400, "Bad Request: can't parse BotCommand")
            name, description = command.get("command"), command.get("description")
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise _ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        key = _scope_key(call.params.get("scope"), call.params.get("language_code") or "")
        if commands:
            self._commands[key] = copy.deepcopy(commands)
        else:
            self._commands.pop(key, None)
        return True

    def _delete_my_commands(self, call: ApiCall) -> bool:
        key = _scope_key(call.params.get("scope"), call.params.get("language_code") or "")
        self._commands.pop(key, None)
        return True

    def _get_my_commands(self, call: ApiCall) -> list[dict[str, Any]]:
        key = _scope_key(call.params.get("scope"), call.params.get("language_code") or "")
        return copy.deepcopy(self._commands.get(key, []))

    def _set_bot_text(self, name: str) -> Callable[[ApiCall], bool]:
        def handler(call: ApiCall) -> bool:
            language = call.params.get("language_code") or ""
            value = call.params.get(name)
            texts = self._bot_texts.setdefault(name, {})
            if value:
                texts[language] = str(value)
            else:
                texts.pop(language, None)
            return True

        return handler

    def _send_message(self, call: ApiCall) -> dict[str, Any]:
        params = call.params
        _require_chat_id(params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        plain, entities = _format(text, params.get("parse_mode"), params.get("entities"))
        if not plain.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(plain) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        content: dict[str, Any] = {"text": plain}
        if entities:
            content["entities"] = entities
        return self._new_bot_message(params, content)

    def _copy_message(self, call: ApiCall) -> dict[str, Any]:
        """Like Telegram: the content of a stored message, sent anew; answers its id only."""
        params = call.params
        source = self._messages.get((params.get("from_chat_id"), params.get("message_id")))
        if source is None:
            raise _ApiError(400, "Bad Request: message to copy not found")
        kept = ("text", "entities", "caption", "caption_entities", "photo", "document", "sticker")
        content = {k: copy.deepcopy(v) for k, v in source.items() if k in kept}
        return {"message_id": self._new_bot_message(params, content)["message_id"]}

    def _caption(self, params: dict[str, Any]) -> dict[str, Any]:
        caption = params.get("caption")
        if not isinstance(caption, str) or not caption:
            return {}
        plain, entities = _format(caption, params.get("parse_mode"), params.get("caption_entities"))
        if len(plain) > 1024:
            raise _ApiError(400, "Bad Request: message caption is too long")
        content: dict[str, Any] = {"caption": plain} if plain else {}
        if entities:
            content["caption_entities"] = entities
        return content

    def _send_photo(self, call: ApiCall) -> dict[str, Any]:
        _require_chat_id(call.params)
        file_id, content = self._input_file(call, "photo", "photos", ".jpg")
        if file_id is None and content is None:
            raise _ApiError(400, "Bad Request: there is no photo in the request")
        caption = self._caption(call.params)
        if file_id is not None:
            info = self._files[file_id]
            sizes = [
                {
                    "file_id": file_id,
                    "file_unique_id": info["file_unique_id"],
                    "file_size": info["file_size"],
                    "width": 800,
                    "height": 800,
                }
            ]
        else:
            sizes = self._photo_sizes(content)
        return self._new_bot_message(call.params, {"photo": sizes, **caption})

    def _send_document(self, call: ApiCall) -> dict[str, Any]:
        _require_chat_id(call.params)
        file_id, content = self._input_file(call, "document", "documents", "")
        if file_id is None and content is None:
            raise _ApiError(400, "Bad Request: there is no document in the request")
        caption = self._caption(call.params)
        if file_id is None:
            file_id = self._store_file(content, "documents", "")
        info = self._files[file_id]
        document = {
            "file_id": file_id,
            "file_unique_id": info["file_unique_id"],
            "file_size": info["file_size"],
            "file_name": info["file_path"].rsplit("/", 1)[-1],
        }
        return self._new_bot_message(call.params, {"document": document, **caption})

    def _edit_target(self, call: ApiCall) -> dict[str, Any] | None:
        """The stored message to edit, or None for inline messages."""
        if call.params.get("inline_message_id"):
            return None
        message = self._stored_bot_message(call.params, verb="edit")
        self._check_blocked(call.params.get("chat_id"))
        return message

    def _apply_edit(
        self, message: dict[str, Any], changes: dict[str, Any], markup: Any
    ) -> dict[str, Any]:
        edited = copy.deepcopy(message)
        for key, value in changes.items():
            if value is None:
                edited.pop(key, None)
            else:
                edited[key] = copy.deepcopy(value)
        edited.pop("reply_markup", None)
        if _inline_buttons(markup):
            edited["reply_markup"] = copy.deepcopy(markup)
        if edited == message:
            raise _ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )
        edited["edit_date"] = int(time.time())
        message.clear()
        message.update(edited)
        return copy.deepcopy(message)

    def _edit_message_text(self, call: ApiCall) -> dict[str, Any] | bool:
        params = call.params
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        plain, entities = _format(text, params.get("parse_mode"), params.get("entities"))
        if not plain.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(plain) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        markup = params.get("reply_markup")
        _check_reply_markup(markup)
        message = self._edit_target(call)
        if message is None:
            return True
        if "text" not in message:
            raise _ApiError(400, "Bad Request: there is no text in the message to edit")
        return self._apply_edit(message, {"text": plain, "entities": entities or None}, markup)

    def _edit_message_caption(self, call: ApiCall) -> dict[str, Any] | bool:
        caption = self._caption(call.params)
        markup = call.params.get("reply_markup")
        _check_reply_markup(markup)
        message = self._edit_target(call)
        if message is None:
            return True
        if "text" in message:
            raise _ApiError(400, "Bad Request: there is no caption in the message to edit")
        changes = {
            "caption": caption.get("caption"),
            "caption_entities": caption.get("caption_entities"),
        }
        return self._apply_edit(message, changes, markup)

    def _edit_message_reply_markup(self, call: ApiCall) -> dict[str, Any] | bool:
        markup = call.params.get("reply_markup")
        _check_reply_markup(markup)
        if markup is not None and not _is_inline_markup(markup):
            raise _ApiError(400, "Bad Request: inline keyboard expected")
        message = self._edit_target(call)
        if message is None:
            return True
        return self._apply_edit(message, {}, markup)

    def _delete_message(self, call: ApiCall) -> bool:
        chat_id = _require_chat_id(call.params)
        key: tuple[int, Any] = (chat_id, call.params.get("message_id"))
        self._check_blocked(chat_id)
        if key not in self._messages:
            raise _ApiError(400, "Bad Request: message to delete not found")
        del self._messages[key]
        return True

    def _delete_messages(self, call: ApiCall) -> bool:
        chat_id = _require_chat_id(call.params)
        ids = call.params.get("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise _ApiError(400, "Bad Request: message_ids must be a non-empty list")
        self._check_blocked(chat_id)
        found = [i for i in ids if (chat_id, i) in self._messages]
        if not found:
            raise _ApiError(400, "Bad Request: message to delete not found")
        for message_id in found:
            del self._messages[(chat_id, message_id)]
        return True

    def _answer_callback_query(self, call: ApiCall) -> bool:
        query_id = call.params.get("callback_query_id")
        text = call.params.get("text")
        if isinstance(text, str) and len(text) > 200:
            raise _ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        if not isinstance(query_id, str) or query_id not in self._open_queries:
            raise _ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        self._open_queries.discard(query_id)
        return True

    def _send_chat_action(self, call: ApiCall) -> bool:
        chat_id = _require_chat_id(call.params)
        if call.params.get("action") not in _CHAT_ACTIONS:
            raise _ApiError(400, "Bad Request: wrong parameter action in request")
        self._check_blocked(chat_id)
        return True

    def _get_chat(self, call: ApiCall) -> dict[str, Any]:
        chat_id = _require_chat_id(call.params)
        if chat_id not in self._chats and chat_id not in self._users:
            raise _ApiError(400, "Bad Request: chat not found")
        return {
            **self._chat(chat_id),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _get_file(self, call: ApiCall) -> dict[str, Any]:
        file_id = call.params.get("file_id")
        info = self._files.get(file_id) if isinstance(file_id, str) else None
        if info is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        return {k: v for k, v in info.items() if k != "content"}


# ---------------------------------------------------------------------- request decoding


async def _read_request(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    params: dict[str, Any] = dict(request.query)
    files: dict[str, bytes] = {}
    if request.method not in ("POST", "PUT") or not request.can_read_body:
        return params, files
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError as error:
            raise _ApiError(400, "Bad Request: can't parse JSON encoded request") from error
        if not isinstance(body, dict):
            raise _ApiError(400, "Bad Request: JSON object expected")
        params.update(body)
        return params, files
    if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = value.file.read()
            else:
                params[key] = value
    return params, files


def _decode_params(
    method: str, raw: dict[str, Any], raw_files: dict[str, bytes]
) -> tuple[dict[str, Any], dict[str, bytes]]:
    string_fields = _string_fields(method)
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str) and key not in string_fields:
            try:
                value = json.loads(value)
            except ValueError:
                pass
        params[key] = value
    files: dict[str, bytes] = {}
    remaining = dict(raw_files)
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("attach://"):
            name = value.removeprefix("attach://")
            if name in remaining:
                files[key] = remaining.pop(name)
    files.update(remaining)
    return params, files


def _flatten_annotation(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _flatten_annotation(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [t for arg in typing.get_args(annotation) for t in _flatten_annotation(arg)]
    return [annotation]


@functools.cache
def _aiogram_methods() -> dict[str, type]:
    try:
        from aiogram import methods
    except ImportError:  # pragma: no cover - the fake also works without aiogram
        return {}
    found: dict[str, type] = {}
    for name in dir(methods):
        obj = getattr(methods, name)
        api_name = getattr(obj, "__api_method__", None)
        if isinstance(obj, type) and isinstance(api_name, str):
            found[api_name] = obj
    return found


@functools.cache
def _string_fields(method: str) -> frozenset[str]:
    """Parameters of ``method`` that are strings on the wire and must not be JSON-decoded."""
    cls = _aiogram_methods().get(method)
    if cls is None:
        return _FALLBACK_STRING_FIELDS
    from aiogram.client.default import Default
    from aiogram.types import InputFile

    fields: set[str] = set()
    for name, info in cls.model_fields.items():  # type: ignore[attr-defined]
        kinds = [t for t in _flatten_annotation(info.annotation) if t is not type(None)]
        if str in kinds and all(
            t is str or (isinstance(t, type) and issubclass(t, Default | InputFile)) for t in kinds
        ):
            fields.add(info.alias or name)
    return frozenset(fields)


def _int_param(params: dict[str, Any], key: str, default: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _ApiError(400, f"Bad Request: wrong parameter {key}")
    return value


def _require_chat_id(params: dict[str, Any]) -> int:
    chat_id = params.get("chat_id")
    if chat_id is None or chat_id == "":
        raise _ApiError(400, "Bad Request: chat_id is empty")
    if isinstance(chat_id, bool) or not isinstance(chat_id, int):
        raise _ApiError(400, "Bad Request: chat not found")
    return chat_id


def _json_response(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body, ensure_ascii=False), content_type="application/json"
    )


def _scope_key(scope: Any, language_code: str) -> tuple[str, str]:
    if not scope:
        scope = {"type": "default"}
    return json.dumps(scope, sort_keys=True), language_code


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------- markup


def _is_bot_message(message: dict[str, Any]) -> bool:
    return bool(message.get("from", {}).get("is_bot"))


def _is_inline_markup(markup: Any) -> bool:
    return isinstance(markup, dict) and "inline_keyboard" in markup


def _inline_buttons(markup: Any) -> list[dict[str, Any]]:
    if not _is_inline_markup(markup) or not isinstance(markup["inline_keyboard"], list):
        return []
    return [
        button
        for row in markup["inline_keyboard"]
        if isinstance(row, list)
        for button in row
        if isinstance(button, dict)
    ]


_INLINE_ACTIONS = frozenset(
    {
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)


def _rows(markup: dict[str, Any], key: str, kind: str) -> Iterable[Any]:
    rows = markup[key]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _ApiError(400, f'Bad Request: field "{key}" of the {kind} must be an Array of Arrays')
    return (button for row in rows for button in row)


def _check_reply_markup(markup: Any) -> None:
    if markup is None:
        return
    if not isinstance(markup, dict):
        raise _ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        for button in _rows(markup, "inline_keyboard", "InlineKeyboardMarkup"):
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise _ApiError(
                    400,
                    "Bad Request: can't parse inline keyboard button: "
                    'Field "text" must be of type String',
                )
            if not _INLINE_ACTIONS.intersection(button):
                raise _ApiError(
                    400, "Bad Request: text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and (
                not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64
            ):
                raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    elif "keyboard" in markup:
        for button in _rows(markup, "keyboard", "ReplyKeyboardMarkup"):
            text = button if isinstance(button, str) else None
            if isinstance(button, dict):
                text = button.get("text")
            if not isinstance(text, str):
                raise _ApiError(
                    400,
                    'Bad Request: can\'t parse keyboard button: Field "text" must be of type '
                    "String",
                )
    elif not ({"remove_keyboard", "force_reply"} & markup.keys()):
        raise _ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")


# ---------------------------------------------------------------------- entity parsing


def _u16len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _format(text: str, parse_mode: Any, explicit_entities: Any) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities the way Telegram stores ``text`` sent with ``parse_mode``."""
    if explicit_entities:
        if not isinstance(explicit_entities, list):
            raise _ApiError(400, "Bad Request: can't parse entities JSON object")
        return text, copy.deepcopy(explicit_entities)
    if not parse_mode:
        return text, []
    mode = str(parse_mode).lower()
    parser = {"html": _parse_html, "markdownv2": _parse_markdown_v2, "markdown": _parse_markdown}
    if mode not in parser:
        raise _ApiError(400, "Bad Request: unsupported parse_mode")
    try:
        return parser[mode](text)
    except _ParseError as error:
        raise _ApiError(400, f"Bad Request: can't parse entities: {error}") from error


class _Out:
    """Accumulates plain text with its UTF-16 length (entity offsets are UTF-16)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.u16 = 0
        self.entities: list[dict[str, Any]] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.u16 += _u16len(text)

    def text(self) -> str:
        return "".join(self.parts)

    def entity(self, kind: str, start: int, **extra: Any) -> None:
        if self.u16 > start:
            self.entities.append(
                {"type": kind, "offset": start, "length": self.u16 - start, **extra}
            )

    def result(self) -> tuple[str, list[dict[str, Any]]]:
        for entity in self.entities:
            if entity["type"] != "pre" or not entity.get("language"):
                entity.pop("language", None)
        return self.text(), sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))


_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "tg-time",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_HTML_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "u": "underline",
    "ins": "underline",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
_HTML_ENTITY = re.compile(r"&(?:#[xX]([0-9a-fA-F]{1,8})|#([0-9]{1,10})|([a-zA-Z]+));")
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _is_space(char: str) -> bool:
    return char in " \t\r\n\v\f"


def _html_entity(text: str, index: int) -> tuple[str, int] | None:
    match = _HTML_ENTITY.match(text, index)
    if not match:
        return None
    hex_code, dec_code, name = match.groups()
    if name is not None:
        char = _HTML_NAMED.get(name)
        return (char, match.end()) if char else None
    code = int(hex_code, 16) if hex_code is not None else int(dec_code)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), match.end()


_MARKUP = re.compile("[<&]")


def _parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Out()
    stack: list[tuple[str, dict[str, str], int]] = []
    n = len(text)
    i = 0
    while i < n:
        char = text[i]
        if char == "&":
            decoded = _html_entity(text, i)
            if decoded:
                out.add(decoded[0])
                i = decoded[1]
            else:
                out.add("&")
                i += 1
            continue
        if char != "<":
            # A run of plain text at once: per character, long messages cost the fake more
            # than the bot under test (bench/update_rate_bench.py runs it in-process).
            run_end = _MARKUP.search(text, i)
            stop = run_end.start() if run_end else n
            out.add(text[i:stop])
            i = stop
            continue
        begin = i
        if i + 1 < n and text[i + 1] == "/":
            i += 2
            while i < n and not _is_space(text[i]) and text[i] != ">":
                i += 1
            end_name = text[begin + 2 : i].lower()
            while i < n and _is_space(text[i]):
                i += 1
            if i >= n or text[i] != ">":
                raise _ParseError(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
            if not stack:
                raise _ParseError(f"Unexpected end tag at byte offset {_byte_offset(text, begin)}")
            name, attrs, start = stack.pop()
            if end_name and end_name != name:
                raise _ParseError(
                    f"Unmatched end tag at byte offset {_byte_offset(text, begin)}, "
                    f'expected "</{name}>", found "</{end_name}>"'
                )
            _html_entity_for(out, name, attrs, start)
            i += 1
            continue
        i += 1
        while i < n and not _is_space(text[i]) and text[i] != ">":
            i += 1
        if i >= n:
            raise _ParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        name = text[begin + 1 : i].lower()
        if name not in _HTML_TAGS:
            raise _ParseError(
                f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, begin)}'
            )
        attrs, i = _html_attributes(text, i, name, begin)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise _ParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset '
                f"{_byte_offset(text, begin)}"
            )
        stack.append((name, attrs, out.u16))
        i += 1
    if stack:
        raise _ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.result()


def _html_attributes(text: str, i: int, tag: str, begin: int) -> tuple[dict[str, str], int]:
    n = len(text)
    attrs: dict[str, str] = {}

    def unclosed() -> _ParseError:
        return _ParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")

    while True:
        while i < n and _is_space(text[i]):
            i += 1
        if i >= n:
            raise unclosed()
        if text[i] == ">":
            return attrs, i
        attr_begin = i
        while i < n and not _is_space(text[i]) and text[i] not in "=>":
            i += 1
        if i >= n:
            raise unclosed()
        attr_name = text[attr_begin:i].lower()
        if not attr_name:
            raise _ParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset '
                f"{_byte_offset(text, begin)}"
            )
        while i < n and _is_space(text[i]):
            i += 1
        if i >= n:
            raise unclosed()
        if text[i] != "=":
            if tag == "blockquote" and attr_name == "expandable":
                attrs[attr_name] = ""
                continue
            raise _ParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                f"at byte offset {_byte_offset(text, begin)}"
            )
        i += 1
        while i < n and _is_space(text[i]):
            i += 1
        if i >= n:
            raise unclosed()
        if text[i] not in "'\"":
            token_begin = i
            while i < n and ((text[i].isascii() and text[i].isalnum()) or text[i] in ".-"):
                i += 1
            value = text[token_begin:i].lower()
            if i >= n:
                raise unclosed()
            if not _is_space(text[i]) and text[i] != ">":
                raise _ParseError(
                    f"Unexpected end of name token at byte offset {_byte_offset(text, token_begin)}"
                )
        else:
            quote = text[i]
            i += 1
            chars: list[str] = []
            while i < n and text[i] != quote:
                decoded = _html_entity(text, i) if text[i] == "&" else None
                if decoded:
                    chars.append(decoded[0])
                    i = decoded[1]
                else:
                    chars.append(text[i])
                    i += 1
            if i >= n:
                raise unclosed()
            i += 1
            value = "".join(chars)
        attrs[attr_name] = value


def _html_entity_for(out: _Out, tag: str, attrs: dict[str, str], start: int) -> None:
    if tag == "a":
        url = attrs.get("href", "")
        if url.startswith("tg://user?id="):
            user_id = url.removeprefix("tg://user?id=")
            if user_id.isdigit():
                out.entity(
                    "text_mention",
                    start,
                    user={"id": int(user_id), "is_bot": False, "first_name": ""},
                )
                return
        if url:
            out.entity("text_link", start, url=url)
        return
    if tag == "tg-emoji":
        emoji_id = attrs.get("emoji-id", "")
        if emoji_id:
            out.entity("custom_emoji", start, custom_emoji_id=emoji_id)
        return
    if tag == "tg-time":
        return
    if tag == "blockquote" and "expandable" in attrs:
        out.entity("expandable_blockquote", start)
        return
    css_class = attrs.get("class", "") if tag in ("pre", "code") else ""
    language = css_class.removeprefix("language-") if css_class.startswith("language-") else ""
    if tag == "pre" and out.entities:
        last = out.entities[-1]
        if last["type"] == "code" and last["offset"] == start and out.u16 - start == last["length"]:
            # <pre><code class="language-x">...</code></pre> is one pre entity with a language
            out.entities.pop()
            language = last.get("language", "") or language
    if language:
        out.entity(_HTML_ENTITY_TYPES[tag], start, language=language)
    else:
        out.entity(_HTML_ENTITY_TYPES[tag], start)


_MDV2_RESERVED = "_*[]()~`>#+-=|{}.!"
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def _reserved(char: str) -> _ParseError:
    return _ParseError(
        f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
    )


def _mdv2_url(text: str, i: int) -> tuple[str, int]:
    """Read ``(url)`` starting at ``text[i] == '('``; returns the url and the index of ')'."""
    n = len(text)
    i += 1
    begin = i
    chars: list[str] = []
    while i < n and text[i] != ")":
        if text[i] == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
            chars.append(text[i + 1])
            i += 2
            continue
        chars.append(text[i])
        i += 1
    if i >= n:
        raise _ParseError(f"Can't find end of a URL at byte offset {_byte_offset(text, begin)}")
    return "".join(chars), i


def _parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Out()
    # (type, argument, utf16 start, index of the opening marker, len(out.parts) at start)
    stack: list[tuple[str, str, int, int, int]] = []
    n = len(text)
    i = 0

    def at(k: int) -> str:
        return text[k] if k < n else ""

    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
            out.add(text[i + 1])
            i += 2
            continue
        in_code = bool(stack) and stack[-1][0] in ("code", "pre")
        if char not in ("`" if in_code else _MDV2_RESERVED):
            out.add(char)
            i += 1
            continue
        line_start = i == 0 or text[i - 1] == "\n"
        if not in_code and line_start and char == ">":
            i += 1  # blockquote marker
            continue
        if not in_code and line_start and text.startswith("**>", i):
            i += 3  # expandable blockquote marker
            continue
        top = stack[-1][0] if stack else None
        is_end = (
            (top == "bold" and char == "*")
            or (top == "italic" and char == "_" and at(i + 1) != "_")
            or (top == "code" and char == "`")
            or (top == "pre" and text.startswith("```", i))
            or (top in ("text_link", "custom_emoji") and char == "]")
            or (top == "underline" and text.startswith("__", i))
            or (top == "strikethrough" and char == "~")
            or (top == "spoiler" and text.startswith("||", i))
        )
        if not is_end:
            begin = i
            argument = ""
            if char == "_":
                if at(i + 1) == "_":
                    kind = "underline"
                    i += 1
                else:
                    kind = "italic"
            elif char == "*":
                kind = "bold"
            elif char == "~":
                kind = "strikethrough"
            elif char == "|":
                if at(i + 1) != "|":
                    raise _reserved(char)
                kind = "spoiler"
                i += 1
            elif char == "[":
                kind = "text_link"
            elif char == "`":
                if text.startswith("```", i):
                    kind = "pre"
                    i += 3
                    end = i
                    while end < n and not _is_space(text[end]) and text[end] != "`":
                        end += 1
                    if i != end and end < n and text[end] != "`":
                        argument = text[i:end]
                        i = end
                    if at(i) in ("\n", "\r") and at(i):
                        if at(i + 1) in ("\n", "\r") and at(i + 1) and text[i] != text[i + 1]:
                            i += 2
                        else:
                            i += 1
                    i -= 1
                else:
                    kind = "code"
            elif char == "!":
                if at(i + 1) != "[":
                    raise _reserved(char)
                kind = "custom_emoji"
                i += 1
            else:
                raise _reserved(char)
            stack.append((kind, argument, out.u16, begin, len(out.parts)))
            i += 1
            continue
        kind, argument, start, _begin, parts_at = stack.pop()
        extra: dict[str, Any] = {}
        if kind in ("underline", "spoiler"):
            i += 1
        elif kind == "pre":
            i += 2
            if argument:
                extra["language"] = argument
        elif kind == "text_link":
            if at(i + 1) == "(":
                url, i = _mdv2_url(text, i + 1)
            else:
                url = "".join(out.parts[parts_at:])
            extra["url"] = url
        elif kind == "custom_emoji":
            if at(i + 1) != "(":
                raise _ParseError("Custom emoji entity must contain a tg://emoji URL")
            url, i = _mdv2_url(text, i + 1)
            extra["custom_emoji_id"] = url.rsplit("id=", 1)[-1]
        out.entity(kind, start, **extra)
        i += 1
    if stack:
        kind, _argument, _start, begin, _parts_at = stack[-1]
        name = "PreCode" if kind == "pre" and _argument else _MDV2_NAMES[kind]
        raise _ParseError(
            f"Can't find end of {name} entity at byte offset {_byte_offset(text, begin)}"
        )
    return out.result()


def _parse_markdown(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Legacy ``Markdown`` parse mode."""
    out = _Out()
    n = len(text)
    i = 0
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.add(text[i + 1])
            i += 2
            continue
        if char not in "_*`[":
            out.add(char)
            i += 1
            continue
        begin = i
        end_char = "]" if char == "[" else char
        i += 1
        is_pre = False
        language = ""
        if char == "`" and text.startswith("``", i):
            i += 2
            is_pre = True
            end = i
            while end < n and not _is_space(text[end]) and text[end] != "`":
                end += 1
            if i != end and end < n and text[end] != "`":
                language = text[i:end]
                i = end
            if i < n and text[i] in "\r\n":
                i += 1
        start = out.u16
        parts_at = len(out.parts)
        while i < n and (text[i] != end_char or (is_pre and not text.startswith("```", i))):
            out.add(text[i])
            i += 1
        if i >= n:
            raise _ParseError(
                f"Can't find end of the entity starting at byte offset {_byte_offset(text, begin)}"
            )
        i += 3 if is_pre else 1
        if char == "[":
            url = "".join(out.parts[parts_at:])
            if i < n and text[i] == "(":
                close = text.find(")", i)
                if close != -1:
                    url = text[i + 1 : close]
                    i = close + 1
            out.entity("text_link", start, url=url)
        elif is_pre:
            out.entity("pre", start, **({"language": language} if language else {}))
        else:
            out.entity({"_": "italic", "*": "bold", "`": "code"}[char], start)
    return out.result()


_FAKE_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00FAKE\xff\xd9"
