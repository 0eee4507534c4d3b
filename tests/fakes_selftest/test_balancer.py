"""Self-tests of the round-robin balancer that stands in front of several bot instances."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from tests.fakes.balancer import Balancer


async def backend(name: str) -> tuple[web.AppRunner, str]:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "backend": name,
                "method": request.method,
                "path": request.path_qs,
                "secret": request.headers.get("X-Telegram-Bot-Api-Secret-Token"),
                "body": body.decode(),
            },
            status=201 if request.path == "/created" else 200,
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    return runner, f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
async def backends() -> AsyncIterator[list[str]]:
    runners = [await backend("a"), await backend("b")]
    yield [url for _, url in runners]
    for runner, _ in runners:
        await runner.cleanup()


def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"  # nobody listens once closed


async def test_requests_go_to_each_backend_in_turn_as_they_came(backends: list[str]) -> None:
    async with Balancer(backends) as lb, httpx.AsyncClient(base_url=lb.url) as http:
        answers = [
            await http.post(
                "/hook?x=1",
                json={"update_id": n},
                headers={"X-Telegram-Bot-Api-Secret-Token": "s"},
            )
            for n in range(4)
        ]
        created = await http.put("/created", content=b"raw")
    assert [a.json()["backend"] for a in answers] == ["a", "b", "a", "b"]
    first = answers[0].json()
    assert first["method"] == "POST" and first["path"] == "/hook?x=1"
    assert first["secret"] == "s" and first["body"] == '{"update_id":0}'
    assert created.status_code == 201 and created.json()["body"] == "raw"
    assert lb.counts == Counter({0: 3, 1: 2})
    assert lb.backends_of({1, 3}) == {1} and lb.backends_of({0, 1}) == {0, 1}


async def test_a_backend_that_refuses_connections_is_skipped(backends: list[str]) -> None:
    async with Balancer([closed_port(), backends[1]]) as lb, httpx.AsyncClient() as http:
        answers = [await http.post(f"{lb.url}/hook", json={"update_id": n}) for n in range(3)]
    assert [a.json()["backend"] for a in answers] == ["b", "b", "b"]
    assert lb.counts == Counter({1: 3}) and lb.refused[0] >= 1


async def test_no_backend_left_is_a_502() -> None:
    async with Balancer([closed_port()]) as lb, httpx.AsyncClient() as http:
        assert (await http.get(f"{lb.url}/hook")).status_code == 502
    assert lb.forwarded == []
