"""Spaces' own words about an error: which field the site reads for which code, and how they
are cleaned before anyone reads them."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from bot.spaces import CaptchaRequired, SpacesAPIError, SpacesClient
from bot.spaces.errors import SERVER_TEXT_MAX_CHARS, clean_server_text
from tests.spaces.test_client import (
    BASE,
    CAPTCHA_URL,
    LOGIN,
    PASSWORD,
    RID,
    Recorder,
    answer,
    json_response,
)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(recorder: Recorder) -> SpacesClient:
    return SpacesClient(httpx.MockTransport(recorder), BASE, rid=RID, timeout=3.5)


async def error_of(
    client: SpacesClient, recorder: Recorder, body: dict[str, Any]
) -> SpacesAPIError:
    recorder.reply = lambda request: json_response(body)
    with pytest.raises(SpacesAPIError) as caught:
        await client.login(LOGIN, PASSWORD)
    return caught.value


@pytest.mark.parametrize(
    ("code", "fields", "expected"),
    [
        # `error` is read for any code, before anything else.
        ("01003", {"error": "Wrong password, 2 tries left"}, "Wrong password, 2 tries left"),
        ("00032", {"error": "from error", "message": "from message"}, "from error"),
        # `message` only for the codes the site reads it for.
        ("00006", {"message": "Database is resting"}, "Database is resting"),
        ("00028", {"message": "Not in WAP"}, "Not in WAP"),
        ("00032", {"message": "Karma of 50 needed"}, "Karma of 50 needed"),
        ("02002", {"message": "Too many links"}, "Too many links"),
        ("00025", {"message": "internal detail"}, None),
        # Deeper or other fields, as the site reads them.
        ("02009", {"can_write_error": {"message": "Friends only"}}, "Friends only"),
        ("02009", {"can_write_error": "Friends only"}, None),
        ("09006", {"errMsg": "Disk full"}, "Disk full"),
        # An empty or non-text `error` does not hide the message.
        ("00006", {"error": "  ", "message": "Database is resting"}, "Database is resting"),
        ("00006", {"error": 42, "message": "Database is resting"}, "Database is resting"),
        ("00006", {"error": {"text": "nested"}}, None),
        ("00006", {}, None),
        ("99999", {"error": "A code nobody knows"}, "A code nobody knows"),
    ],
)
async def test_which_words_the_error_carries(
    client: SpacesClient,
    recorder: Recorder,
    code: str,
    fields: dict[str, Any],
    expected: str | None,
) -> None:
    error = await error_of(client, recorder, answer(code, **fields))
    assert error.code == code
    assert error.server_text == expected


async def test_a_captcha_answer_carries_the_words_too(
    client: SpacesClient,
    recorder: Recorder,
) -> None:
    body = answer("00004", captcha_url=CAPTCHA_URL, error="Wrong code")
    error = await error_of(client, recorder, body)
    assert isinstance(error, CaptchaRequired) and error.server_text == "Wrong code"


async def test_the_words_stay_out_of_messages_and_logs(
    client: SpacesClient,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    error = await error_of(client, recorder, answer("01003", error="Ivan Petrov, +7 900"))
    assert error.server_text == "Ivan Petrov, +7 900"
    assert "Petrov" not in str(error) and "Petrov" not in repr(error)
    assert "Petrov" not in caplog.text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Plain words.", "Plain words."),
        ("  two\n\tlines \r\n here  ", "two lines here"),
        ("&laquo;Quoted&raquo; &amp; &lt;b&gt;", "«Quoted» & <b>"),
        ("<b>tags stay text</b>", "<b>tags stay text</b>"),
        ("nul\x00 esc\x1b bell\x07 del\x7f", "nul esc bell del"),
        ("bidi\u202eevil\u202c zero\u200bwidth", "bidievil zerowidth"),
        ("private\ue000use", "privateuse"),
        ("", None),
        (" \n\x00 ", None),
        (None, None),
        (42, None),
        (["a list"], None),
    ],
)
def test_cleaning(raw: object, expected: str | None) -> None:
    assert clean_server_text(raw) == expected


def test_a_long_text_is_cut_with_an_ellipsis() -> None:
    cleaned = clean_server_text("word " * 10_000)
    assert cleaned is not None
    assert len(cleaned) <= SERVER_TEXT_MAX_CHARS
    assert cleaned.endswith("\u2026") and cleaned.startswith("word word")
    exact = "y" * SERVER_TEXT_MAX_CHARS
    assert clean_server_text(exact) == exact


def test_an_error_built_by_hand_is_cleaned_too() -> None:
    error = SpacesAPIError("00006", server_text="a\x00b\n\nc")
    assert error.server_text == "ab c"
    assert SpacesAPIError("00006").server_text is None
