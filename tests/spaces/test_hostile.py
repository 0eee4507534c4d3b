"""Hostile answers from a real local server: bombs, drips and absurd JSON are bad answers.

Memory is measured with tracemalloc as a fact check with a generous bound; nothing here
asserts how long something took, only that it came back with the right error.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from bot.spaces import SpacesClient, SpacesUnavailable
from bot.spaces.transport import AiohttpTransport
from tests.fakes.spaces_server import gzip_bomb, gzip_of_zeros

MiB = 1 << 20
# A guard so that a regression fails the test instead of hanging the run.
HANG_GUARD = 30
MEMORY_BOUND = 24 * MiB  # the answer cap is 1 MiB; a bomb inflating would take hundreds


ONE_GB_IN_GZIP_IN_GZIP = gzip_bomb()
SUCCESS = {"code": "00000"}


def envelope(attributes: object) -> bytes:
    return json.dumps({"code": "00000", "attributes": attributes}).encode()


def account(**changes: object) -> dict[str, object]:
    return {"sid": "6693985458435384", "CK": "5384", "nid": 1001, "name": "Alice", **changes}


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fixed(body: bytes, **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.Response(body=body, content_type="application/json", headers=headers)

    return handler


def drip(declared: int | None) -> Handler:
    """One byte at a time, forever, each well within a per-read timeout."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if declared is not None:
            response.content_length = declared
        await response.prepare(request)
        while True:
            await response.write(b" ")
            await asyncio.sleep(0.05)

    return handler


async def slow_headers(request: web.Request) -> web.StreamResponse:
    await request.read()
    await asyncio.sleep(HANG_GUARD)
    return web.Response(body=b"{}")


ROUTES: dict[str, Handler] = {
    "double-gzip": fixed(ONE_GB_IN_GZIP_IN_GZIP, **{"Content-Encoding": "gzip, gzip"}),
    "gzip-bomb": fixed(gzip_of_zeros(64), **{"Content-Encoding": "gzip"}),
    "gzip-in-gzip-declared-once": fixed(ONE_GB_IN_GZIP_IN_GZIP, **{"Content-Encoding": "gzip"}),
    "four-layers": fixed(
        gzip.compress(gzip.compress(gzip.compress(gzip.compress(json.dumps(SUCCESS).encode())))),
        **{"Content-Encoding": "gzip, gzip, gzip, gzip"},
    ),
    "unknown-encoding": fixed(b"\x00" * 10, **{"Content-Encoding": "zstd"}),
    "broken-gzip": fixed(b"\x1f\x8b\x08\x00not gzip at all", **{"Content-Encoding": "gzip"}),
    "drip": drip(None),
    "drip-small": drip(60_000),  # read whole by the transport
    "drip-large": drip(1_000_000),  # streamed
    "slow-headers": slow_headers,
    "deep": fixed(b'{"code":"00000","attributes":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    "huge-id": fixed(envelope(account(nid=10**30))),
    "huge-number": fixed(b'{"code":"00000","attributes":{"nid":' + b"9" * 100_000 + b"}}"),
    "negative-id": fixed(envelope(account(nid=-5))),
    "huge-sid": fixed(envelope(account(sid="7" * 5000))),
    "gzip-ok": fixed(gzip.compress(envelope(account())), **{"Content-Encoding": "gzip"}),
    "deflate-ok": fixed(zlib.compress(envelope(account())), **{"Content-Encoding": "deflate"}),
    "raw-deflate-ok": fixed(
        (lambda c: c.compress(envelope(account())) + c.flush())(
            zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        ),
        **{"Content-Encoding": "deflate"},
    ),
    "gzip-deflate-ok": fixed(
        gzip.compress(zlib.compress(envelope(account()))),
        **{"Content-Encoding": "deflate, gzip"},
    ),
}


@pytest.fixture
async def hostile() -> AsyncIterator[str]:
    """A server answering every neoapi call with what the first path segment names."""
    app = web.Application()
    for name, handler in ROUTES.items():
        app.router.add_post(f"/{name}/neoapi/{{endpoint}}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[AiohttpTransport]:
    async with AiohttpTransport() as transport:
        yield transport


async def login_error(http: AiohttpTransport, url: str) -> SpacesUnavailable:
    spaces = SpacesClient(http, url, rid="rid", timeout=5.0)
    with pytest.raises(SpacesUnavailable) as err:
        await asyncio.wait_for(spaces.login("alice", "secret123"), HANG_GUARD)
    return err.value


@pytest.mark.parametrize(
    "route", ["double-gzip", "gzip-bomb", "gzip-in-gzip-declared-once", "four-layers"]
)
async def test_bombs_are_bad_answers_in_bounded_memory(
    hostile: str, http: AiohttpTransport, route: str
) -> None:
    tracemalloc.start()
    try:
        error = await login_error(http, f"{hostile}/{route}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.reason in ("bad_answer", "not_json")
    if route != "gzip-in-gzip-declared-once":  # that one is simply not JSON once unwrapped
        assert error.reason == "bad_answer"
    assert peak < MEMORY_BOUND, f"{peak / MiB:.0f} MiB held"


@pytest.mark.parametrize("route", ["unknown-encoding", "broken-gzip"])
async def test_bodies_that_do_not_decode_are_bad_answers(
    hostile: str, http: AiohttpTransport, route: str
) -> None:
    assert (await login_error(http, f"{hostile}/{route}")).reason == "bad_answer"


@pytest.mark.parametrize("route", ["drip", "drip-small", "drip-large", "slow-headers"])
async def test_the_whole_request_is_bounded_by_the_timeout(
    hostile: str, http: AiohttpTransport, route: str
) -> None:
    """Each byte arrives well within a per-read timeout; only an overall deadline ends it."""
    spaces = SpacesClient(http, f"{hostile}/{route}", rid="rid", timeout=0.5)
    with pytest.raises(SpacesUnavailable) as err:
        await asyncio.wait_for(spaces.check("1234"), HANG_GUARD)
    assert err.value.reason == "timeout"


@pytest.mark.parametrize("route", ["deep", "huge-id", "huge-number", "negative-id", "huge-sid"])
async def test_absurd_json_is_a_bad_answer(
    hostile: str, http: AiohttpTransport, route: str
) -> None:
    assert (await login_error(http, f"{hostile}/{route}")).reason == "bad_answer"


@pytest.mark.parametrize("route", ["gzip-ok", "deflate-ok", "raw-deflate-ok", "gzip-deflate-ok"])
async def test_honest_encodings_still_decode(
    hostile: str, http: AiohttpTransport, route: str
) -> None:
    spaces = SpacesClient(http, f"{hostile}/{route}", rid="rid", timeout=5)
    account = await asyncio.wait_for(spaces.login("alice", "secret123"), HANG_GUARD)
    assert (account.user_id, account.nickname) == (1001, "Alice")
