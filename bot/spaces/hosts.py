"""Which addresses are Spaces: the configured mirrors and the site's own domains.

An answer from Spaces is data, not a command: a link in it becomes a button, and a picture
in it is fetched, only when it points at Spaces. The rule lives here, once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

import httpx

# The mirrors the site's own client and the public apps use (shared notes, "Mirrors"), and
# spac.me, the static host the doc's own answers name (avatars ts01.spac.me, icons spac.me).
SPACES_DOMAINS: Final = frozenset(
    {"spcs.me", "spaces.ru", "spaces.im", "gdespaces.com", "spac1.net", "spaces-blogs.com",
     "spac.me"}
)  # fmt: skip
_WEB_SCHEMES: Final = ("http", "https")

Resolver = Callable[[str], Awaitable[list[str]]]


def parse_mirrors(value: str) -> tuple[str, ...]:
    """`SPACES_BASE_URL`: one or more base URLs, comma-separated, first one preferred.

    Raises ValueError with one sentence naming the first bad entry."""
    mirrors: list[str] = []
    for raw in value.split(","):
        entry = raw.strip().rstrip("/")
        if not entry:
            continue
        try:
            url = httpx.URL(entry)
        except (httpx.InvalidURL, TypeError):
            url = None
        if (
            url is None
            or url.scheme not in _WEB_SCHEMES
            or not url.host
            or url.userinfo
            or url.query
            or url.fragment
        ):
            raise ValueError(
                f"{entry!r} is not a web address such as https://spcs.me "
                "(several mirrors are separated by commas)"
            )
        if entry not in mirrors:
            mirrors.append(entry)
    if not mirrors:
        raise ValueError("no Spaces address is given (for example https://spcs.me)")
    return tuple(mirrors)


def is_spaces_domain(host: str) -> bool:
    """A known Spaces domain or one of its subdomains (never a look-alike suffix)."""
    name = host.lower().rstrip(".")
    return any(name == domain or name.endswith("." + domain) for domain in SPACES_DOMAINS)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = 443 if url.scheme == "https" else 80
    return url.scheme, url.host.lower(), url.port or default


def same_origin(url: httpx.URL, mirrors: Iterable[httpx.URL]) -> bool:
    """`url` is on a configured mirror as configured: scheme, host and port."""
    return any(_origin(url) == _origin(mirror) for mirror in mirrors)


def spaces_web_url(url: str, mirrors: Iterable[httpx.URL]) -> httpx.URL | None:
    """The URL when it points at Spaces (a configured mirror as configured, or a known
    Spaces domain over https on the default port), else None."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return None
    if parsed.scheme not in _WEB_SCHEMES or not parsed.host or parsed.userinfo:
        return None
    if same_origin(parsed, mirrors):
        return parsed
    if parsed.scheme == "https" and parsed.port in (None, 443) and is_spaces_domain(parsed.host):
        return parsed
    return None


def is_public_address(address: str) -> bool:
    """A globally routable unicast address: never loopback, private, link-local or reserved."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve(host: str) -> list[str]:
    """Every address `host` resolves to (what a connection to it may reach)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]
