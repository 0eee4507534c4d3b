"""The cookies of one login attempt (the pre-login `sid` a captcha answer sets).

The site ties a captcha to the cookie it set with the picture's URL, so the answer must
carry it back. They belong to that attempt only: kept in the conversation (sealed by the
caller), sent only with that attempt's requests, only to hosts they domain-match, never
into a shared jar or the database.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

log = logging.getLogger(__name__)

_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
# RFC 6265 cookie-octets, optionally in double quotes.
_VALUE: Final = re.compile(r'"?[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]{0,1024}"?')
_MAX_COOKIES: Final = 16
# Ours, set on every request: an answer cannot replace or repeat it.
_RESERVED: Final = frozenset({"json"})


@dataclass(frozen=True, slots=True)
class AttemptCookie:
    name: str
    value: str = field(repr=False)
    domain: str  # lower-case: the answering host, or the cookie's Domain attribute
    host_only: bool  # no Domain attribute: only ever sent back to that very host

    def matches(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if host == self.domain:
            return True
        return not self.host_only and host.endswith("." + self.domain)


@dataclass(frozen=True, slots=True)
class LoginCookies:
    """What one login attempt was told to send back; immutable, a new one per answer."""

    items: tuple[AttemptCookie, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.items)

    def header_for(self, host: str) -> str:
        """`name=value; …` of the cookies for `host` (empty when none applies)."""
        return "; ".join(f"{c.name}={c.value}" for c in self.items if c.matches(host))

    def merged(self, set_cookies: Iterable[str], host: str) -> LoginCookies:
        """These cookies updated by an answer's Set-Cookie headers from `host`."""
        kept = {(c.name, c.domain): c for c in self.items}
        for header in set_cookies:
            parsed = _parse_set_cookie(header, host.lower().rstrip("."))
            if parsed is None:
                continue
            cookie, expired = parsed
            key = (cookie.name, cookie.domain)
            if expired:
                kept.pop(key, None)
            elif key in kept or len(kept) < _MAX_COOKIES:
                kept[key] = cookie  # a renewed cookie keeps its place
        return LoginCookies(tuple(kept.values()))

    def dump(self) -> str:
        return json.dumps([[c.name, c.value, c.domain, c.host_only] for c in self.items])

    @classmethod
    def load(cls, text: str) -> LoginCookies:
        """The inverse of dump(); anything malformed gives no cookies at all."""
        try:
            rows = json.loads(text)
            items = tuple(
                AttemptCookie(str(name), str(value), str(domain), bool(host_only))
                for name, value, domain, host_only in rows
            )
        except (ValueError, TypeError):
            return cls()
        valid = all(_NAME.fullmatch(c.name) and _VALUE.fullmatch(c.value) for c in items)
        return cls(items) if valid else cls()


def _parse_set_cookie(header: str, host: str) -> tuple[AttemptCookie, bool] | None:
    """(cookie, expired) from one Set-Cookie header, or None when it is to be ignored."""
    pair, *attributes = header.split(";")
    name, equals, value = pair.partition("=")
    name, value = name.strip(), value.strip()
    if not equals or not _NAME.fullmatch(name) or not _VALUE.fullmatch(value):
        log.debug("ignoring a malformed Set-Cookie")
        return None
    if name.lower() in _RESERVED:
        return None
    domain, host_only, expired = host, True, not value
    for attribute in attributes:
        key, _, argument = attribute.partition("=")
        key, argument = key.strip().lower(), argument.strip()
        if key == "domain" and argument:
            wanted = argument.lstrip(".").lower().rstrip(".")
            if not _domain_allowed(wanted, host):
                log.info("ignoring a Set-Cookie for another domain than the one answering")
                return None
            domain, host_only = wanted, False
        elif key == "max-age":
            expired = expired or (argument.lstrip("-").isdigit() and int(argument) <= 0)
        elif key == "expires":
            expired = expired or _in_the_past(argument)
    return AttemptCookie(name, value, domain, host_only), expired


def _domain_allowed(domain: str, host: str) -> bool:
    """RFC 6265 domain matching: the host itself, or a parent domain that is not a bare
    top-level name; an IP address matches only itself."""
    if domain == host:
        return True
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        pass
    return "." in domain and host.endswith("." + domain)


def _in_the_past(text: str) -> bool:
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment <= datetime.now(UTC)
