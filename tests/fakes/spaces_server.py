"""A fake Spaces.ru neoapi server for tests, in-process or as a separate process.

It answers as the real site does (shared notes, "What the site's own web client adds"):
counters at the top level of a check's `attributes`, a `sid` cookie set with every captcha
and required back with its answer (and to see its picture), 01006 with `auth_errror`,
sign-in links on gdespaces.com (Google's too). Two fakes can share one state as two mirrors
of one site, each with its own fault mode.

In-process::

    async with FakeSpaces() as fake, FakeSpaces(state=fake.state) as mirror:
        client = SpacesClient(httpx.AsyncHTTPTransport(), [fake.url, mirror.url], rid="x")
        fake.state.set_mode("http500")  # the whole site
        fake.mirror.mode = "html"  # this mirror only

Separate process (end-to-end tests, benchmarks)::

    python -m tests.fakes.spaces_server [--host 127.0.0.1] [--port 0] [--mirrors 1]
    # prints one line "READY http://127.0.0.1:<port> [<url of mirror 2> ...]", runs until
    # SIGTERM/SIGINT

Both are driven the same way over HTTP under /__admin/ (see FakeSpacesControl), and
the in-process FakeState has synchronous methods of the same names.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gzip
import json
import re
import secrets
import signal
import struct
import sys
import time
import zlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import httpx
from aiohttp import web

from tests.fakes import serve_app

DEFAULT_CAPTCHA_ANSWER: Final = "1234"
# gzipbomb: 1 GiB of zeros as gzip inside gzip (a few kB on the wire); drip: a body that
# never ends, one byte at a time, each well within a per-read timeout.
MODES: Final = frozenset(
    {"ok", "http500", "html", "badjson", "timeout", "ratelimit", "gzipbomb", "drip", "slow"}
)
CALLS_KEPT: Final = 1000
CAPTCHA_CODES: Final = frozenset({"00001", "00004"})
_REPO_ROOT: Final = Path(__file__).resolve().parents[2]

_CONFIG_JSON: Final = json.dumps(
    {
        "large_display_min_width": 480,
        "thumbs": {"baseurl": "http://tsx.spaces.ru/"},
        "TOUCH_INTERFACE_SCREEN_WIDTH": 320,
        "icons": {"baseurl": "https://spac.me/i/"},
    },
    separators=(",", ":"),
).encode()
_HTML_PAGE: Final = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Spaces</title></head>"
    "<body><h1>Spaces</h1><p>Mobile social network.</p></body></html>"
)
_CAPTCHA_NAME: Final = re.compile(r"(\d{1,20})\.png")
# Where the real site's getOAuthLinks pointed (another mirror than the one asked).
DEFAULT_OAUTH_BASE: Final = "https://gdespaces.com"
AUTH_ERROR: Final = "01006"


def _tiny_png() -> bytes:
    """A valid 1x1 grey PNG, built rather than pasted so it is obviously correct."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1x1, 8-bit greyscale
    pixels = zlib.compress(b"\x00\x80")  # filter byte + one grey pixel
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


CAPTCHA_PNG: Final = _tiny_png()
_MiB: Final = 1 << 20


def gzip_of_zeros(size_mib: int) -> bytes:
    """A gzip stream of `size_mib` MiB of zeros, built without compressing them all.

    One 1 MiB segment ends in a full flush, so it stands alone and can be repeated; the
    trailer's CRC is left zero (a decoder that honours a size cap never gets there)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    segment = compressor.compress(bytes(_MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    final_block = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", 0, (size_mib * _MiB) & 0xFFFFFFFF)
    return header + segment * size_mib + final_block + trailer


@functools.cache
def gzip_bomb() -> bytes:
    """1 GiB of zeros, gzip inside gzip: a few kB to send (Content-Encoding: gzip, gzip)."""
    return gzip.compress(gzip_of_zeros(1024), 9)


@dataclass
class FakeUser:
    login: str
    password: str
    nid: int
    name: str
    captcha_required: bool = False


@dataclass(frozen=True, slots=True)
class RecordedCall:
    endpoint: str
    method: str
    fields: dict[str, str]  # the form, without `password`
    sid: str | None  # from the cookie
    mirror: str = ""  # the URL of the mirror that was asked
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass(slots=True)
class _Session:
    nid: int
    attributes: bytes  # pre-serialised so `check` is a dict lookup and a concatenation


@dataclass
class _Override:
    code: str
    extra: dict[str, Any] = field(default_factory=dict)


class FakeState:
    """Everything the fake knows; tests may read and change it directly."""

    def __init__(self) -> None:
        self.base_url = ""
        self.timeout_seconds = 30.0  # how long "timeout" mode stalls; longer than any client
        self.slow_seconds = 3.0  # how long "slow" mode takes before it answers
        self._wake = asyncio.Event()
        self.reset()

    def reset(self) -> None:
        self.users: dict[str, FakeUser] = {}  # lower-cased login -> user
        self.aliases: dict[str, str] = {}  # lower-cased e-mail/phone -> lower-cased login
        self.sessions: dict[str, _Session] = {}
        self.captcha_answer = DEFAULT_CAPTCHA_ANSWER
        self.mode = "ok"
        self.next_codes: dict[str, deque[_Override]] = {}
        self.counts: Counter[str] = Counter()  # exact, per method
        self.calls: deque[RecordedCall] = deque(maxlen=CALLS_KEPT)  # the latest only
        self.top_counts: dict[str, int] = {"1": 2, "2": 5, "3": 1}
        # Captchas handed out: the pre-login `sid` cookie set with each -> the picture's id.
        self.captchas: dict[str, str] = {}
        # The Domain attribute of that cookie; None: a host-only cookie, as the site sets.
        self.captcha_cookie_domain: str | None = None
        self.oauth_base = DEFAULT_OAUTH_BASE
        # The picture: "png" (a real one), "huge" (2 MB, declared), "endless" (streamed on).
        self.captcha_picture = "png"
        # SIDs whose place another sign-in took: `check` answers 01006 with sub-code 1.
        self.replaced: set[str] = set()
        # Benchmarks: any SID nobody logged in with is a live session of a made-up user
        # (nid from its digits), so stored sessions need not be registered one by one.
        self.accept_any_sid = False
        self.wake_stalled()
        self.add_user("alice", "secret123", 1001, "Alice", aliases=["alice@example.com"])

    # -- control, mirrored by FakeSpacesControl ------------------------------------------

    def add_user(
        self,
        login: str,
        password: str,
        nid: int,
        name: str,
        *,
        aliases: Iterable[str] = (),
        captcha: bool = False,
    ) -> FakeUser:
        user = FakeUser(login, password, nid, name, captcha_required=captcha)
        self.users[login.lower()] = user
        for alias in aliases:
            self.aliases[alias.lower()] = login.lower()
        return user

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {sorted(MODES)}")
        self.mode = mode
        if mode != "timeout":
            self.wake_stalled()

    def expire(self, *, sid: str | None = None, nid: int | None = None) -> int:
        """Kill one session, or every session of a user; returns how many died."""
        doomed = [s for s, sess in self.sessions.items() if s == sid or sess.nid == nid]
        for s in doomed:
            del self.sessions[s]
        return len(doomed)

    def replace_sessions(self, nid: int) -> int:
        """Another sign-in takes the place of every session of a user (01006, sub-code 1)."""
        doomed = self.sids_of(nid)
        for sid in doomed:
            del self.sessions[sid]
        self.replaced.update(doomed)
        return len(doomed)

    def next_code(self, method: str, code: str, extra: Mapping[str, Any] | None = None) -> None:
        """The next call of `method` answers `code` (plus `extra` fields), once."""
        if not (len(code) == 5 and code.isdigit()):
            raise ValueError(f"not a 5-digit code: {code!r}")
        self.next_codes.setdefault(method, deque()).append(_Override(code, dict(extra or {})))

    def set_captcha(self, login: str, required: bool, answer: str | None = None) -> None:
        user = self.find_user(login)
        if user is None:
            raise KeyError(login)
        user.captcha_required = required
        if answer is not None:
            self.captcha_answer = answer

    def set_counters(self, journal: int, feed: int, mail: int) -> None:
        self.top_counts = {"1": journal, "2": feed, "3": mail}

    def calls_summary(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "calls": [asdict(c) for c in self.calls]}

    # -- helpers for the handlers --------------------------------------------------------

    def find_user(self, login: str) -> FakeUser | None:
        key = login.strip().lower()
        return self.users.get(self.aliases.get(key, key))

    def live_session(self, sid: str, base: str) -> _Session | None:
        session = self.sessions.get(sid)
        if session is None and self.accept_any_sid and sid:
            nid = int(sid[-9:]) if sid.isdigit() else 1
            user = FakeUser(f"user{nid}", "", nid, f"user{nid}")
            session = _Session(nid, _attributes(user, sid, base))  # not kept: no memory growth
        return session

    def sids_of(self, nid: int) -> list[str]:
        return [s for s, sess in self.sessions.items() if sess.nid == nid]

    def record(
        self,
        endpoint: str,
        method: str,
        fields: dict[str, str],
        sid: str | None,
        mirror: str = "",
    ) -> None:
        self.counts[method] += 1
        kept = {k: v for k, v in fields.items() if k != "password"}
        self.calls.append(RecordedCall(endpoint, method, kept, sid, mirror))

    def pop_override(self, method: str) -> _Override | None:
        queue = self.next_codes.get(method)
        return queue.popleft() if queue else None

    async def stall(self) -> None:
        """Hang like a dead upstream, until the timeout, a mode change or shutdown."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.timeout_seconds)

    def wake_stalled(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()


# -- answers ----------------------------------------------------------------------------


def _answer(code: str, fields: bytes = b"", *, status: int = 200) -> web.Response:
    """The full envelope; `fields` is serialised `"key":value,` pairs (or empty)."""
    body = b'{"css_files":[],"time":%d,"config":%s,%s"t":0.001,"code":"%s"}' % (
        int(time.time()),
        _CONFIG_JSON,
        fields,
        code.encode(),
    )
    return web.Response(body=body, status=status, content_type="application/json")


def _fields(values: Mapping[str, Any]) -> bytes:
    if not values:
        return b""
    return json.dumps(dict(values), separators=(",", ":"))[1:-1].encode() + b","


def _html() -> web.Response:
    return web.Response(text=_HTML_PAGE, content_type="text/html")


def _base(request: web.Request, state: FakeState) -> str:
    """This mirror's own address: what its answers' links point at."""
    return request.app[MIRROR_KEY].url or state.base_url or str(request.url.origin())


def _captcha_answer(
    request: web.Request, state: FakeState, code: str, extra: Mapping[str, Any] | None = None
) -> web.Response:
    """A captcha code with a fresh picture, and (like the site) a pre-login `sid` cookie
    the picture and the answer belong to."""
    picture = f"{secrets.randbelow(10**9):09d}"
    pre_login_sid = f"{secrets.randbelow(10**16):016d}"
    state.captchas[pre_login_sid] = picture
    url = f"{_base(request, state)}/captcha/{picture}.png?{int(time.time())}"
    response = _answer(code, _fields({"captcha_url": url, **(extra or {})}))
    response.set_cookie(
        "sid", pre_login_sid, path="/", domain=state.captcha_cookie_domain, httponly=True
    )
    return response


def _attributes(user: FakeUser, sid: str, base: str) -> bytes:
    now = int(time.time())
    attributes = {
        "channel_id": secrets.token_hex(16),
        "sid": sid,
        "isAutoreg": 0,
        "avatar": f"{base}/tpic/{user.nid}.p.41.40.0.jpg?{now}",
        "name": user.name,
        "CK": sid[-4:],
        "nid": user.nid,
        # Like the real site: HTML-escaped, with the session in the link.
        "mysite_link": f"{base}/mysite/?name={user.name}&amp;sid={sid}",
        "online_status": {
            "system": 0,
            "alt": "(ON)",
            "last_time": now,
            "off_img": "man_off.gif",
            "is_online": 1,
            "no_link": 1,
            "on_img": "man_on.gif",
            "id": str(user.nid),
        },
        # Like the real check answer: no counters here (they are added per answer, see
        # _with_counters), but these flags.
        "confirm_phone": 0,
        "color": 0,
    }
    return json.dumps(attributes, separators=(",", ":")).encode()


def _with_counters(attributes: bytes, state: FakeState) -> bytes:
    """A session's attributes with today's counters at their top level, as the site has them."""
    counts = state.top_counts
    return attributes[:-1] + b',"journalTbNm":%d,"lentaTbNm":%d,"mailTbNm":%d}' % (
        counts["1"],
        counts["2"],
        counts["3"],
    )


Handler = Callable[[web.Request, FakeState, dict[str, str]], web.Response]


def _login(request: web.Request, state: FakeState, form: dict[str, str]) -> web.Response:
    login, password = form.get("login", "").strip(), form.get("password", "")
    if not login or not password:
        return _answer("01002")
    user = state.find_user(login)
    if user is None:
        return _answer("00003")
    base = _base(request, state)
    if user.captcha_required:
        answer = form.get("code", "").strip()
        if not answer:
            return _captcha_answer(request, state, "00001")
        # The answer counts only with the cookie its picture was handed out with.
        issued = state.captchas.pop(request.cookies.get("sid", ""), None)
        if issued is None or answer != state.captcha_answer:
            return _captcha_answer(request, state, "00004")
    if password != user.password:
        return _answer("01003")
    sid = f"{secrets.randbelow(10**16):016d}"
    session = _Session(user.nid, _attributes(user, sid, base))
    state.sessions[sid] = session
    body = b'"attributes":' + _with_counters(session.attributes, state) + b","
    response = _answer("00000", body)
    response.set_cookie("sid", sid, path="/")  # the real site sets one too
    return response


def _check(request: web.Request, state: FakeState, form: dict[str, str]) -> web.Response:
    sid = request.cookies.get("sid", "")
    session = state.live_session(sid, _base(request, state))
    if session is None:
        if sid in state.replaced:  # another sign-in took its place
            return _answer(AUTH_ERROR, _fields({"auth_errror": 1}))
        return _answer("01001")  # what clients see for unknown, expired or logged-out SIDs
    return _answer("00000", b'"attributes":' + _with_counters(session.attributes, state) + b",")


def _logout(request: web.Request, state: FakeState, form: dict[str, str]) -> web.Response:
    if state.sessions.pop(request.cookies.get("sid", ""), None) is None:
        return _answer("01001")
    return _answer("00000")


def _oauth_links(request: web.Request, state: FakeState, form: dict[str, str]) -> web.Response:
    base, sid = state.oauth_base, f"{secrets.randbelow(10**16):016d}"
    ck = sid[-4:]
    urls = {
        f"{provider}_login_URL": (
            f"{base}/oauth/?CK={ck}&amp;P={number}&amp;redirect_uri=registration/external/"
            f"&amp;sid={sid}&amp;state=CK:{ck},Link_id:0,S:{number},sid:{sid}"
        )
        for number, provider in enumerate(("vk", "ok", "mail_ru", "facebook", "google"), 1)
    }
    return _answer("00000", _fields({"urls": urls}))


def _top_counts(request: web.Request, state: FakeState, form: dict[str, str]) -> web.Response:
    if state.live_session(request.cookies.get("sid", ""), _base(request, state)) is None:
        return _answer("01001")
    return _answer("00000", _fields(state.top_counts))  # "1", "2", "3" at the top level


_METHODS: Final[dict[tuple[str, str], Handler]] = {
    ("session", "login"): _login,
    ("session", "check"): _check,
    ("session", "logout"): _logout,
    ("common", "getOAuthLinks"): _oauth_links,
    ("common", "getTopCounts"): _top_counts,
}


@dataclass
class FakeMirror:
    """One address of the site: its own URL and its own fault mode ("ok" follows the
    state's mode)."""

    url: str = ""
    mode: str = "ok"

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {sorted(MODES)}")
        self.mode = mode


STATE_KEY: Final = web.AppKey("spaces_state", FakeState)
MIRROR_KEY: Final = web.AppKey("spaces_mirror", FakeMirror)
_BOUNDARY: Final = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_PART_NAME: Final = re.compile(rb'Content-Disposition:[^\r\n]*?\bname="([^"]*)"', re.IGNORECASE)


def _parse_form(body: bytes, content_type: str) -> dict[str, str] | None:
    """Plain multipart fields; about 5x faster than aiohttp's `request.post()` for `check`.

    File parts are skipped; None means the body is not valid multipart.
    """
    match = _BOUNDARY.search(content_type)
    if match is None:
        return None
    delimiter = b"--" + match.group(1).encode()
    chunks = body.split(delimiter)
    if len(chunks) < 2 or not chunks[-1].startswith(b"--"):
        return None
    form: dict[str, str] = {}
    for chunk in chunks[1:-1]:
        head, separator, value = chunk.partition(b"\r\n\r\n")
        name = _PART_NAME.search(head)
        if not separator or name is None or not value.endswith(b"\r\n"):
            return None
        if b"filename=" in head:
            continue
        try:
            form[name.group(1).decode()] = value[:-2].decode()
        except UnicodeDecodeError:
            return None
    return form


async def _neoapi(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    endpoint = request.match_info["endpoint"]
    multipart = request.method == "POST" and request.content_type == "multipart/form-data"
    form: dict[str, str] = {}
    if multipart:
        parsed = _parse_form(await request.read(), request.headers.get("Content-Type", ""))
        if parsed is None:
            return web.Response(status=400, text="fake spaces: malformed multipart body")
        form = parsed
    method = form.get("method", "")
    state.record(endpoint, method, form, request.cookies.get("sid"), request.app[MIRROR_KEY].url)

    # Transport-level faults come first: they are the site or a proxy failing.
    mirror_mode = request.app[MIRROR_KEY].mode
    mode = mirror_mode if mirror_mode != "ok" else state.mode
    if mode == "http500":
        return web.Response(status=500, text="Internal Server Error")
    if mode == "html":
        return _html()
    if mode == "badjson":
        return web.Response(text='{"code":', content_type="application/json")
    if mode == "timeout":
        await state.stall()
        return web.Response(status=504, text="stalled")
    if mode == "slow":  # a slow site that does answer, in the end
        await asyncio.sleep(state.slow_seconds)
    if mode == "gzipbomb":
        return web.Response(
            body=gzip_bomb(),
            content_type="application/json",
            headers={"Content-Encoding": "gzip, gzip"},
        )
    if state.mode == "drip":
        return await _drip(request, state)

    if request.headers.get("X-Proxy") != "spaces" or request.cookies.get("json") != "1":
        return _html()  # like the real site: no JSON without both
    if not multipart:
        return web.Response(status=400, text="fake spaces: POST multipart/form-data required")
    if mode == "ratelimit":
        return _answer("00007")
    override = state.pop_override(method)
    if override is not None:
        extra = dict(override.extra)
        needs_picture = override.code in CAPTCHA_CODES or (
            override.code == AUTH_ERROR and extra.get("auth_errror") == 8
        )
        if needs_picture and "captcha_url" not in extra:
            return _captcha_answer(request, state, override.code, extra)
        return _answer(override.code, _fields(extra))
    handler = _METHODS.get((endpoint, method))
    if handler is None:
        return _answer("00002")
    return handler(request, state, form)


async def _drip(request: web.Request, state: FakeState) -> web.StreamResponse:
    """A body that never ends: a space every 0.1 s until the client goes or the mode changes."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    while state.mode == "drip":
        await response.write(b" ")
        await asyncio.sleep(0.1)
    await response.write_eof()
    return response


CAPTCHA_PICTURES: Final = frozenset({"png", "huge", "endless"})
_ENDLESS_LIMIT: Final = 256 * 1024 * 1024  # "endless", yet a test run cannot hang on it


async def _captcha(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    name = _CAPTCHA_NAME.fullmatch(request.match_info["name"])
    if name is None:
        raise web.HTTPNotFound()
    # Like the site: a picture is shown only to the attempt it was handed out to.
    if state.captchas.get(request.cookies.get("sid", "")) != name.group(1):
        raise web.HTTPForbidden()
    if state.captcha_picture == "huge":
        return web.Response(body=CAPTCHA_PNG + b"\0" * (2 * 1024 * 1024), content_type="image/png")
    if state.captcha_picture == "endless":
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        chunk, sent = CAPTCHA_PNG + b"\0" * (64 * 1024), 0
        with contextlib.suppress(ConnectionError):
            while sent < _ENDLESS_LIMIT:  # until the client hangs up
                await response.write(chunk)
                sent += len(chunk)
        return response
    return web.Response(body=CAPTCHA_PNG, content_type="image/png")


async def _site_page(request: web.Request) -> web.Response:
    return _html()


# -- admin ------------------------------------------------------------------------------

AdminHandler = Callable[[FakeState, dict[str, Any]], Any]


def _admin_users(state: FakeState, body: dict[str, Any]) -> Any:
    state.add_user(
        str(body["login"]),
        str(body["password"]),
        int(body["nid"]),
        str(body["name"]),
        aliases=[str(a) for a in body.get("aliases") or ()],
        captcha=bool(body.get("captcha", False)),
    )
    return {"ok": True}


def _admin_mode(state: FakeState, body: dict[str, Any]) -> Any:
    state.set_mode(str(body["mode"]))
    return {"ok": True, "mode": state.mode}


def _admin_expire(state: FakeState, body: dict[str, Any]) -> Any:
    nid = body.get("nid")
    sid = body.get("sid")
    if sid is None and nid is None:
        raise ValueError("give sid or nid")
    expired = state.expire(
        sid=None if sid is None else str(sid), nid=None if nid is None else int(nid)
    )
    return {"ok": True, "expired": expired}


def _admin_next_code(state: FakeState, body: dict[str, Any]) -> Any:
    state.next_code(str(body["method"]), str(body["code"]), body.get("extra"))
    return {"ok": True}


def _admin_captcha(state: FakeState, body: dict[str, Any]) -> Any:
    answer = body.get("answer")
    state.set_captcha(
        str(body["login"]),
        bool(body.get("required", True)),
        None if answer is None else str(answer),
    )
    return {"ok": True}


def _admin_counters(state: FakeState, body: dict[str, Any]) -> Any:
    state.set_counters(int(body["journal"]), int(body["feed"]), int(body["mail"]))
    return {"ok": True}


def _admin_accept_any_sid(state: FakeState, body: dict[str, Any]) -> Any:
    state.accept_any_sid = bool(body["on"])
    return {"ok": True, "on": state.accept_any_sid}


def _admin_replace(state: FakeState, body: dict[str, Any]) -> Any:
    return {"ok": True, "replaced": state.replace_sessions(int(body["nid"]))}


def _admin_captcha_cookie(state: FakeState, body: dict[str, Any]) -> Any:
    domain = body.get("domain")
    state.captcha_cookie_domain = None if domain is None else str(domain)
    return {"ok": True}


def _admin_captcha_picture(state: FakeState, body: dict[str, Any]) -> Any:
    kind = str(body["kind"])
    if kind not in CAPTCHA_PICTURES:
        raise ValueError(f"unknown picture {kind!r}; one of {sorted(CAPTCHA_PICTURES)}")
    state.captcha_picture = kind
    return {"ok": True}


def _admin_oauth_base(state: FakeState, body: dict[str, Any]) -> Any:
    state.oauth_base = str(body["base"]).rstrip("/")
    return {"ok": True}


def _admin_reset(state: FakeState, body: dict[str, Any]) -> Any:
    state.reset()
    return {"ok": True}


def _admin_calls(state: FakeState, body: dict[str, Any]) -> Any:
    return state.calls_summary()


def _admin_sessions(state: FakeState, body: dict[str, Any]) -> Any:
    return {"sessions": {sid: s.nid for sid, s in state.sessions.items()}}


def _admin(handler: AdminHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        body: Any = {}
        if request.method == "POST" and request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return web.json_response({"error": "body is not JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "body must be an object"}, status=400)
        try:
            result = handler(request.app[STATE_KEY], body)
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
        return web.json_response(result)

    return handle


async def _admin_mirror_mode(request: web.Request) -> web.Response:
    """This mirror's own fault mode (the others sharing the state keep theirs)."""
    try:
        body = await request.json()
        request.app[MIRROR_KEY].set_mode(str(body["mode"]))
    except (KeyError, TypeError, ValueError) as exc:
        return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
    return web.json_response({"ok": True, "mode": request.app[MIRROR_KEY].mode})


def build_app(state: FakeState, mirror: FakeMirror | None = None) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = state
    app[MIRROR_KEY] = mirror or FakeMirror()
    app.router.add_post("/__admin/mirror_mode", _admin_mirror_mode)
    admin_posts = {
        "replace": _admin_replace,
        "captcha_cookie": _admin_captcha_cookie,
        "oauth_base": _admin_oauth_base,
        "captcha_picture": _admin_captcha_picture,
        "users": _admin_users,
        "mode": _admin_mode,
        "expire": _admin_expire,
        "next_code": _admin_next_code,
        "captcha": _admin_captcha,
        "counters": _admin_counters,
        "accept_any_sid": _admin_accept_any_sid,
        "reset": _admin_reset,
    }
    for name, handler in admin_posts.items():
        app.router.add_post(f"/__admin/{name}", _admin(handler))
    app.router.add_get("/__admin/calls", _admin(_admin_calls))
    app.router.add_get("/__admin/sessions", _admin(_admin_sessions))
    app.router.add_route("*", "/neoapi/{endpoint}", _neoapi)
    app.router.add_get("/captcha/{name}", _captcha)
    app.router.add_get("/{tail:.*}", _site_page)
    return app


# -- running it -------------------------------------------------------------------------


class FakeSpaces:
    """The fake on 127.0.0.1 and a free port, for `async with` in tests; give it another
    fake's `state` to be a second mirror of the same site."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, state: FakeState | None = None
    ) -> None:
        self.state = state or FakeState()
        self.mirror = FakeMirror()
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        # The app reads the mirror's URL only per request, so it may be set once serving.
        app = build_app(self.state, self.mirror)
        self._runner, self.url = await serve_app(app, self._host, self._port)
        self.mirror.url = self.url
        self.state.base_url = self.state.base_url or self.url

    async def stop(self) -> None:
        self.state.wake_stalled()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class FakeSpacesControl:
    """Drives a fake (in-process or not) over /__admin/, mirroring FakeState's methods."""

    def __init__(
        self, base_url: str, *, http: httpx.AsyncClient | None = None, timeout: float = 10.0
    ) -> None:
        self._base = base_url.rstrip("/")
        self._own_http = http is None
        # trust_env=False: a proxy from the environment must never see test traffic.
        self._http = http or httpx.AsyncClient(timeout=timeout, trust_env=False)

    async def _request(self, verb: str, name: str, body: dict[str, Any] | None = None) -> Any:
        response = await self._http.request(verb, f"{self._base}/__admin/{name}", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"fake spaces admin {name}: {response.text}")
        return response.json()

    async def add_user(
        self,
        login: str,
        password: str,
        nid: int,
        name: str,
        *,
        aliases: Iterable[str] = (),
        captcha: bool = False,
    ) -> None:
        body = {"login": login, "password": password, "nid": nid, "name": name}
        await self._request("POST", "users", {**body, "aliases": list(aliases), "captcha": captcha})

    async def set_mode(self, mode: str) -> None:
        await self._request("POST", "mode", {"mode": mode})

    async def expire(self, *, sid: str | None = None, nid: int | None = None) -> int:
        body: dict[str, Any] = {"sid": sid} if sid is not None else {"nid": nid}
        return int((await self._request("POST", "expire", body))["expired"])

    async def next_code(
        self, method: str, code: str, extra: Mapping[str, Any] | None = None
    ) -> None:
        body = {"method": method, "code": code, "extra": dict(extra or {})}
        await self._request("POST", "next_code", body)

    async def set_captcha(self, login: str, required: bool, answer: str | None = None) -> None:
        body = {"login": login, "required": required, "answer": answer}
        await self._request("POST", "captcha", body)

    async def set_counters(self, journal: int, feed: int, mail: int) -> None:
        await self._request("POST", "counters", {"journal": journal, "feed": feed, "mail": mail})

    async def replace_sessions(self, nid: int) -> int:
        return int((await self._request("POST", "replace", {"nid": nid}))["replaced"])

    async def set_captcha_cookie_domain(self, domain: str | None) -> None:
        await self._request("POST", "captcha_cookie", {"domain": domain})

    async def set_captcha_picture(self, kind: str) -> None:
        """ "png", "huge" or "endless"."""
        await self._request("POST", "captcha_picture", {"kind": kind})

    async def set_oauth_base(self, base: str) -> None:
        await self._request("POST", "oauth_base", {"base": base})

    async def set_mirror_mode(self, mode: str) -> None:
        """The fault mode of the mirror this control talks to."""
        await self._request("POST", "mirror_mode", {"mode": mode})

    async def accept_any_sid(self, on: bool = True) -> None:
        """Treat every unknown SID as a live session (check, getTopCounts); for benchmarks."""
        await self._request("POST", "accept_any_sid", {"on": on})

    async def calls_summary(self) -> dict[str, Any]:
        """{"counts": {method: n}, "calls": [{endpoint, method, fields, sid}, ...]}"""
        result: dict[str, Any] = await self._request("GET", "calls")
        return result

    async def counts(self) -> dict[str, int]:
        return {k: int(v) for k, v in (await self.calls_summary())["counts"].items()}

    async def sessions(self) -> dict[str, int]:
        return {k: int(v) for k, v in (await self._request("GET", "sessions"))["sessions"].items()}

    async def reset(self) -> None:
        await self._request("POST", "reset", {})

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class FakeSpacesProcess:
    """Runs `python -m tests.fakes.spaces_server` and waits for its READY line."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        mirrors: int = 1,
        ready_timeout: float = 20.0,
    ) -> None:
        self._args = ["--host", host, "--port", str(port), "--mirrors", str(mirrors)]
        self._ready_timeout = ready_timeout
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        self.urls: list[str] = []

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.fakes.spaces_server",
            *self._args,
            cwd=_REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), self._ready_timeout)
        except TimeoutError:
            await self.stop()
            raise RuntimeError("fake spaces did not become ready") from None
        ready, *urls = line.decode().split()
        if ready != "READY" or not urls:
            await self.stop()
            raise RuntimeError(f"fake spaces printed {line!r} instead of READY")
        self.urls = urls
        self.url = urls[0]

    def control(self) -> FakeSpacesControl:
        return FakeSpacesControl(self.url)

    async def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL as a last resort; returns the exit code."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                process.kill()
                await process.wait()
        return process.returncode

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve(host: str, port: int, mirrors: int = 1) -> None:
    """Run until SIGTERM/SIGINT; announce the URLs (one per mirror, sharing one state) on
    stdout once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    first = FakeSpaces(host=host, port=port)
    fakes = [first, *(FakeSpaces(host=host, state=first.state) for _ in range(mirrors - 1))]
    for fake in fakes:
        await fake.start()
    try:
        print("READY " + " ".join(fake.url for fake in fakes), flush=True)
        await stop.wait()
    finally:
        for fake in fakes:
            await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Spaces.ru neoapi server for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--mirrors", type=int, default=1, help="addresses sharing one site")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, max(1, args.mirrors)))


if __name__ == "__main__":
    main()
