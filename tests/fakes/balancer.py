"""A tiny round-robin HTTP load balancer for tests, standing in for the reverse proxy in
front of several bot instances (Caddy's `reverse_proxy a b`, nginx's `upstream`).

Each request goes to the next backend in turn with its method, path, query, headers and
body; the backend's answer comes back as it is. A backend that refuses the connection is
skipped for the next one, as nginx does by default (`proxy_next_upstream error`), so a dead
instance costs no update::

    async with Balancer(["http://127.0.0.1:8081", "http://127.0.0.1:8082"]) as lb:
        ...  # point WEBHOOK_URL at f"{lb.url}/telegram/hook"
        assert lb.counts == Counter({0: 3, 1: 3})
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp import web

from tests.fakes import serve_app

__all__ = ["Balancer", "Forwarded"]

# Per connection, not per message (RFC 9110 7.6.1); aiohttp sets its own length and host.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)


@dataclass(frozen=True, slots=True)
class Forwarded:
    """One request a backend answered: which backend, the path, the update's id when the
    body is a Telegram update (None otherwise) and the backend's status."""

    backend: int
    path: str
    update_id: int | None
    status: int


def _update_id(body: bytes) -> int | None:
    try:
        update = json.loads(body)
    except ValueError:
        return None
    value = update.get("update_id") if isinstance(update, dict) else None
    return value if isinstance(value, int) else None


class Balancer:
    """Round-robin over `backends` (base URLs) on 127.0.0.1 and a free port."""

    def __init__(self, backends: list[str], *, timeout: float = 65.0) -> None:
        if not backends:
            raise ValueError("a balancer needs at least one backend")
        self.backends = [b.rstrip("/") for b in backends]
        self.forwarded: list[Forwarded] = []
        self.refused: Counter[int] = Counter()  # connections a backend refused, per backend
        self.url = ""
        self._turn = itertools.cycle(range(len(self.backends)))
        self._timeout = timeout
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    @property
    def counts(self) -> Counter[int]:
        """Requests each backend answered, by its index in `backends`."""
        return Counter(f.backend for f in self.forwarded)

    def backends_of(self, update_ids: set[int]) -> set[int]:
        """The backends that answered any of these updates."""
        return {f.backend for f in self.forwarded if f.update_id in update_ids}

    async def start(self) -> Self:
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout), auto_decompress=False
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner, self.url = await serve_app(app)
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._client is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        for _ in self.backends:
            backend = next(self._turn)
            try:
                async with self._client.request(
                    request.method,
                    self.backends[backend] + request.path_qs,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                ) as answer:
                    content = await answer.read()
                    kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
            except aiohttp.ClientConnectorError:
                self.refused[backend] += 1  # nothing was sent: the next one may take it
                continue
            except (aiohttp.ClientError, TimeoutError) as error:
                return web.Response(status=502, text=f"balancer: {error!r}")
            self.forwarded.append(Forwarded(backend, request.path, _update_id(body), answer.status))
            return web.Response(status=answer.status, body=content, headers=kept)
        return web.Response(status=502, text="balancer: no backend accepted the connection")
