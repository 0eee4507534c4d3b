"""A minimal Spaces that answers `check` and counts the checks of each session.

    python -m bench.check_counter [--port 0]
    # prints "READY http://127.0.0.1:<port>", runs until SIGTERM/SIGINT

Every SID is a live session. SIDs made by `sid_of(i)` are counted per `i`, so a run can
tell how many sessions were checked more than once. It is a bare asyncio protocol, not
aiohttp, so that a sweep of several watcher processes measures them and not the server:
its own CPU per request is reported by `GET /__counts` (`cpu`). `POST /__reset` zeroes
the counts. Only 127.0.0.1; keep-alive; bodies with Content-Length only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import aiohttp

SID_BASE: Final = 10**15  # sid_of(i) is 16 digits, like real SIDs
_ROOT: Final = Path(__file__).resolve().parents[1]
_CONTENT_LENGTH: Final = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED: Final = re.compile(rb"\r\ntransfer-encoding:[^\r\n]*chunked", re.IGNORECASE)
_SID: Final = re.compile(rb"\r\ncookie:[^\r\n]*?\bsid=([0-9A-Za-z]+)", re.IGNORECASE)
_CHECK: Final = b'name="method"\r\n\r\ncheck\r\n'
_CONFIG: Final = (
    b'{"large_display_min_width":480,"thumbs":{"baseurl":"http://tsx.spaces.ru/"},'
    b'"TOUCH_INTERFACE_SCREEN_WIDTH":320,"icons":{"baseurl":"https://spac.me/i/"}}'
)
# The real site's check answer, as tests/fakes/spaces_server.py builds it (counters included).
_CHECKED: Final = (
    b'{"css_files":[],"time":%d,"config":' + _CONFIG + b',"attributes":{'
    b'"channel_id":"4f0c1e2d3b4a59687766554433221100","sid":"%s","isAutoreg":0,'
    b'"avatar":"http://127.0.0.1/tpic/%d.p.41.40.0.jpg?%d","name":"user%d","CK":"%s",'
    b'"nid":%d,"mysite_link":"http://127.0.0.1/mysite/?name=user%d&amp;sid=%s",'
    b'"online_status":{"system":0,"alt":"(ON)","last_time":%d,"off_img":"man_off.gif",'
    b'"is_online":1,"no_link":1,"on_img":"man_on.gif","id":"%d"},"confirm_phone":0,'
    b'"color":0,"journalTbNm":2,"lentaTbNm":5,"mailTbNm":1},"t":0.001,"code":"00000"}'
)
_UNKNOWN_METHOD: Final = b'{"css_files":[],"config":' + _CONFIG + b',"t":0.001,"code":"00002"}'


def sid_of(index: int) -> str:
    return str(SID_BASE + index)


def nid_of(index: int) -> int:
    """The Spaces user id the counter reports for `sid_of(index)` (the account id)."""
    return index + 1


def ck_of(sid: str) -> str:
    return sid[-4:]


def _response(status: bytes, body: bytes) -> bytes:
    head = b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % (status, len(body)) + body


@dataclass
class Counts:
    """Checks per session index; a byte each (saturating at 255), so a million cost 1 MB."""

    per_session: bytearray = field(default_factory=bytearray)
    checks: int = 0
    sessions: int = 0  # checked at least once
    twice: int = 0  # checked more than once
    foreign: int = 0  # checks of SIDs not made by sid_of
    other: int = 0  # requests that were not a check

    def count(self, sid: bytes) -> None:
        self.checks += 1
        index = int(sid) - SID_BASE if sid.isdigit() else -1
        if index < 0:
            self.foreign += 1
            return
        if index >= len(self.per_session):
            self.per_session.extend(bytes(max(index + 1 - len(self.per_session), 65536)))
        seen = self.per_session[index]
        if seen == 0:
            self.sessions += 1
        elif seen == 1:
            self.twice += 1
        if seen < 255:
            self.per_session[index] = seen + 1

    def reset(self) -> None:
        self.per_session = bytearray()
        self.checks = self.sessions = self.twice = self.foreign = self.other = 0

    def summary(self) -> dict[str, Any]:
        return {
            "checks": self.checks,
            "sessions": self.sessions,
            "twice": self.twice,
            "most": max(self.per_session, default=0),
            "foreign": self.foreign,
            "other": self.other,
            "cpu": time.process_time(),
        }


class _Http(asyncio.Protocol):
    def __init__(self, counts: Counts) -> None:
        self._counts = counts
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        transport = self._transport
        assert transport is not None
        while True:  # every complete request in the buffer, in order (pipelining)
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end])
            if _CHUNKED.search(head):
                transport.write(_response(b"411 Length Required", b"{}"))
                transport.close()
                return
            match = _CONTENT_LENGTH.search(head)
            total = end + 4 + (int(match.group(1)) if match else 0)
            if len(self._buffer) < total:
                return
            body = bytes(self._buffer[end + 4 : total])
            del self._buffer[:total]
            transport.write(self._answer(head, body))

    def _answer(self, head: bytes, body: bytes) -> bytes:
        line = head.split(b"\r\n", 1)[0]
        if line.startswith(b"POST /neoapi/session "):
            sid = _SID.search(head)
            if sid is None or _CHECK not in body:
                self._counts.other += 1
                return _response(b"200 OK", _UNKNOWN_METHOD)
            value = sid.group(1)
            self._counts.count(value)
            index = int(value) - SID_BASE if value.isdigit() else 0
            nid, ck, now = nid_of(index), value[-4:], int(time.time())
            body = _CHECKED % (now, value, nid, now, nid, ck, nid, nid, value, now, nid)
            return _response(b"200 OK", body)
        if line.startswith(b"GET /__counts "):
            return _response(b"200 OK", json.dumps(self._counts.summary()).encode())
        if line.startswith(b"POST /__reset "):
            self._counts.reset()
            return _response(b"200 OK", b"{}")
        return _response(b"404 Not Found", b"{}")


async def serve(port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    counts = Counts()
    server = await loop.create_server(lambda: _Http(counts), "127.0.0.1", port, backlog=512)
    bound = server.sockets[0].getsockname()[1]
    print(f"READY http://127.0.0.1:{bound}", flush=True)
    async with server:
        await stop.wait()


class CheckCounter:
    """Runs `python -m bench.check_counter` in its own process and reads its counts."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.check_counter", cwd=_ROOT, stdout=asyncio.subprocess.PIPE
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 30)
        ready, _, url = line.decode().strip().partition(" ")
        if ready != "READY":
            await self.__aexit__(None, None, None)
            raise RuntimeError(f"the check counter printed {line!r} instead of READY")
        self.url = url
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def counts(self) -> dict[str, Any]:
        assert self._http is not None
        async with self._http.get(f"{self.url}/__counts") as response:
            result: dict[str, Any] = await response.json()
            return result

    async def reset(self) -> None:
        assert self._http is not None
        async with self._http.post(f"{self.url}/__reset") as response:
            await response.read()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.close()
        process = self.process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
