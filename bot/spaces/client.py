"""The Spaces neoapi client: one request per call, no retries, typed answers.

Requests go straight to an httpx transport (shared by the whole bot, owned by the caller),
not through an `httpx.AsyncClient`: a transport keeps no cookies and follows no redirects,
so every request speaks for the one session in its own `Cookie` header and nothing a
response sets is remembered. It is also where the CPU is: the client layer (cookie jar,
header merging, multipart encoder) cost more than the request itself per session check
(bench/watch_bench.py).
"""

from __future__ import annotations

import html
import json
import logging
import re
import secrets
from collections.abc import Mapping
from typing import Literal

import httpx

from bot.spaces import _parse, codes
from bot.spaces.errors import CaptchaRequired, SpacesAPIError, SpacesUnavailable
from bot.spaces.types import Account, Counters, OAuthLink

logger = logging.getLogger(__name__)

Endpoint = Literal["session", "common"]
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FIELD_NAME = re.compile(r"[A-Za-z_]+")
_MAX_ANSWER_BYTES = 1024 * 1024  # a neoapi answer is a few kB; more is not Spaces talking


class SpacesClient:
    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        base_url: str,
        *,
        rid: str,
        timeout: float = 10.0,
        captcha_max_bytes: int = 512 * 1024,
        user_agent: str = "spaces-bridge-bot",
    ) -> None:
        self._transport = transport
        self._base_url = base_url.rstrip("/")
        self._base = httpx.URL(self._base_url)
        if self._base.scheme not in _DEFAULT_PORTS or not self._base.host:
            raise ValueError("base_url must be an absolute http(s) URL")
        self._urls = {
            endpoint: httpx.URL(f"{self._base_url}/neoapi/{endpoint}")
            for endpoint in ("session", "common")
        }
        self._rid = rid
        self._user_agent = user_agent
        # httpx's per-request timeouts, read by the transport.
        self._extensions = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout)}
        self._captcha_max_bytes = captcha_max_bytes

    @property
    def base_url(self) -> str:
        return self._base_url

    async def login(self, login: str, password: str, *, captcha_code: str | None = None) -> Account:
        fields = {"method": "login", "login": login, "password": password, "rid": self._rid}
        if captcha_code is not None:
            fields["code"] = captcha_code
        body = await self._call("session", fields, sid=None)
        return _parse.parse_account(body, method="login")

    async def check(self, sid: str) -> Account:
        body = await self._call("session", {"method": "check", "rid": self._rid}, sid=sid)
        return _parse.parse_account(body, method="check", fallback_sid=sid)

    async def logout(self, sid: str) -> None:
        await self._call("session", {"method": "logout", "rid": self._rid}, sid=sid)

    async def oauth_links(self) -> list[OAuthLink]:
        body = await self._call("common", {"method": "getOAuthLinks"}, sid=None)
        return _parse.parse_oauth_links(body, method="getOAuthLinks")

    async def top_counts(self, sid: str) -> Counters:
        body = await self._call("common", {"method": "getTopCounts"}, sid=sid)
        return _parse.parse_counters(body, method="getTopCounts")

    async def fetch_captcha(self, url: str) -> bytes:
        """Download a captcha picture named by a login answer.

        The URL is data from Spaces, not a command: only the configured host is asked,
        without cookies, without following redirects, and only an image up to the cap.
        """
        target = self._captcha_target(url)
        request = httpx.Request(
            "GET",
            target,
            headers=[
                ("User-Agent", self._user_agent),
                ("Accept", "image/*"),
                ("Accept-Encoding", "identity"),
            ],
            extensions=self._extensions,
        )
        try:
            response = await self._transport.handle_async_request(request)
        except httpx.TimeoutException:
            raise SpacesUnavailable("timeout", method="captcha") from None
        except httpx.HTTPError:
            raise SpacesUnavailable("network", method="captcha") from None
        try:
            return await self._read_captcha(response)
        except httpx.TimeoutException:
            raise SpacesUnavailable("timeout", method="captcha") from None
        except httpx.HTTPError:
            raise SpacesUnavailable("network", method="captcha") from None
        finally:
            await response.aclose()

    # -- internals ---------------------------------------------------------------------

    def _captcha_target(self, url: str) -> httpx.URL:
        refused = SpacesUnavailable("bad_answer", method="captcha")
        try:
            target = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise refused from None
        if (
            target.scheme not in _DEFAULT_PORTS
            or target.host.lower() != self._base.host.lower()
            or target.userinfo
            or not self._same_port(target)
        ):
            logger.warning("Refusing to fetch a captcha from outside the Spaces host")
            raise refused
        return target

    def _same_port(self, target: httpx.URL) -> bool:
        # httpx reports default ports as None, so two default-port URLs always match.
        if target.port is None and self._base.port is None:
            return True
        return (target.port or _DEFAULT_PORTS[target.scheme]) == (
            self._base.port or _DEFAULT_PORTS[self._base.scheme]
        )

    async def _read_captcha(self, response: httpx.Response) -> bytes:
        status = response.status_code
        if not 200 <= status < 300:
            logger.debug("Spaces captcha -> HTTP %s", status)
            raise SpacesUnavailable("http_status", status, method="captcha")
        content_type = response.headers.get("Content-Type", "").strip().lower()
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if not content_type.startswith("image/") or encoding not in ("", "identity"):
            raise SpacesUnavailable("bad_answer", status, method="captcha")
        cap = self._captcha_max_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise SpacesUnavailable("bad_answer", status, method="captcha")
        # Compressed bodies were refused above, so these are the bytes off the wire.
        picture = await _read_at_most(response, cap)
        if not picture:  # empty, or over the cap
            raise SpacesUnavailable("bad_answer", status, method="captcha")
        logger.debug("Spaces captcha -> %d bytes", len(picture))
        return picture

    async def _call(
        self, endpoint: Endpoint, fields: Mapping[str, str], *, sid: str | None
    ) -> Mapping[str, object]:
        """POST one method and return the success envelope, or raise."""
        method = fields["method"]
        body, content_type = _multipart(fields)
        request = httpx.Request(
            "POST",
            self._urls[endpoint],
            headers=[
                ("User-Agent", self._user_agent),
                ("Accept", "application/json"),
                ("Accept-Encoding", "gzip, deflate"),
                ("X-Proxy", "spaces"),
                ("Content-Type", content_type),
                ("Cookie", "json=1" if sid is None else f"json=1; sid={sid}"),
            ],
            content=body,
            extensions=self._extensions,
        )
        try:
            response = await self._transport.handle_async_request(request)
            try:
                # An error page is not read: the status alone is the answer.
                ok = 200 <= response.status_code < 300
                content = await _read_at_most(response, _MAX_ANSWER_BYTES) if ok else b""
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            logger.debug("Spaces %s -> timeout", method)
            raise SpacesUnavailable("timeout", method=method) from None
        except httpx.DecodingError:
            logger.debug("Spaces %s -> a body that does not decompress", method)
            raise SpacesUnavailable("bad_answer", method=method) from None
        except httpx.HTTPError as exc:
            logger.debug("Spaces %s -> network error %s", method, type(exc).__name__)
            raise SpacesUnavailable("network", method=method) from None
        return self._envelope(method, response.status_code, content)

    def _envelope(self, method: str, status: int, content: bytes | None) -> Mapping[str, object]:
        # A redirect or an error status is the site or a proxy talking, never a verdict on
        # the session.
        if not 200 <= status < 300:
            logger.debug("Spaces %s -> HTTP %s", method, status)
            raise SpacesUnavailable("http_status", status, method=method)
        if content is None:
            logger.debug("Spaces %s -> answer over %d bytes", method, _MAX_ANSWER_BYTES)
            raise SpacesUnavailable("bad_answer", status, method=method)
        try:
            body: object = json.loads(content)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError both land here
            logger.debug("Spaces %s -> not JSON", method)
            raise SpacesUnavailable("not_json", status, method=method) from None
        code = codes.normalize_code(body.get("code")) if isinstance(body, dict) else None
        if not isinstance(body, dict) or code is None:
            logger.debug("Spaces %s -> JSON without a code", method)
            raise SpacesUnavailable("bad_answer", status, method=method)
        logger.debug("Spaces %s -> %s", method, code)
        if code == codes.SUCCESS:
            return body
        words = _parse.server_words(body, code)
        if code in codes.CAPTCHA_CODES:
            captcha_url = _captcha_url(body, self._base)
            if captcha_url is not None:
                raise CaptchaRequired(code, captcha_url, method=method, server_text=words)
        raise SpacesAPIError(code, method=method, server_text=words)


async def _read_at_most(response: httpx.Response, cap: int) -> bytes | None:
    """The (decoded) body, or None as soon as it grows past `cap` bytes."""
    chunks: list[bytes] = []
    received = 0
    async for chunk in response.aiter_bytes():
        received += len(chunk)
        if received > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _multipart(fields: Mapping[str, str]) -> tuple[bytes, str]:
    """multipart/form-data of plain fields, as the site's own client posts them."""
    values = [value.encode() for value in fields.values()]
    boundary = secrets.token_hex(16)
    while any(boundary.encode() in value for value in values):  # a value is the user's text
        boundary = secrets.token_hex(16)
    marker = b"--" + boundary.encode()
    parts: list[bytes] = []
    for name, value in zip(fields, values, strict=True):
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"not a plain form field name: {name!r}")
        parts += [marker, b'\r\nContent-Disposition: form-data; name="', name.encode()]
        parts += [b'"\r\n\r\n', value, b"\r\n"]
    parts += [marker, b"--\r\n"]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _captcha_url(body: Mapping[str, object], base: httpx.URL) -> str | None:
    """The captcha picture's URL, made absolute; fetch_captcha still vets the host."""
    for source in (body, body.get("attributes")):
        if isinstance(source, Mapping):
            value = source.get("captcha_url")
            if isinstance(value, str) and value.strip():
                try:
                    return str(base.join(html.unescape(value.strip())))
                except httpx.InvalidURL:
                    return None
    return None
