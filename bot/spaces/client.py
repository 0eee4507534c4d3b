"""The Spaces neoapi client: one request per call (per mirror), typed answers.

Several mirrors may be configured: a request goes to the one that answered last, and to the
next when that one cannot be reached (connection refused, DNS, timeout, 5xx, an HTML page);
a SID works on every mirror.

Requests go straight to an httpx transport (shared by the whole bot, owned by the caller),
not through an `httpx.AsyncClient`: a transport keeps no cookies and follows no redirects,
so every request speaks for the one session in its own `Cookie` header and nothing a
response sets is remembered. It is also where the CPU is: the client layer (cookie jar,
header merging, multipart encoder) cost more than the request itself per session check
(bench/watch_bench.py).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Literal

import httpx

from bot.spaces import _parse, codes, hosts
from bot.spaces._body import read_capped
from bot.spaces.cookies import LoginCookies
from bot.spaces.errors import CaptchaRequired, SpacesAPIError, SpacesUnavailable
from bot.spaces.types import Account, Counters, OAuthLink

logger = logging.getLogger(__name__)

Endpoint = Literal["session", "common"]
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FIELD_NAME = re.compile(r"[A-Za-z_]+")
_MAX_ANSWER_BYTES = 1024 * 1024  # a neoapi answer is a few kB; more is not Spaces talking


class _AttemptJar:
    """The cookies of one login call, updated by each answer it gets (never shared)."""

    def __init__(self, cookies: LoginCookies | None) -> None:
        self.cookies = cookies or LoginCookies()


class _Mirror:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.base = httpx.URL(self.base_url)
        if self.base.scheme not in _DEFAULT_PORTS or not self.base.host:
            raise ValueError("base_url must be an absolute http(s) URL")
        self.urls = {
            endpoint: httpx.URL(f"{self.base_url}/neoapi/{endpoint}")
            for endpoint in ("session", "common")
        }


def _worth_another_mirror(error: SpacesUnavailable) -> bool:
    """This mirror could not be reached or is not the API: another one may answer."""
    if error.reason in ("timeout", "network", "not_json"):
        return True
    return error.reason == "http_status" and (error.status or 0) >= 500


class SpacesClient:
    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        base_url: str | Sequence[str],
        *,
        rid: str,
        timeout: float = 10.0,
        captcha_max_bytes: int = 512 * 1024,
        user_agent: str = "spaces-bridge-bot",
        resolver: hosts.Resolver = hosts.resolve,
    ) -> None:
        self._transport = transport
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("at least one base_url is needed")
        self._mirrors = [_Mirror(url) for url in urls]
        self._current = 0  # the mirror that answered last; asked first
        self._resolve = resolver
        self._rid = rid
        self._user_agent = user_agent
        # httpx's per-request timeouts, read by the transport; `_deadline` bounds the whole
        # request (a body dripping a byte at a time never trips a per-read timeout).
        self._extensions = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout)}
        self._deadline = timeout
        self._captcha_max_bytes = captcha_max_bytes

    @property
    def base_url(self) -> str:
        """The mirror requests go to now: the one that answered last."""
        return self._mirrors[self._current].base_url

    @property
    def mirrors(self) -> tuple[str, ...]:
        return tuple(mirror.base_url for mirror in self._mirrors)

    def spaces_url(self, url: str) -> str | None:
        """`url` when it points at Spaces (a configured mirror, or a known Spaces domain
        over https), else None: what an answer's link must be to become a button."""
        parsed = hosts.spaces_web_url(url, (mirror.base for mirror in self._mirrors))
        return None if parsed is None else str(parsed)

    async def login(
        self,
        login: str,
        password: str,
        *,
        captcha_code: str | None = None,
        cookies: LoginCookies | None = None,
    ) -> Account:
        """`cookies` are the ones this attempt was given so far (with its captcha); a new
        CaptchaRequired carries them, updated, for the next step of the same attempt."""
        fields = {"method": "login", "login": login, "password": password, "rid": self._rid}
        if captcha_code is not None:
            fields["code"] = captcha_code
        jar = _AttemptJar(cookies)
        try:
            body = await self._call("session", fields, sid=None, jar=jar)
        except CaptchaRequired as challenge:
            challenge.cookies = jar.cookies
            raise
        return _parse.parse_account(body, method="login")

    async def check(self, sid: str) -> Account:
        body = await self._call("session", {"method": "check", "rid": self._rid}, sid=sid)
        return _parse.parse_account(body, method="check", fallback_sid=sid)

    async def logout(self, sid: str) -> None:
        await self._call("session", {"method": "logout", "rid": self._rid}, sid=sid)

    async def oauth_links(self) -> list[OAuthLink]:
        """Social sign-in links that point at Spaces (any mirror); others are dropped."""
        body = await self._call("common", {"method": "getOAuthLinks"}, sid=None)
        links = _parse.parse_oauth_links(body, method="getOAuthLinks")
        kept = [link for link in links if self.spaces_url(link.url) is not None]
        if len(kept) < len(links):
            logger.warning("Dropped %d sign-in link(s) outside Spaces", len(links) - len(kept))
        return kept

    async def top_counts(self, sid: str) -> Counters:
        body = await self._call("common", {"method": "getTopCounts"}, sid=sid)
        return _parse.parse_counters(body, method="getTopCounts")

    async def fetch_captcha(self, url: str, *, cookies: LoginCookies | None = None) -> bytes:
        """Download a captcha picture named by a login answer.

        The URL is data from Spaces, not a command: only a configured mirror (as configured)
        or a known Spaces domain over https resolving to public addresses is asked, with only
        the attempt's own cookies for that host, without following redirects, and only an
        image up to the cap.
        """
        target = await self._captcha_target(url)
        headers = [
            ("User-Agent", self._user_agent),
            ("Accept", "image/*"),
            ("Accept-Encoding", "identity"),
        ]
        cookie = cookies.header_for(target.host) if cookies else ""
        if cookie:  # the site may tie the picture to the attempt's pre-login session
            headers.append(("Cookie", cookie))
        request = httpx.Request("GET", target, headers=headers, extensions=self._extensions)
        try:
            async with asyncio.timeout(self._deadline):
                response = await self._transport.handle_async_request(request)
                try:
                    return await self._read_captcha(response)
                finally:
                    await response.aclose()
        except (httpx.TimeoutException, TimeoutError):
            raise SpacesUnavailable("timeout", method="captcha") from None
        except httpx.HTTPError:
            raise SpacesUnavailable("network", method="captcha") from None

    # -- internals ---------------------------------------------------------------------

    async def _captcha_target(self, url: str) -> httpx.URL:
        refused = SpacesUnavailable("bad_answer", method="captcha")
        bases = [mirror.base for mirror in self._mirrors]
        target = hosts.spaces_web_url(url, bases)
        if target is None:
            logger.warning("Refusing to fetch a captcha from outside the Spaces hosts")
            raise refused
        if hosts.same_origin(target, bases):
            return target  # configured by the owner, private network or not
        # A known Spaces name, not configured here: it must not lead into this network.
        try:
            addresses = await self._resolve(target.host)
        except OSError:
            raise SpacesUnavailable("network", method="captcha") from None
        if not addresses or not all(hosts.is_public_address(a) for a in addresses):
            logger.warning("Refusing to fetch a captcha from a Spaces name with a private address")
            raise refused
        return target

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
        picture = await read_capped(response, cap)
        if not picture:  # empty, or over the cap
            raise SpacesUnavailable("bad_answer", status, method="captcha")
        logger.debug("Spaces captcha -> %d bytes", len(picture))
        return picture

    async def _call(
        self,
        endpoint: Endpoint,
        fields: Mapping[str, str],
        *,
        sid: str | None,
        jar: _AttemptJar | None = None,
    ) -> Mapping[str, object]:
        """POST one method and return the success envelope, or raise; a mirror that cannot
        be reached hands the request to the next one. Failing on all is one failure."""
        first = self._current
        failure: SpacesUnavailable | None = None
        for step in range(len(self._mirrors)):
            index = (first + step) % len(self._mirrors)
            try:
                body = await self._call_mirror(self._mirrors[index], endpoint, fields, sid, jar)
            except SpacesUnavailable as exc:
                if not _worth_another_mirror(exc):
                    raise
                if len(self._mirrors) > 1:
                    logger.info("Spaces mirror %d of %d: %s", index + 1, len(self._mirrors), exc)
                failure = failure or exc
                continue
            except SpacesAPIError:
                self._answered(index)
                raise
            self._answered(index)
            return body
        assert failure is not None
        raise failure

    def _answered(self, index: int) -> None:
        if index != self._current:
            logger.warning("Spaces now answers at mirror %d of %d", index + 1, len(self._mirrors))
            self._current = index

    async def _call_mirror(
        self,
        mirror: _Mirror,
        endpoint: Endpoint,
        fields: Mapping[str, str],
        sid: str | None,
        jar: _AttemptJar | None,
    ) -> Mapping[str, object]:
        method = fields["method"]
        body, content_type = _multipart(fields)
        url = mirror.urls[endpoint]
        cookie = "json=1" if sid is None else f"json=1; sid={sid}"
        attempt_cookie = jar.cookies.header_for(url.host) if jar is not None else ""
        if attempt_cookie:
            cookie = f"{cookie}; {attempt_cookie}"
        request = httpx.Request(
            "POST",
            url,
            headers=[
                ("User-Agent", self._user_agent),
                ("Accept", "application/json"),
                ("Accept-Encoding", "gzip, deflate"),
                ("X-Proxy", "spaces"),
                ("Content-Type", content_type),
                ("Cookie", cookie),
            ],
            content=body,
            extensions=self._extensions,
        )
        try:
            async with asyncio.timeout(self._deadline):  # connect, headers and body together
                response = await self._transport.handle_async_request(request)
                if jar is not None:  # only a login attempt keeps what an answer sets
                    jar.cookies = jar.cookies.merged(
                        response.headers.get_list("set-cookie"), url.host
                    )
                try:
                    # An error page is not read: the status alone is the answer.
                    ok = 200 <= response.status_code < 300
                    content = await read_capped(response, _MAX_ANSWER_BYTES) if ok else b""
                finally:
                    await response.aclose()
        except (httpx.TimeoutException, TimeoutError):
            logger.debug("Spaces %s -> timeout", method)
            raise SpacesUnavailable("timeout", method=method) from None
        except httpx.DecodingError:
            logger.debug("Spaces %s -> a body that does not decompress", method)
            raise SpacesUnavailable("bad_answer", method=method) from None
        except httpx.HTTPError as exc:
            logger.debug("Spaces %s -> network error %s", method, type(exc).__name__)
            raise SpacesUnavailable("network", method=method) from None
        return self._envelope(method, response.status_code, content, mirror.base)

    def _envelope(
        self, method: str, status: int, content: bytes | None, base: httpx.URL
    ) -> Mapping[str, object]:
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
        except (json.JSONDecodeError, UnicodeDecodeError):
            logger.debug("Spaces %s -> not JSON", method)
            raise SpacesUnavailable("not_json", status, method=method) from None
        except (RecursionError, ValueError):
            # JSON, but absurd: nested past the parser's depth, or a number of thousands of
            # digits (Python refuses to convert those).
            logger.debug("Spaces %s -> absurd JSON", method)
            raise SpacesUnavailable("bad_answer", status, method=method) from None
        code = codes.normalize_code(body.get("code")) if isinstance(body, dict) else None
        if not isinstance(body, dict) or code is None:
            logger.debug("Spaces %s -> JSON without a code", method)
            raise SpacesUnavailable("bad_answer", status, method=method)
        logger.debug("Spaces %s -> %s", method, code)
        if code == codes.SUCCESS:
            return body
        words = _parse.server_words(body, code)
        auth_error = _parse.auth_error(body)
        if code in codes.CAPTCHA_CODES or (
            code == codes.AUTH_ERROR and auth_error == codes.AUTH_NEED_CAPTCHA
        ):
            captcha_url = _captcha_url(body, base)
            if captcha_url is not None:
                raise CaptchaRequired(
                    code, captcha_url, method=method, server_text=words, auth_error=auth_error
                )
        raise SpacesAPIError(code, method=method, server_text=words, auth_error=auth_error)


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
