"""httpx's API on aiohttp's connection pool, for the Spaces client.

aiohttp is already here (aiogram uses it); bench/watch_bench.py measured httpx's own pool
at several times the CPU per Spaces check, and slower as more requests are in flight.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx


def _httpx_error(exc: Exception) -> httpx.TransportError | None:
    """The error httpx's own pool raises for the same failure: SpacesClient turns these into
    SpacesUnavailable reasons ("timeout", "network"), which users see."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(text)
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError/SocketTimeoutError too
        return httpx.ReadTimeout(text)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(text)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(text)
    if isinstance(exc, aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(text)  # a malformed HTTP answer too
    if isinstance(exc, aiohttp.ClientError | OSError):
        return httpx.ReadError(text)
    return None


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except httpx.HTTPError:
        raise
    except Exception as exc:
        mapped = _httpx_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


class _AiohttpBody(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._response.content.iter_chunked(64 * 1024):
                yield chunk

    async def aclose(self) -> None:
        # Back to the pool only when read to the end; a body left unread (over its cap, past
        # its deadline) closes the connection instead of waiting for the rest.
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


_SMALL_BODY = 64 * 1024  # declared bodies up to this size are read whole


@functools.lru_cache(maxsize=16)
def _client_timeout(
    pool: float | None, connect: float | None, read: float | None
) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=pool, sock_connect=connect, sock_read=read)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's API on aiohttp's connection pool (what the `httpx-aiohttp` package does).

    bench/watch_bench.py measured httpx's own pool at 3-5x the CPU per Spaces check, and
    slower as more requests are in flight. Unlike `httpx-aiohttp` 0.2: aiohttp keeps no
    cookies (its jar would put a login's `sid` over the Cookie header a request sets, i.e.
    check one chat's session with another's), the small request body goes out in one write,
    and every failure surfaces as the httpx error httpx's own pool raises. Small answers
    with a declared length are read whole; others stream. Bodies are handed over still
    encoded: the Spaces client undoes Content-Encoding itself, under its size cap.
    """

    def __init__(self, *, max_connections: int = 100, keepalive_expiry: float = 5.0) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._ssl = httpx.create_ssl_context()  # the CA bundle httpx itself would use
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on first use, inside the running loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    keepalive_timeout=self._keepalive_expiry,
                    ssl=self._ssl,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,  # httpx decodes, as with its own pool
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()  # multipart forms of a few hundred bytes
        encoding = request.headers.encoding
        headers = [
            (name.decode(encoding), value.decode(encoding))
            for name, value in request.headers.raw
            if name.lower() != b"transfer-encoding"  # the body is whole: aiohttp sets the length
        ]
        with _as_httpx_errors():
            response = await self._open().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=_client_timeout(
                    timeout.get("pool"), timeout.get("connect"), timeout.get("read")
                ),
            )
            extensions = {
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("ascii", "replace"),
            }
            length = response.content_length
            if length is not None and length <= _SMALL_BODY:
                # A Spaces answer: read at once, no chain of async iterators per request.
                try:
                    raw = await response.read()
                except BaseException:  # cancelled by the caller's deadline too
                    response.close()
                    raise
                # As a stream, still encoded: `content=` would make httpx inflate it whole
                # at once, and a few kB of gzip can be a gigabyte. The reader caps it.
                return httpx.Response(
                    response.status,
                    headers=response.raw_headers,
                    stream=httpx.ByteStream(raw),
                    extensions=extensions,
                )
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_AiohttpBody(response),
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
