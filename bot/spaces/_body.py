"""Reading an answer's body with a cap that holds through every Content-Encoding layer.

httpx decodes a whole chunk at once, so a few kilobytes of gzip inside gzip become a
gigabyte in memory before any size check runs. Here each layer inflates at most one byte
past the cap, so nothing larger than the cap is ever held, whatever the compression ratio.
"""

from __future__ import annotations

import zlib

import httpx

# More layers than this is not a web server talking ("gzip, deflate" is the usual most).
MAX_LAYERS = 3


class _TooLarge(Exception):
    """A layer would produce more than the cap."""


class _Layer:
    """One Content-Encoding undone incrementally, never producing more than `cap` bytes."""

    def __init__(self, name: str, cap: int) -> None:
        if name in ("gzip", "x-gzip"):
            self._wbits = 16 + zlib.MAX_WBITS
        elif name == "deflate":
            self._wbits = zlib.MAX_WBITS  # zlib-wrapped, as the standard says; raw is tried too
        else:
            raise httpx.DecodingError(f"unsupported Content-Encoding {name!r}")
        self._name = name
        self._inflate = zlib.decompressobj(self._wbits)
        self._cap = cap
        self._produced = 0
        self._started = False

    def feed(self, data: bytes) -> bytes:
        try:
            out = self._inflate.decompress(data, self._cap - self._produced + 1)
        except zlib.error as exc:
            if self._name == "deflate" and not self._started:
                # Some servers send raw deflate without the zlib wrapper (httpx does the same).
                self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                self._started = True
                return self.feed(data)
            raise httpx.DecodingError(f"{self._name} data does not decode") from exc
        self._started = True
        return self._count(out)

    def finish(self) -> bytes:
        try:
            return self._count(self._inflate.flush())
        except zlib.error as exc:
            raise httpx.DecodingError(f"{self._name} data does not decode") from exc

    def _count(self, out: bytes) -> bytes:
        # Output stops at max_length = room + 1: reaching it means the cap is passed.
        self._produced += len(out)
        if self._produced > self._cap:
            raise _TooLarge
        return out


def content_encodings(response: httpx.Response) -> list[str]:
    """The encodings applied to the body, in the order they were applied."""
    names = [
        name.strip().lower()
        for value in response.headers.get_list("Content-Encoding")
        for name in value.split(",")
    ]
    return [name for name in names if name and name != "identity"]


async def read_capped(response: httpx.Response, cap: int) -> bytes | None:
    """The body with every Content-Encoding undone, or None once any layer passes `cap`.

    Raises httpx.DecodingError for an encoding it does not know, too many layers, or data
    that does not decode.
    """
    if response.is_stream_consumed:
        # Built from bytes and decoded already (httpx.MockTransport does that); the bot's
        # own transport hands bodies over as streams.
        body = response.content
        return body if len(body) <= cap else None
    names = content_encodings(response)
    if len(names) > MAX_LAYERS:
        raise httpx.DecodingError(f"{len(names)} Content-Encoding layers")
    layers = [_Layer(name, cap) for name in reversed(names)]  # the last applied comes off first
    chunks: list[bytes] = []
    received = 0
    try:
        async for raw in response.aiter_raw():
            received += len(raw)
            if received > cap:
                return None
            data = raw
            for layer in layers:
                data = layer.feed(data)
            chunks.append(data)
        tail = b""
        for layer in layers:
            tail = layer.feed(tail) + layer.finish()
        chunks.append(tail)
    except _TooLarge:
        return None
    body = b"".join(chunks)
    return body if len(body) <= cap else None
