"""A fake sendspace REST API for tests, built from the published doc (auth.* methods).

In-process::

    async with FakeSendspace() as fake:
        client = SendspaceClient(httpx.AsyncHTTPTransport(), API_KEY, fake.url)
        fake.state.expire(user="alice")          # auth.checkSession now says "expired"
        fake.state.set_mode("html")

Separate process (end-to-end tests)::

    python -m tests.fakes.sendspace_server [--host 127.0.0.1] [--port 0]
    # prints one line "READY http://127.0.0.1:<port>/rest/", runs until SIGTERM/SIGINT

Both are driven the same way over HTTP under /__admin/ (FakeSendspaceControl), and the
in-process FakeSendspaceState has synchronous methods of the same names. Every request is
recorded whole (query string and body), so tests can prove a password never arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import secrets
import signal
import sys
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import httpx
from aiohttp import web

from tests.fakes import serve_app

API_KEY: Final = "TESTAPIKEY42"
CALLS_KEPT: Final = 1000
_REPO_ROOT: Final = Path(__file__).resolve().parents[2]
HUGE_BYTES: Final = 2 * 1024 * 1024
MODES: Final = frozenset(
    {
        "ok",
        "http500",  # every answer a 500 page
        "html",  # a maintenance web page with status 200
        "badxml",  # a cut-off XML body
        "timeout",  # no answer until the mode changes or the stall ends
        "entities",  # an entity-expansion ("billion laughs") document
        "entities_utf16",  # the same in UTF-16, which a byte scan for "<!DOCTYPE" misses
        "huge",  # a valid start of a <result> that goes on for megabytes
    }
)
# The doc's "Errors" table, the texts the real API sends with each code.
ERROR_TEXTS: Final = {
    1: "No method parameter in request",
    2: "Unknown method",
    3: "Session key parameter missing",
    4: "Method parameter(s) missing",
    5: "Unknown or unsupported API version",
    6: "Session expired or not found",
    7: "Session not authenticated",
    8: "Authentication error",
    11: "Permission denied",
    15: "System maintenance, try again later",
    18: "Unknown API key sent",
    25: "The application version you are using is too old. Please upgrade it.",
    30: "Too many sessions open for your user account. Please close previous sessions.",
}


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


@dataclass
class FakeAccount:
    user_name: str
    password: str
    email: str
    membership_type: str = "lite"
    bandwidth_left: int = 5 * 1024**3
    diskspace_left: int = -1


@dataclass(slots=True)
class _Session:
    user: str  # lower-cased user name
    state: str = "ok"  # "ok" | "expired" | "not_auth"


@dataclass(frozen=True, slots=True)
class RecordedCall:
    method: str  # lower-cased, as dispatched
    params: dict[str, str]  # query and form arguments, as received
    raw: str  # the request target and body, exactly as they arrived (decoded leniently)


EXPIRY_KINDS: Final = frozenset({"expired", "not_found", "not_auth"})


class FakeSendspaceState:
    """Everything the fake knows; tests may read and change it directly."""

    def __init__(self) -> None:
        self.timeout_seconds = 30.0  # how long "timeout" mode stalls; longer than any client
        self._wake = asyncio.Event()
        self.reset()

    def reset(self) -> None:
        self.api_keys: set[str] = {API_KEY}
        self.accounts: dict[str, FakeAccount] = {}
        self.tokens: set[str] = set()  # issued and not yet used
        self.sessions: dict[str, _Session] = {}
        self.mode = "ok"
        self.next_errors: dict[str, deque[int]] = {}
        self.counts: Counter[str] = Counter()
        self.calls: deque[RecordedCall] = deque(maxlen=CALLS_KEPT)
        self.wake_stalled()
        self.add_account("alice", "s3cret-Pass", "alice@example.com")

    # -- control, mirrored by FakeSendspaceControl ---------------------------------------

    def add_account(self, user_name: str, password: str, email: str) -> FakeAccount:
        account = FakeAccount(user_name, password, email)
        self.accounts[user_name.lower()] = account
        return account

    def open_session(self, user_name: str, *, session_key: str | None = None) -> str:
        """A live session of `user_name` without a login (for tests that need one ready)."""
        key = session_key or secrets.token_hex(16)
        self.sessions[key] = _Session(user_name.lower())
        return key

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {sorted(MODES)}")
        self.mode = mode
        if mode != "timeout":
            self.wake_stalled()

    def expire(
        self, *, session_key: str | None = None, user: str | None = None, kind: str = "expired"
    ) -> int:
        """End one session or all of a user's: "expired" (checkSession says so),
        "not_found" (error 6) or "not_auth" (error 7). Returns how many."""
        if kind not in EXPIRY_KINDS:
            raise ValueError(f"unknown kind {kind!r}; one of {sorted(EXPIRY_KINDS)}")
        doomed = [
            key
            for key, session in self.sessions.items()
            if key == session_key or (user is not None and session.user == user.lower())
        ]
        for key in doomed:
            if kind == "not_found":
                del self.sessions[key]
            else:
                self.sessions[key].state = kind
        return len(doomed)

    def next_error(self, method: str, code: int) -> None:
        """The next call of `method` fails with `code`, once."""
        self.next_errors.setdefault(method.lower(), deque()).append(int(code))

    def calls_summary(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "calls": [asdict(c) for c in self.calls]}

    def live_sessions(self) -> dict[str, str]:
        return {key: s.user for key, s in self.sessions.items() if s.state == "ok"}

    # -- helpers for the handlers --------------------------------------------------------

    async def stall(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.timeout_seconds)

    def wake_stalled(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()


# -- answers ----------------------------------------------------------------------------


def _xml(body: str) -> web.Response:
    return web.Response(
        text='<?xml version="1.0" encoding="UTF-8"?>\n' + body, content_type="text/xml"
    )


def _ok(method: str, inner: str) -> web.Response:
    return _xml(f'<result method="{escape(method)}" status="ok">\n{inner}</result>\n')


def _fail(method: str, code: int) -> web.Response:
    text = escape(ERROR_TEXTS.get(code, "Error"))
    return _xml(
        f'<result method="{escape(method)}" status="fail">\n'
        f'    <error code="{code}" text="{text}"/>\n</result>\n'
    )


def _fields(values: Mapping[str, object]) -> str:
    return "".join(f"    <{tag}>{escape(str(value))}</{tag}>\n" for tag, value in values.items())


_LAUGHS: Final = (
    '<?xml version="1.0"?>\n<!DOCTYPE result [\n  <!ENTITY lol "lol">\n'
    + "".join(
        f'  <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
        for i in range(1, 10)
    )
    + ']>\n<result method="auth.checkSession" status="ok"><session>&lol9;</session></result>\n'
)


Handler = Callable[[FakeSendspaceState, dict[str, str]], web.Response]


def _create_token(state: FakeSendspaceState, args: dict[str, str]) -> web.Response:
    method = "auth.createToken"
    if not args.get("api_key") or not args.get("api_version"):
        return _fail(method, 4)
    if args["api_key"] not in state.api_keys:
        return _fail(method, 18)
    if args["api_version"] != "1.0":
        return _fail(method, 5)
    token = secrets.token_hex(16)
    state.tokens.add(token)
    return _ok(method, _fields({"token": token}))


def _login(state: FakeSendspaceState, args: dict[str, str]) -> web.Response:
    method = "auth.login"
    token, user, tokened = (args.get(k, "") for k in ("token", "user_name", "tokened_password"))
    if not token or not user or not tokened:
        return _fail(method, 4)
    if token not in state.tokens:
        return _fail(method, 6)
    state.tokens.discard(token)  # one login attempt per token
    account = state.accounts.get(user.lower())
    if account is None or tokened != md5_hex(token + md5_hex(account.password)):
        return _fail(method, 8)
    session_key = secrets.token_hex(16)
    state.sessions[session_key] = _Session(user.lower())
    return _ok(
        method,
        _fields(
            {
                "session_key": session_key,
                "email": account.email,
                "membership_type": account.membership_type,
                "membership_ends": 0,
                "capable_upload": 1,
                "capable_download": 1,
                "capable_folders": 1,
                "capable_files": 1,
                "bandwidth_left": account.bandwidth_left,
                "diskspace_left": account.diskspace_left,
            }
        ),
    )


def _session_of(
    state: FakeSendspaceState, args: dict[str, str], method: str
) -> _Session | web.Response:
    key = args.get("session_key", "")
    if not key:
        return _fail(method, 3)
    session = state.sessions.get(key)
    if session is None:
        return _fail(method, 6)
    if session.state == "not_auth":
        return _fail(method, 7)
    return session


def _check_session(state: FakeSendspaceState, args: dict[str, str]) -> web.Response:
    method = "auth.checkSession"
    session = _session_of(state, args, method)
    if isinstance(session, web.Response):
        return session
    account = state.accounts.get(session.user)
    values: dict[str, object] = {"session": "ok" if session.state == "ok" else "expired"}
    if account is not None:
        values |= {
            "bandwidth_left": account.bandwidth_left,
            "diskspace_left": account.diskspace_left,
        }
    return _ok(method, _fields(values))


def _logout(state: FakeSendspaceState, args: dict[str, str]) -> web.Response:
    method = "auth.logout"
    session = _session_of(state, args, method)
    if isinstance(session, web.Response):
        return session
    if session.state == "expired":
        return _fail(method, 6)
    del state.sessions[args["session_key"]]
    return _ok(method, _fields({"status": "ok"}))


_METHODS: Final[dict[str, Handler]] = {
    "auth.createtoken": _create_token,
    "auth.login": _login,
    "auth.checksession": _check_session,
    "auth.logout": _logout,
}

STATE_KEY: Final = web.AppKey("sendspace_state", FakeSendspaceState)


async def _rest(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    body = await request.read()
    args = dict(request.query)
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        args |= {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    method = args.get("method", "").lower()
    state.counts[method] += 1
    raw = request.path_qs + "\n" + body.decode("utf-8", "replace")
    state.calls.append(RecordedCall(method, args, raw))

    # Transport-level faults come first: they are the site or a proxy failing.
    if state.mode == "http500":
        return web.Response(status=500, text="Internal Server Error")
    if state.mode == "html":
        return web.Response(
            text="<!DOCTYPE html><html><body><h1>Maintenance</h1></body></html>",
            content_type="text/html",
        )
    if state.mode == "badxml":
        return web.Response(text='<result method="x" status="ok"><sess', content_type="text/xml")
    if state.mode == "timeout":
        await state.stall()
        return web.Response(status=504, text="stalled")
    if state.mode == "entities":
        return web.Response(text=_LAUGHS, content_type="text/xml")
    if state.mode == "entities_utf16":
        document = _LAUGHS.replace(
            '<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>'
        )
        return web.Response(body=document.encode("utf-16"), content_type="text/xml")
    if state.mode == "huge":
        return await _huge(request)

    if not method:
        return _fail("", 1)
    override = state.next_errors.get(method)
    if override:
        return _fail(method, override.popleft())
    handler = _METHODS.get(method)
    if handler is None:
        return _fail(method, 2)
    return handler(state, args)


async def _huge(request: web.Request) -> web.StreamResponse:
    """Valid XML that never ends in time: no Content-Length, streamed in chunks."""
    response = web.StreamResponse(headers={"Content-Type": "text/xml"})
    await response.prepare(request)
    await response.write(b'<result method="auth.checkSession" status="ok"><session>')
    chunk = b"ok" * 32 * 1024
    with contextlib.suppress(ConnectionError):
        for _ in range(HUGE_BYTES // len(chunk)):
            await response.write(chunk)
        await response.write(b"</session></result>")
        await response.write_eof()
    return response


# -- admin ------------------------------------------------------------------------------

AdminHandler = Callable[[FakeSendspaceState, dict[str, Any]], Any]


def _admin_accounts(state: FakeSendspaceState, body: dict[str, Any]) -> Any:
    state.add_account(str(body["user_name"]), str(body["password"]), str(body["email"]))
    return {"ok": True}


def _admin_mode(state: FakeSendspaceState, body: dict[str, Any]) -> Any:
    state.set_mode(str(body["mode"]))
    return {"ok": True, "mode": state.mode}


def _admin_expire(state: FakeSendspaceState, body: dict[str, Any]) -> Any:
    key, user = body.get("session_key"), body.get("user")
    if key is None and user is None:
        raise ValueError("give session_key or user")
    expired = state.expire(
        session_key=None if key is None else str(key),
        user=None if user is None else str(user),
        kind=str(body.get("kind", "expired")),
    )
    return {"ok": True, "expired": expired}


def _admin_next_error(state: FakeSendspaceState, body: dict[str, Any]) -> Any:
    state.next_error(str(body["method"]), int(body["code"]))
    return {"ok": True}


def _admin_reset(state: FakeSendspaceState, body: dict[str, Any]) -> Any:
    state.reset()
    return {"ok": True}


def _admin_calls(state: FakeSendspaceState, body: dict[str, Any]) -> Any:
    return state.calls_summary()


def _admin_sessions(state: FakeSendspaceState, body: dict[str, Any]) -> Any:
    return {"sessions": state.live_sessions()}


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


def build_app(state: FakeSendspaceState) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = state
    posts = {
        "accounts": _admin_accounts,
        "mode": _admin_mode,
        "expire": _admin_expire,
        "next_error": _admin_next_error,
        "reset": _admin_reset,
    }
    for name, handler in posts.items():
        app.router.add_post(f"/__admin/{name}", _admin(handler))
    app.router.add_get("/__admin/calls", _admin(_admin_calls))
    app.router.add_get("/__admin/sessions", _admin(_admin_sessions))
    app.router.add_route("GET", "/rest/", _rest)
    app.router.add_route("POST", "/rest/", _rest)
    return app


# -- running it -------------------------------------------------------------------------


class FakeSendspace:
    """The fake on 127.0.0.1 and a free port, for `async with` in tests; `url` is the API's
    base URL (what SENDSPACE_BASE_URL would be)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = FakeSendspaceState()
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self.origin = ""
        self.url = ""

    async def start(self) -> None:
        self._runner, self.origin = await serve_app(build_app(self.state), self._host, self._port)
        self.url = f"{self.origin}/rest/"

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


class FakeSendspaceControl:
    """Drives a fake (in-process or not) over /__admin/, mirroring the state's methods."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        url = httpx.URL(base_url)
        self._origin = f"{url.scheme}://{url.netloc.decode()}"
        # trust_env=False: a proxy from the environment must never see test traffic.
        self._http = httpx.AsyncClient(timeout=timeout, trust_env=False)

    async def _request(self, verb: str, name: str, body: dict[str, Any] | None = None) -> Any:
        response = await self._http.request(verb, f"{self._origin}/__admin/{name}", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"fake sendspace admin {name}: {response.text}")
        return response.json()

    async def add_account(self, user_name: str, password: str, email: str) -> None:
        body = {"user_name": user_name, "password": password, "email": email}
        await self._request("POST", "accounts", body)

    async def set_mode(self, mode: str) -> None:
        await self._request("POST", "mode", {"mode": mode})

    async def expire(
        self, *, session_key: str | None = None, user: str | None = None, kind: str = "expired"
    ) -> int:
        body: dict[str, Any] = {"session_key": session_key, "user": user, "kind": kind}
        body = {k: v for k, v in body.items() if v is not None}
        return int((await self._request("POST", "expire", body))["expired"])

    async def next_error(self, method: str, code: int) -> None:
        await self._request("POST", "next_error", {"method": method, "code": code})

    async def calls_summary(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "calls")
        return result

    async def sessions(self) -> dict[str, str]:
        return {k: str(v) for k, v in (await self._request("GET", "sessions"))["sessions"].items()}

    async def reset(self) -> None:
        await self._request("POST", "reset", {})

    async def aclose(self) -> None:
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


class FakeSendspaceProcess:
    """Runs `python -m tests.fakes.sendspace_server` and waits for its READY line."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, ready_timeout: float = 20.0
    ) -> None:
        self._args = ["--host", host, "--port", str(port)]
        self._ready_timeout = ready_timeout
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.fakes.sendspace_server",
            *self._args,
            cwd=_REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), self._ready_timeout)
        except TimeoutError:
            await self.stop()
            raise RuntimeError("fake sendspace did not become ready") from None
        ready, _, url = line.decode().strip().partition(" ")
        if ready != "READY" or not url:
            await self.stop()
            raise RuntimeError(f"fake sendspace printed {line!r} instead of READY")
        self.url = url

    def control(self) -> FakeSendspaceControl:
        return FakeSendspaceControl(self.url)

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


async def serve(host: str, port: int) -> None:
    """Run until SIGTERM/SIGINT; announce the API's base URL on stdout once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    fake = FakeSendspace(host=host, port=port)
    await fake.start()
    try:
        print(f"READY {fake.url}", flush=True)
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake sendspace REST API for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
