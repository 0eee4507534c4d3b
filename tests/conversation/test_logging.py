"""Nothing secret reaches a log line: token, SID, CK, cookies, passwords."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from aiogram.exceptions import TelegramAPIError

from bot.logging_setup import Redactor, setup_logging
from tests.conftest import only_session
from tests.conversation.conftest import CHAT, Harness


@pytest.fixture
def log_stream(h: Harness) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging("DEBUG", "text", [h.tg.token], stream=stream)
    for noisy in ("httpx", "httpcore", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.DEBUG)  # the worst case: everything on
    try:
        yield stream
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


async def test_login_and_a_failing_telegram_call_leak_nothing(
    h: Harness, log_stream: io.StringIO
) -> None:
    await h.say("/login")
    await h.say("alice")
    await h.say("secret123")
    session = await only_session(h.store, CHAT)
    assert session is not None
    await h.say("/status")
    h.tg.fail_next("sendMessage", error_code=400, description="Bad Request: chat not found")
    with pytest.raises(TelegramAPIError) as failure:
        await h.bot.send_message(CHAT, "x")
    logging.getLogger("test").error("telegram failed", exc_info=failure.value)
    # aiogram's own errors can carry the request URL, token included
    logging.getLogger("test").error("request to %s/bot%s/getMe failed", h.tg.url, h.tg.token)
    output = log_stream.getvalue()
    assert "HTTP Request" in output or "chat" in output  # the log did get lines
    for secret in (
        h.tg.token,
        session.secrets["sid"],
        "secret123",
        f"sid={session.secrets['sid']}",
    ):
        assert secret not in output
    ck = session.secrets["ck"]
    assert f"CK={ck}" not in output and f'"CK": "{ck}"' not in output


def test_redactor_patterns() -> None:
    redact = Redactor(["123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghi"])
    line = (
        "POST /bot123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghi/getMe"
        " cookie: json=1; sid=6693985458435384"
        ' {"sid": "6693985458435384", "CK": "5384", "password": "hunter22"}'
        " mysite?sid=1234567890123456&CK=3456"
    )
    out = redact(line)
    for secret in (
        "ABCDEFGHIJKLMNOP",
        "6693985458435384",
        "5384",
        "hunter22",
        "1234567890123456",
        "3456",
    ):
        assert secret not in out, secret


def test_json_format_is_one_object_per_line() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging(
            "INFO", "json", ["999999:SECRETSECRETSECRETSECRETSECRETSECRET"], stream=stream
        )
        logging.getLogger("x").info("hello %s", "world")
        logging.getLogger("x").warning(
            "token 999999:SECRETSECRETSECRETSECRETSECRETSECRET\nsecond line"
        )
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "hello world" and first["level"] == "INFO"
    assert "SECRET" not in second["message"]
