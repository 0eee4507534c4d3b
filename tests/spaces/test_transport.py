"""The Spaces client over the aiohttp transport the bot uses, against the fake Spaces."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import AsyncIterator

import pytest

from bot.spaces import CaptchaRequired, SpacesClient, SpacesUnavailable
from bot.spaces.transport import AiohttpTransport
from tests.fakes.spaces_server import FakeSpaces


@pytest.fixture
async def http() -> AsyncIterator[AiohttpTransport]:
    async with AiohttpTransport() as transport:
        yield transport


def client(http: AiohttpTransport, url: str, timeout: float = 2.0) -> SpacesClient:
    return SpacesClient(http, url, rid="rid", timeout=timeout)


async def test_login_check_logout(fake: FakeSpaces, http: AiohttpTransport) -> None:
    spaces = client(http, fake.url)
    account = await spaces.login("alice", "secret123")
    assert (await spaces.check(account.sid)).nickname == "Alice"
    await spaces.logout(account.sid)
    with pytest.raises(Exception) as gone:
        await spaces.check(account.sid)
    assert getattr(gone.value, "is_session_gone", False)


async def test_no_cookie_is_kept_between_requests(fake: FakeSpaces, http: AiohttpTransport) -> None:
    spaces = client(http, fake.url)
    first = await spaces.login("alice", "secret123")  # the fake answers Set-Cookie: sid=…
    fake.state.add_user("bob", "secret456", 2002, "Bob")
    second = await spaces.login("bob", "secret456")
    assert (await spaces.check(first.sid)).nickname == "Alice"
    assert (await spaces.check(second.sid)).nickname == "Bob"
    sids = [c.sid for c in fake.state.calls if c.method == "check"]
    assert sids == [first.sid, second.sid]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("http500", "http_status"), ("html", "not_json"), ("badjson", "not_json")],
)
async def test_faults_map_to_reasons(
    fake: FakeSpaces, http: AiohttpTransport, mode: str, reason: str
) -> None:
    fake.state.set_mode(mode)
    with pytest.raises(SpacesUnavailable) as err:
        await client(http, fake.url).check("1234")
    assert err.value.reason == reason


async def test_timeout_is_a_timeout(fake: FakeSpaces, http: AiohttpTransport) -> None:
    fake.state.set_mode("timeout")
    with pytest.raises(SpacesUnavailable) as err:
        await client(http, fake.url, timeout=0.3).check("1234")
    assert err.value.reason == "timeout"
    fake.state.set_mode("ok")


async def test_refused_connection_is_a_network_error(http: AiohttpTransport) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SpacesUnavailable) as err:
        await client(http, f"http://127.0.0.1:{port}").check("1234")
    assert err.value.reason == "network"


async def test_captcha_over_aiohttp(fake: FakeSpaces, http: AiohttpTransport) -> None:
    fake.state.set_captcha("alice", True)
    spaces = client(http, fake.url)
    with pytest.raises(CaptchaRequired) as challenge:
        await spaces.login("alice", "secret123")
    url, cookies = challenge.value.captcha_url, challenge.value.cookies
    image = await spaces.fetch_captcha(url, cookies=cookies)
    assert image.startswith(b"\x89PNG")
    tiny = SpacesClient(http, fake.url, rid="rid", timeout=2, captcha_max_bytes=10)
    with pytest.raises(SpacesUnavailable):
        await tiny.fetch_captcha(url, cookies=cookies)


# -- answers the fake does not give: compressed, streamed, broken ---------------------------

OK_CHECK = {"code": "00000", "attributes": {"nid": 7, "name": "Zip", "CK": "1", "sid": "1234"}}


@pytest.fixture
async def odd_server() -> AsyncIterator[str]:
    """Answers `check` gzip-compressed (/gzip), streamed without a length (/chunked), or as
    a gzip body that does not decompress (/broken)."""
    from aiohttp import web

    packed = gzip.compress(json.dumps(OK_CHECK).encode())

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(body=packed, headers={"Content-Encoding": "gzip"})

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        text = json.dumps(OK_CHECK).encode()
        for i in range(0, len(text), 7):
            await response.write(text[i : i + 7])
        await response.write_eof()
        return response

    async def broken(request: web.Request) -> web.Response:
        return web.Response(body=b"\x1f\x8bnot gzip at all", headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_post("/gzip/neoapi/session", gzipped)
    app.router.add_post("/chunked/neoapi/session", chunked)
    app.router.add_post("/broken/neoapi/session", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_compressed_and_streamed_answers_are_read(
    odd_server: str, http: AiohttpTransport
) -> None:
    for path in ("gzip", "chunked"):
        account = await client(http, f"{odd_server}/{path}").check("1234")
        assert (account.nickname, account.user_id) == ("Zip", 7)


async def test_a_body_that_does_not_decompress_is_a_bad_answer(
    odd_server: str, http: AiohttpTransport
) -> None:
    with pytest.raises(SpacesUnavailable) as err:
        await client(http, f"{odd_server}/broken").check("1234")
    assert err.value.reason == "bad_answer"
