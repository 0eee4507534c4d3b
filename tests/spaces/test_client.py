"""SpacesClient against answers recorded in the API doc, through httpx.MockTransport."""

from __future__ import annotations

import copy
import email.parser
import email.policy
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bot.spaces import (
    Account,
    CaptchaRequired,
    Counters,
    SpacesAPIError,
    SpacesClient,
    SpacesUnavailable,
)

BASE = "https://spcs.me"
RID = "test-rid"
SID = "6693985458435384"
CK = "5384"
PASSWORD = "hunter2-secret"
LOGIN = "AnomaIy"

ENVELOPE: dict[str, Any] = {
    "css_files": [],
    "time": 1539255488,
    "config": {
        "large_display_min_width": 480,
        "thumbs": {"baseurl": "http://tsx.spaces.ru/"},
        "TOUCH_INTERFACE_SCREEN_WIDTH": 320,
        "icons": {"baseurl": "https://spac.me/i/"},
    },
    "t": 0.236968040466309,
    "code": "00000",
}
# The doc's login/check answer, verbatim.
LOGIN_OK: dict[str, Any] = {
    **ENVELOPE,
    "attributes": {
        "channel_id": "2704a220cb801792d410b05d37ce6c37",
        "sid": SID,
        "isAutoreg": 0,
        "avatar": "https://ts01.spac.me/tpic/5a349533ff6e12b04bd8d60c1d1c5df3/109940268.p.41.40.0.20020970.jpg?1450357123",
        "name": "AnomaIy",
        "CK": CK,
        "nid": 22003524,
        "mysite_link": f"https://spcs.me/mysite/?name=AnomaIy&amp;sid={SID}",
        "online_status": {
            "system": 0,
            "alt": "(ON)",
            "last_time": 1539255488,
            "off_img": "man_off.gif",
            "is_online": 1,
            "no_link": 1,
            "on_img": "man_on.gif",
            "id": "22003524",
        },
        "mailTbNm": 0,
    },
}
OAUTH_OK: dict[str, Any] = {
    **ENVELOPE,
    "urls": {
        "ok_login_URL": "https://spcs.me/oauth/?CK=4434&amp;P=2&amp;redirect_uri=registration/external/&amp;sid=0837524164004434&amp;state=CK:4434,Link_id:0,S:2,sid:0837524164004434,permissions_granted:VALUABLE_ACCESS;GET_EMAIL",
        "vk_login_URL": "https://spcs.me/oauth/?CK=4434&amp;P=1&amp;redirect_uri=registration/external/&amp;sid=0837524164004434&amp;state=CK:4434,Link_id:0,S:1,sid:0837524164004434",
        "facebook_login_URL": "https://spcs.me/oauth/?CK=4434&amp;P=4&amp;redirect_uri=registration/external/&amp;sid=0837524164004434&amp;state=CK:4434,Link_id:0,S:4,sid:0837524164004434",
        "mail_ru_login_URL": "https://spcs.me/oauth/?CK=4434&amp;P=3&amp;redirect_uri=registration/external/&amp;sid=0837524164004434&amp;state=CK:4434,Link_id:0,S:3,sid:0837524164004434",
    },
}
CAPTCHA_URL = "https://spcs.me/captcha/123456789.png?1539255488"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32

Handler = Callable[[httpx.Request], httpx.Response]


def answer(code: object = "00000", **fields: Any) -> dict[str, Any]:
    return {**copy.deepcopy(ENVELOPE), **fields, "code": code}


def json_response(body: object, status: int = 200, **kwargs: Any) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), **kwargs)


class Recorder:
    """A MockTransport handler that remembers every request it was given."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.reply: Handler = lambda request: json_response(LOGIN_OK)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.reply(request)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(recorder: Recorder) -> SpacesClient:
    return SpacesClient(
        httpx.MockTransport(recorder),
        BASE + "/",
        rid=RID,
        timeout=3.5,
        captcha_max_bytes=4096,
        user_agent="spaces-bridge-bot/test",
    )


def form_fields(request: httpx.Request) -> dict[str, str]:
    """Decode a multipart/form-data body, asserting every part is a plain field."""
    content_type = request.headers["Content-Type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.content
    )
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        disposition = part.get("Content-Disposition", "")
        assert "filename" not in disposition, disposition
        name = part.get_param("name", header="content-disposition")
        assert isinstance(name, str)
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        fields[name] = payload.decode()
    return fields


# -- login and check ---------------------------------------------------------------------


async def test_login_parses_every_account_field(client: SpacesClient) -> None:
    account = await client.login(LOGIN, PASSWORD)
    assert account == Account(
        sid=SID,
        ck=CK,
        user_id=22003524,
        nickname="AnomaIy",
        is_online=True,
        last_seen_at=datetime(2018, 10, 11, 10, 58, 8, tzinfo=UTC),
        channel_id="2704a220cb801792d410b05d37ce6c37",
        avatar_url=LOGIN_OK["attributes"]["avatar"],
        profile_url="https://spcs.me/mysite/?name=AnomaIy",
    )
    assert account.last_seen_at is not None and account.last_seen_at.utcoffset() is not None


async def test_login_request_is_multipart_with_headers_cookie_and_fields(
    client: SpacesClient, recorder: Recorder
) -> None:
    await client.login(LOGIN, PASSWORD)
    [request] = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == "https://spcs.me/neoapi/session"
    assert request.headers["X-Proxy"] == "spaces"
    assert request.headers["Cookie"] == "json=1"
    assert request.headers["User-Agent"] == "spaces-bridge-bot/test"
    assert request.headers["Host"] == "spcs.me"
    assert request.headers["Content-Length"] == str(len(request.content))
    assert form_fields(request) == {
        "method": "login",
        "login": LOGIN,
        "password": PASSWORD,
        "rid": RID,
    }
    assert request.extensions["timeout"]["read"] == 3.5


async def test_login_with_captcha_answer_sends_code(
    client: SpacesClient, recorder: Recorder
) -> None:
    await client.login(LOGIN, PASSWORD, captcha_code="4821")
    assert form_fields(recorder.requests[0])["code"] == "4821"


async def test_check_sends_sid_cookie_and_parses(client: SpacesClient, recorder: Recorder) -> None:
    account = await client.check(SID)
    [request] = recorder.requests
    assert str(request.url) == "https://spcs.me/neoapi/session"
    assert request.headers["Cookie"] == f"json=1; sid={SID}"
    assert form_fields(request) == {"method": "check", "rid": RID}
    assert account.sid == SID and account.user_id == 22003524


async def test_check_without_sid_in_attributes_keeps_the_given_one(
    client: SpacesClient, recorder: Recorder
) -> None:
    body = copy.deepcopy(LOGIN_OK)
    del body["attributes"]["sid"]
    recorder.reply = lambda request: json_response(body)
    account = await client.check("1111222233334444")
    assert account.sid == "1111222233334444"


async def test_liberal_types_nid_string_code_int_ck_missing(
    client: SpacesClient, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    body = copy.deepcopy(LOGIN_OK)
    body["code"] = 0
    body["attributes"]["nid"] = "22003524"
    del body["attributes"]["CK"]
    del body["attributes"]["online_status"]
    recorder.reply = lambda request: json_response(body)
    with caplog.at_level(logging.WARNING, logger="bot.spaces"):
        account = await client.check(SID)
    assert account.user_id == 22003524
    assert account.ck == ""
    assert account.is_online is None and account.last_seen_at is None
    assert any("CK" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("missing", ["sid", "name", "nid"])
async def test_login_without_required_attribute_is_bad_answer(
    client: SpacesClient, recorder: Recorder, missing: str
) -> None:
    body = copy.deepcopy(LOGIN_OK)
    del body["attributes"][missing]
    recorder.reply = lambda request: json_response(body)
    with pytest.raises(SpacesUnavailable) as caught:
        await client.login(LOGIN, PASSWORD)
    assert caught.value.reason == "bad_answer"


async def test_success_without_attributes_is_bad_answer(
    client: SpacesClient, recorder: Recorder
) -> None:
    recorder.reply = lambda request: json_response(answer())
    with pytest.raises(SpacesUnavailable) as caught:
        await client.check(SID)
    assert caught.value.reason == "bad_answer"


def test_account_repr_hides_secrets() -> None:
    account = Account(
        sid=SID,
        ck=CK,
        user_id=1,
        nickname="n",
        is_online=None,
        last_seen_at=None,
        channel_id=None,
        avatar_url=None,
        profile_url=None,
    )
    assert SID not in repr(account) and CK not in repr(account)


# -- codes -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["01001", "01004", "01005", 1001])
async def test_session_gone_codes(client: SpacesClient, recorder: Recorder, code: object) -> None:
    recorder.reply = lambda request: json_response(answer(code))
    with pytest.raises(SpacesAPIError) as caught:
        await client.check(SID)
    assert caught.value.is_session_gone
    assert not caught.value.is_rate_limited
    assert type(caught.value) is SpacesAPIError


async def test_api_error_code_and_name(client: SpacesClient, recorder: Recorder) -> None:
    recorder.reply = lambda request: json_response(answer("01003"))
    with pytest.raises(SpacesAPIError) as caught:
        await client.login(LOGIN, PASSWORD)
    assert caught.value.code == "01003"
    assert caught.value.name == "ERR_WRONG_LOGIN_OR_PASSWORD"
    assert not caught.value.is_session_gone


async def test_rate_limited(client: SpacesClient, recorder: Recorder) -> None:
    recorder.reply = lambda request: json_response(answer(7))
    with pytest.raises(SpacesAPIError) as caught:
        await client.check(SID)
    assert caught.value.code == "00007" and caught.value.is_rate_limited


async def test_need_captcha(client: SpacesClient, recorder: Recorder) -> None:
    recorder.reply = lambda request: json_response(answer("00001", captcha_url=CAPTCHA_URL))
    with pytest.raises(CaptchaRequired) as caught:
        await client.login(LOGIN, PASSWORD)
    assert caught.value.captcha_url == CAPTCHA_URL
    assert caught.value.code == "00001" and not caught.value.wrong_answer


async def test_wrong_captcha_answer(client: SpacesClient, recorder: Recorder) -> None:
    escaped = CAPTCHA_URL.replace("?", "?a=1&amp;")
    recorder.reply = lambda request: json_response(answer(4, captcha_url=escaped))
    with pytest.raises(CaptchaRequired) as caught:
        await client.login(LOGIN, PASSWORD, captcha_code="0000")
    assert caught.value.wrong_answer
    assert caught.value.captcha_url == CAPTCHA_URL.replace("?", "?a=1&")


async def test_relative_captcha_url_is_made_absolute(
    client: SpacesClient, recorder: Recorder
) -> None:
    recorder.reply = lambda request: json_response(answer("00001", captcha_url="/captcha/7.png"))
    with pytest.raises(CaptchaRequired) as caught:
        await client.login(LOGIN, PASSWORD)
    assert caught.value.captcha_url == "https://spcs.me/captcha/7.png"


@pytest.mark.parametrize("code", ["00001", "00004"])
async def test_captcha_code_without_url_is_plain_api_error(
    client: SpacesClient, recorder: Recorder, code: str
) -> None:
    recorder.reply = lambda request: json_response(answer(code))
    with pytest.raises(SpacesAPIError) as caught:
        await client.login(LOGIN, PASSWORD)
    assert type(caught.value) is SpacesAPIError
    assert caught.value.code == code


# -- transport failures ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "reason", "status"),
    [
        (httpx.Response(200, html="<html><body>Spaces</body></html>"), "not_json", 200),
        (httpx.Response(200, content=b'{"code":'), "not_json", 200),
        (httpx.Response(200, content=b"\xff\xfe\x00garbage"), "not_json", 200),
        (httpx.Response(500, json=answer("00000")), "http_status", 500),
        (httpx.Response(404, html="<html/>"), "http_status", 404),
        (httpx.Response(302, headers={"Location": "https://evil.invalid/"}), "http_status", 302),
        (httpx.Response(200, json=["00000"]), "bad_answer", 200),
        (httpx.Response(200, json={"attributes": {}}), "bad_answer", 200),
        (httpx.Response(200, json=answer("ok")), "bad_answer", 200),
        (httpx.Response(200, json=answer(None)), "bad_answer", 200),
    ],
)
async def test_unusable_answers(
    client: SpacesClient,
    recorder: Recorder,
    response: httpx.Response,
    reason: str,
    status: int,
) -> None:
    recorder.reply = lambda request: response
    with pytest.raises(SpacesUnavailable) as caught:
        await client.check(SID)
    assert caught.value.reason == reason
    assert caught.value.status == status
    assert len(recorder.requests) == 1  # no retries inside the client


class Endless(httpx.AsyncByteStream):
    """A body that never ends, `chunk` bytes at a time; `produced` counts what was read."""

    def __init__(self, chunk: int, fill: bytes = b" ") -> None:
        self.chunk = chunk
        self.fill = fill
        self.produced = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.produced += self.chunk
            yield self.fill * self.chunk


async def test_an_answer_over_a_megabyte_is_not_read_to_the_end(
    client: SpacesClient, recorder: Recorder
) -> None:
    endless = Endless(64 * 1024)
    recorder.reply = lambda request: httpx.Response(200, stream=endless)
    with pytest.raises(SpacesUnavailable) as caught:
        await client.check(SID)
    assert caught.value.reason == "bad_answer"
    assert 1024 * 1024 < endless.produced <= 1024 * 1024 + 64 * 1024


async def test_an_error_page_is_not_read(client: SpacesClient, recorder: Recorder) -> None:
    read: list[bytes] = []

    class Page(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            read.append(b"<html>")
            yield b"<html>"

    recorder.reply = lambda request: httpx.Response(502, stream=Page())
    with pytest.raises(SpacesUnavailable) as caught:
        await client.check(SID)
    assert (caught.value.reason, caught.value.status) == ("http_status", 502)
    assert read == []


async def test_multipart_boundary_never_occurs_in_a_value(
    client: SpacesClient, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    boundaries = iter(["b0undary", "fresh0ne"])
    monkeypatch.setattr("bot.spaces.client.secrets.token_hex", lambda n: next(boundaries))
    password = "pass--b0undary\r\nword"
    await client.login(LOGIN, password)
    [request] = recorder.requests
    assert request.headers["Content-Type"] == "multipart/form-data; boundary=fresh0ne"
    assert form_fields(request)["password"] == password


async def test_timeout(client: SpacesClient, recorder: Recorder) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    recorder.reply = reply
    with pytest.raises(SpacesUnavailable) as caught:
        await client.check(SID)
    assert caught.value.reason == "timeout" and caught.value.status is None


async def test_connection_refused_is_network() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncHTTPTransport() as transport:
        client = SpacesClient(transport, f"http://127.0.0.1:{port}", rid=RID, timeout=2)
        with pytest.raises(SpacesUnavailable) as caught:
            await client.check(SID)
    assert caught.value.reason == "network"


def test_error_messages_carry_no_secrets() -> None:
    errors = [
        SpacesUnavailable("http_status", 500, method="check"),
        SpacesAPIError("01001", method="check"),
        CaptchaRequired("00001", f"https://spcs.me/captcha/1.png?sid={SID}", method="login"),
    ]
    for error in errors:
        assert SID not in str(error) and SID not in repr(error)
    assert str(errors[1]) == "Spaces answered 01001 ERR_AUTH_REQUIRED to check"


# -- logout, oauth, counters -------------------------------------------------------------


async def test_logout(client: SpacesClient, recorder: Recorder) -> None:
    recorder.reply = lambda request: json_response(answer())
    await client.logout(SID)
    [request] = recorder.requests
    assert request.headers["Cookie"] == f"json=1; sid={SID}"
    assert form_fields(request) == {"method": "logout", "rid": RID}


async def test_logout_raises_like_other_methods(client: SpacesClient, recorder: Recorder) -> None:
    recorder.reply = lambda request: json_response(answer("01001"))
    with pytest.raises(SpacesAPIError):
        await client.logout(SID)


async def test_oauth_links(client: SpacesClient, recorder: Recorder) -> None:
    body = copy.deepcopy(OAUTH_OK)
    body["urls"]["google_login_URL"] = "https://spcs.me/oauth/?P=5&amp;x=1"
    body["urls"]["evil_login_URL"] = "javascript:alert(1)"
    body["urls"]["not_a_link"] = "https://spcs.me/"
    recorder.reply = lambda request: json_response(body)
    links = await client.oauth_links()
    [request] = recorder.requests
    assert str(request.url) == "https://spcs.me/neoapi/common"
    assert request.headers["Cookie"] == "json=1"
    assert form_fields(request) == {"method": "getOAuthLinks"}
    by_provider = {link.provider: link.url for link in links}
    assert set(by_provider) == {"ok", "vk", "facebook", "mail_ru", "google"}
    assert by_provider["vk"].startswith("https://spcs.me/oauth/?CK=4434&P=1&redirect_uri=")
    assert "&amp;" not in "".join(by_provider.values())
    assert "0837524164004434" not in repr(links)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"counters": {"1": 2, "2": 5, "3": 1}}, Counters(journal=2, feed=5, mail=1)),
        ({"counts": {"1": "4", "3": 9}}, Counters(journal=4, feed=0, mail=9)),
        ({"1": 1, "2": 2, "3": 3}, Counters(journal=1, feed=2, mail=3)),
        ({}, Counters(journal=0, feed=0, mail=0)),
    ],
)
async def test_top_counts_shapes(
    client: SpacesClient, recorder: Recorder, fields: dict[str, Any], expected: Counters
) -> None:
    recorder.reply = lambda request: json_response(answer(**fields))
    assert await client.top_counts(SID) == expected
    [request] = recorder.requests
    assert str(request.url) == "https://spcs.me/neoapi/common"
    assert request.headers["Cookie"] == f"json=1; sid={SID}"
    assert form_fields(request) == {"method": "getTopCounts"}


# -- cookies and logs --------------------------------------------------------------------


async def test_a_set_cookie_is_never_sent_back(client: SpacesClient, recorder: Recorder) -> None:
    recorder.reply = lambda request: json_response(
        LOGIN_OK, headers={"Set-Cookie": f"sid={SID}; Path=/; Domain=spcs.me"}
    )
    await client.login(LOGIN, PASSWORD)
    await client.check("1111222233334444")
    await client.top_counts("5555666677778888")
    cookies = [request.headers["Cookie"] for request in recorder.requests]
    assert cookies == ["json=1", "json=1; sid=1111222233334444", "json=1; sid=5555666677778888"]


async def test_no_secret_in_log_records(
    client: SpacesClient, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    replies = iter(
        [
            json_response(LOGIN_OK, headers={"Set-Cookie": f"sid={SID}; Path=/"}),
            json_response(LOGIN_OK),
            json_response(answer("01001")),
            httpx.Response(200, html="<html>sid=" + SID + "</html>"),
        ]
    )
    recorder.reply = lambda request: next(replies)
    with caplog.at_level(logging.DEBUG):
        await client.login(LOGIN, PASSWORD)
        await client.check(SID)
        with pytest.raises(SpacesAPIError):
            await client.check(SID)
        with pytest.raises(SpacesUnavailable):
            await client.logout(SID)
    text = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for record in caplog.records
    )
    assert "login -> 00000" in text and "check -> 01001" in text
    for secret in (SID, CK, PASSWORD, LOGIN, "json=1"):
        assert secret not in text


# -- captcha pictures --------------------------------------------------------------------


async def test_fetch_captcha(client: SpacesClient, recorder: Recorder) -> None:
    recorder.reply = lambda request: httpx.Response(
        200, content=PNG, headers={"Content-Type": "image/png"}
    )
    assert await client.fetch_captcha(CAPTCHA_URL) == PNG
    [request] = recorder.requests
    assert request.method == "GET" and str(request.url) == CAPTCHA_URL
    assert "Cookie" not in request.headers and "X-Proxy" not in request.headers
    assert request.headers["Accept-Encoding"] == "identity"


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/captcha/1.png",
        "https://spcs.me.evil.example/captcha/1.png",
        "https://user:pw@spcs.me/captcha/1.png",
        "ftp://spcs.me/captcha/1.png",
        "file:///etc/passwd",
        "//spcs.me/captcha/1.png",
        "/captcha/1.png",
        "https://spcs.me:8443/captcha/1.png",
        "http://127.0.0.1/captcha/1.png",
        "",
        "https://[::1/",
    ],
)
async def test_fetch_captcha_refuses_foreign_urls_without_a_request(
    client: SpacesClient, recorder: Recorder, url: str
) -> None:
    with pytest.raises(SpacesUnavailable) as caught:
        await client.fetch_captcha(url)
    assert caught.value.reason == "bad_answer"
    assert recorder.requests == []


async def test_fetch_captcha_host_is_case_insensitive(
    client: SpacesClient, recorder: Recorder
) -> None:
    recorder.reply = lambda request: httpx.Response(
        200, content=PNG, headers={"Content-Type": "image/png"}
    )
    assert await client.fetch_captcha("https://SPCS.me:443/captcha/1.png") == PNG


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (httpx.Response(302, headers={"Location": "http://169.254.169.254/"}), "http_status"),
        (httpx.Response(404, content=b"no"), "http_status"),
        (httpx.Response(200, html="<html></html>"), "bad_answer"),
        (httpx.Response(200, content=PNG), "bad_answer"),  # no content type at all
        (httpx.Response(200, content=b"", headers={"Content-Type": "image/png"}), "bad_answer"),
        (
            # A compressed body could expand past the cap in one chunk: refused outright.
            httpx.Response(
                200,
                headers={"Content-Type": "image/png", "Content-Encoding": "gzip"},
                stream=httpx.ByteStream(b"\x1f\x8b" + b"\x00" * 16),
            ),
            "bad_answer",
        ),
        (
            httpx.Response(200, content=b"x" * 5000, headers={"Content-Type": "image/png"}),
            "bad_answer",
        ),
    ],
)
async def test_fetch_captcha_refuses_bad_answers(
    client: SpacesClient, recorder: Recorder, response: httpx.Response, reason: str
) -> None:
    recorder.reply = lambda request: response
    with pytest.raises(SpacesUnavailable) as caught:
        await client.fetch_captcha(CAPTCHA_URL)
    assert caught.value.reason == reason
    assert len(recorder.requests) == 1  # the redirect was not followed


async def test_fetch_captcha_stops_reading_after_the_cap(
    client: SpacesClient, recorder: Recorder
) -> None:
    endless = Endless(1024, b"\x00")
    recorder.reply = lambda request: httpx.Response(
        200, headers={"Content-Type": "image/png"}, stream=endless
    )
    with pytest.raises(SpacesUnavailable) as caught:
        await client.fetch_captcha(CAPTCHA_URL)
    assert caught.value.reason == "bad_answer"
    assert endless.produced <= 4096 + 1024  # the cap (4096) plus at most one chunk
