"""The sendspace REST client: the auth.* methods, one request per call, no retries.

Like SpacesClient it talks to the bot's shared httpx transport directly (no cookies, no
redirects followed), with per-phase timeouts plus one overall deadline per request, and
reads at most `max_answer_bytes` of an answer. Requests are GETs with the arguments in the
query string, as the doc's usage examples send them; the URL is never logged, since it
carries the API key or a session key. The password never leaves this process: auth.login
gets `tokened_password`, an MD5 over a one-time token and the password's MD5.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import httpx

from bot.remote import TransientReason
from bot.sendspace import _xml
from bot.sendspace.errors import SendspaceAPIError, SendspaceUnavailable

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL: Final = "https://api.sendspace.com/rest/"
API_VERSION: Final = "1.0"
# Method names as the doc's usage examples spell them (its answers echo mixed case).
CREATE_TOKEN: Final = "auth.createtoken"
LOGIN: Final = "auth.login"
CHECK_SESSION: Final = "auth.checksession"
LOGOUT: Final = "auth.logout"
_MAX_ANSWER_BYTES: Final = 64 * 1024  # an auth answer is a few hundred bytes


def tokened_password(token: str, password: str) -> str:
    """lowercase(md5(token + lowercase(md5(password)))), as auth.login expects it."""
    inner = hashlib.md5(password.encode(), usedforsecurity=False).hexdigest()
    return hashlib.md5((token + inner).encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class Login:
    """What auth.login answers: the session key and the account's standing."""

    session_key: str = field(repr=False)
    email: str | None
    membership_type: str | None
    bandwidth_left: int | None  # bytes; -1 is unlimited
    diskspace_left: int | None  # bytes; -1 is unlimited


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """What auth.checkSession answers."""

    alive: bool  # <session>ok</session>; False for "expired"
    bandwidth_left: int | None
    diskspace_left: int | None


class SendspaceClient:
    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 10.0,
        max_answer_bytes: int = _MAX_ANSWER_BYTES,
        app_version: str | None = None,
        user_agent: str = "spaces-bridge-bot",
    ) -> None:
        if not api_key.strip():
            raise ValueError("a sendspace API key is needed")
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL:
            raise ValueError("base_url must be an absolute http(s) URL") from None
        if url.scheme not in ("http", "https") or not url.host or url.userinfo:
            raise ValueError("base_url must be an absolute http(s) URL")
        self._transport = transport
        self._api_key = api_key.strip()
        self._url = url.copy_with(query=None, fragment=None)
        self._timeout = timeout
        self._extensions = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout)}
        self._max_answer_bytes = max_answer_bytes
        self._app_version = app_version
        self._user_agent = user_agent

    def __repr__(self) -> str:
        return f"SendspaceClient({str(self._url)!r})"

    async def create_token(self) -> str:
        params = {
            "method": CREATE_TOKEN,
            "api_key": self._api_key,
            "api_version": API_VERSION,
            "response_format": "xml",
        }
        if self._app_version:
            params["app_version"] = self._app_version
        answer = await self._call(params)
        return _required_text(answer, "token", CREATE_TOKEN)

    async def login(self, user_name: str, password: str) -> Login:
        """auth.createToken then auth.login; the password is only hashed into the second."""
        token = await self.create_token()
        answer = await self._call(
            {
                "method": LOGIN,
                "token": token,
                "user_name": user_name,
                "tokened_password": tokened_password(token, password),
            }
        )
        return Login(
            session_key=_required_text(answer, "session_key", LOGIN),
            email=answer.child_text("email") or None,
            membership_type=answer.child_text("membership_type") or None,
            bandwidth_left=_integer(answer.child_text("bandwidth_left")),
            diskspace_left=_integer(answer.child_text("diskspace_left")),
        )

    async def check_session(self, session_key: str) -> SessionStatus:
        answer = await self._call({"method": CHECK_SESSION, "session_key": session_key})
        state = (answer.child_text("session") or "").lower()
        if state not in ("ok", "expired"):
            logger.debug("sendspace %s -> session state not ok/expired", CHECK_SESSION)
            raise SendspaceUnavailable(TransientReason.BAD_ANSWER, method=CHECK_SESSION)
        return SessionStatus(
            alive=state == "ok",
            bandwidth_left=_integer(answer.child_text("bandwidth_left")),
            diskspace_left=_integer(answer.child_text("diskspace_left")),
        )

    async def logout(self, session_key: str) -> None:
        await self._call({"method": LOGOUT, "session_key": session_key})

    # -- internals ---------------------------------------------------------------------

    async def _call(self, params: Mapping[str, str]) -> _xml.Element:
        """GET one method and return its status="ok" <result>, or raise."""
        method = params["method"]
        request = httpx.Request(
            "GET",
            self._url.copy_merge_params(dict(params)),
            headers=[
                ("User-Agent", self._user_agent),
                ("Accept", "application/xml, text/xml"),
                # Uncompressed only: the size cap then counts what is actually parsed.
                ("Accept-Encoding", "identity"),
            ],
            extensions=self._extensions,
        )
        try:
            # The per-phase timeouts do not bound a body that trickles in: this does.
            async with asyncio.timeout(self._timeout):
                status, content_type, body = await self._exchange(request)
        except (TimeoutError, httpx.TimeoutException):
            logger.debug("sendspace %s -> timeout", method)
            raise SendspaceUnavailable(TransientReason.TIMEOUT, method=method) from None
        except httpx.HTTPError as exc:
            logger.debug("sendspace %s -> network error %s", method, type(exc).__name__)
            raise SendspaceUnavailable(TransientReason.NETWORK, method=method) from None
        return self._result(method, status, content_type, body)

    async def _exchange(self, request: httpx.Request) -> tuple[int, str, bytes | None]:
        """Status, content type and body (None: over the cap or compressed)."""
        response = await self._transport.handle_async_request(request)
        try:
            if not 200 <= response.status_code < 300:
                return response.status_code, "", b""  # an error page is not read
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            declared = response.headers.get("Content-Length", "")
            if encoding not in ("", "identity") or (
                declared.isdigit() and int(declared) > self._max_answer_bytes
            ):
                return response.status_code, "", None
            body = await _read_at_most(response, self._max_answer_bytes)
            return response.status_code, response.headers.get("Content-Type", ""), body
        finally:
            await response.aclose()

    def _result(
        self, method: str, status: int, content_type: str, body: bytes | None
    ) -> _xml.Element:
        # A redirect or an error status is the site or a proxy talking, never a verdict.
        if not 200 <= status < 300:
            logger.debug("sendspace %s -> HTTP %s", method, status)
            raise SendspaceUnavailable(TransientReason.HTTP_STATUS, status, method=method)
        if body is None:
            logger.debug(
                "sendspace %s -> compressed or over %d bytes", method, self._max_answer_bytes
            )
            raise SendspaceUnavailable(TransientReason.BAD_ANSWER, status, method=method)
        if "html" in content_type.lower():
            logger.debug("sendspace %s -> a web page", method)
            raise SendspaceUnavailable(TransientReason.NOT_DATA, status, method=method)
        try:
            root = _xml.parse(body)
        except _xml.HostileXML:
            logger.warning("sendspace %s: refused an answer declaring a DTD or entities", method)
            raise SendspaceUnavailable(TransientReason.BAD_ANSWER, status, method=method) from None
        except _xml.BrokenXML:
            logger.debug("sendspace %s -> not XML", method)
            raise SendspaceUnavailable(TransientReason.NOT_DATA, status, method=method) from None
        outcome = root.attrs.get("status", "").lower()
        if root.tag != "result" or outcome not in ("ok", "fail"):
            logger.debug("sendspace %s -> XML that is not a <result>", method)
            raise SendspaceUnavailable(TransientReason.BAD_ANSWER, status, method=method)
        if outcome == "ok":
            logger.debug("sendspace %s -> ok", method)
            return root
        error = root.child("error")
        code = _integer(None if error is None else error.attrs.get("code"))
        if code is None or code < 0:
            logger.debug("sendspace %s -> fail without an error code", method)
            raise SendspaceUnavailable(TransientReason.BAD_ANSWER, status, method=method)
        logger.debug("sendspace %s -> error %d", method, code)
        raise SendspaceAPIError(code, method=method)


def _required_text(answer: _xml.Element, tag: str, method: str) -> str:
    value = answer.child_text(tag)
    if not value or not value.isprintable() or len(value) > 256:
        logger.debug("sendspace %s -> no usable <%s>", method, tag)
        raise SendspaceUnavailable(TransientReason.BAD_ANSWER, method=method)
    return value


def _integer(text: str | None) -> int | None:
    if text is None:
        return None
    value = text.strip()
    digits = value[1:] if value.startswith("-") else value
    if not digits.isascii() or not digits.isdigit() or len(digits) > 20:
        return None
    return int(value)


async def _read_at_most(response: httpx.Response, cap: int) -> bytes | None:
    """The body, or None as soon as it grows past `cap` bytes."""
    chunks: list[bytes] = []
    received = 0
    # Identity encoding only (checked before), so these are the bytes off the wire.
    async for chunk in response.aiter_bytes():
        received += len(chunk)
        if received > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
