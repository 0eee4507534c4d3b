"""The Spaces neoapi client: one request per call, no retries, typed answers.

The httpx client is shared by the whole bot and owned by the caller. Every request
carries its own `Cookie` header (so the shared cookie jar never decides whose session
a request speaks for), and any cookie Spaces sets is removed from the jar again.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping
from typing import Literal

import httpx

from bot.spaces import _parse, codes
from bot.spaces.errors import CaptchaRequired, SpacesAPIError, SpacesUnavailable
from bot.spaces.types import Account, Counters, OAuthLink

logger = logging.getLogger(__name__)

Endpoint = Literal["session", "common"]
_DEFAULT_PORTS = {"http": 80, "https": 443}


class SpacesClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        rid: str,
        timeout: float = 10.0,
        captcha_max_bytes: int = 512 * 1024,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._base = httpx.URL(self._base_url)
        if self._base.scheme not in _DEFAULT_PORTS or not self._base.host:
            raise ValueError("base_url must be an absolute http(s) URL")
        self._rid = rid
        self._timeout = timeout
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
        request = self._http.build_request(
            "GET",
            target,
            headers={"Accept": "image/*", "Accept-Encoding": "identity"},
            timeout=self._timeout,
        )
        # build_request merges the shared client's cookies and defaults; send none of them.
        for header in ("Cookie", "Authorization"):
            request.headers.pop(header, None)
        try:
            response = await self._http.send(request, stream=True, follow_redirects=False)
        except httpx.TimeoutException:
            raise SpacesUnavailable("timeout", method="captcha") from None
        except httpx.HTTPError:
            raise SpacesUnavailable("network", method="captcha") from None
        try:
            self._forget_cookies(response)
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
        chunks: list[bytes] = []
        received = 0
        # Compressed bodies were refused above, so these are the bytes off the wire.
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            received += len(chunk)
            if received > cap:
                raise SpacesUnavailable("bad_answer", status, method="captcha")
        if received == 0:
            raise SpacesUnavailable("bad_answer", status, method="captcha")
        logger.debug("Spaces captcha -> %d bytes", received)
        return b"".join(chunks)

    async def _call(
        self, endpoint: Endpoint, fields: Mapping[str, str], *, sid: str | None
    ) -> Mapping[str, object]:
        """POST one method and return the success envelope, or raise."""
        method = fields["method"]
        cookie = "json=1" if sid is None else f"json=1; sid={sid}"
        request = self._http.build_request(
            "POST",
            f"{self._base_url}/neoapi/{endpoint}",
            # (None, value) parts are plain form fields: this forces multipart/form-data,
            # which the site expects, where `data=` alone would be url-encoded.
            files={name: (None, value.encode()) for name, value in fields.items()},
            headers={"X-Proxy": "spaces", "Accept": "application/json"},
            timeout=self._timeout,
        )
        # Set last: whatever the shared jar merged in, this request speaks for `sid` only.
        request.headers["Cookie"] = cookie
        try:
            response = await self._http.send(request, follow_redirects=False)
        except httpx.TimeoutException:
            logger.debug("Spaces %s -> timeout", method)
            raise SpacesUnavailable("timeout", method=method) from None
        except httpx.HTTPError as exc:
            logger.debug("Spaces %s -> network error %s", method, type(exc).__name__)
            raise SpacesUnavailable("network", method=method) from None
        self._forget_cookies(response)
        return self._envelope(method, response)

    def _envelope(self, method: str, response: httpx.Response) -> Mapping[str, object]:
        status = response.status_code
        # A redirect or an error status is the site or a proxy talking, never a verdict on
        # the session.
        if not 200 <= status < 300:
            logger.debug("Spaces %s -> HTTP %s", method, status)
            raise SpacesUnavailable("http_status", status, method=method)
        try:
            body: object = json.loads(response.content)
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
        if code in codes.CAPTCHA_CODES:
            captcha_url = _captcha_url(body, self._base)
            if captcha_url is not None:
                raise CaptchaRequired(code, captcha_url, method=method)
        raise SpacesAPIError(code, method=method)

    def _forget_cookies(self, response: httpx.Response) -> None:
        """Undo httpx storing a Spaces `Set-Cookie` (a SID) in the shared jar."""
        if "set-cookie" not in response.headers:
            return
        host = self._base.host.lower()
        jar = self._http.cookies.jar
        for cookie in list(jar):
            domain = cookie.domain.lower().lstrip(".")
            if domain == host or domain.endswith("." + host) or host.endswith("." + domain):
                jar.clear(cookie.domain, cookie.path, cookie.name)


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
