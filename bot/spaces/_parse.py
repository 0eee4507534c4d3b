"""Turn decoded Spaces answers into domain types; liberal in what it accepts.

Every function raises `SpacesUnavailable("bad_answer")` when a required part is missing,
and never puts a value from the answer into a message or a log line.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from bot.spaces.errors import SpacesUnavailable
from bot.spaces.types import Account, Counters, OAuthLink

logger = logging.getLogger(__name__)

# Query parameters that make a link act as the session; never keep them in a stored URL.
_SECRET_QUERY_KEYS = frozenset({"sid", "ck"})
_OAUTH_SUFFIX = "_login_URL"
_COUNTER_KEYS = (("1", "journal"), ("2", "feed"), ("3", "mail"))
# Where a login/check answer keeps them: at the top level of `attributes`.
_ATTRIBUTE_COUNTERS = (("journalTbNm", "journal"), ("lentaTbNm", "feed"), ("mailTbNm", "mail"))
_ID_LIMIT = 2**63
# A SID is 16 digits and a CK 4 today; thousands of characters are not a session.
_TOKEN_MAX_CHARS = 256


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _as_text(value: object) -> str | None:
    """A non-empty string; ints are accepted (a SID or CK sent as a number)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    number = _as_int(value)
    return None if number is None else number != 0


def _as_url(value: object) -> str | None:
    return html.unescape(value) if isinstance(value, str) and value else None


def strip_secret_params(url: str) -> str:
    """Drop `sid`/`CK` query parameters, keeping the rest of the URL byte for byte.

    Split as urlsplit does (the fragment first, then the query) without its cost: this runs
    on every session check."""
    rest, hash_mark, fragment = url.partition("#")
    path, _, query = rest.partition("?")
    if not query:
        return url
    kept = "&".join(
        pair
        for pair in query.split("&")
        if pair and unquote(pair.partition("=")[0]).strip().lower() not in _SECRET_QUERY_KEYS
    )
    return f"{path}{'?' if kept else ''}{kept}{hash_mark}{fragment}"


def _timestamp(value: object) -> datetime | None:
    seconds = _as_int(value)
    if seconds is None or seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_account(
    body: Mapping[str, object], *, method: str, fallback_sid: str | None = None
) -> Account:
    """The `attributes` of a login/check answer; check may omit `sid`."""
    attributes = body.get("attributes")
    if not isinstance(attributes, Mapping):
        raise SpacesUnavailable("bad_answer", method=method)
    sid = _as_text(attributes.get("sid")) or fallback_sid
    nickname = _as_text(attributes.get("name"))
    user_id = _as_int(attributes.get("nid"))
    ck = _as_text(attributes.get("CK"))
    if (
        not sid
        or len(sid) > _TOKEN_MAX_CHARS
        or nickname is None
        or user_id is None
        or not 0 < user_id < _ID_LIMIT  # a Spaces id is stored as a 64-bit integer
        or (ck is not None and len(ck) > _TOKEN_MAX_CHARS)
    ):
        raise SpacesUnavailable("bad_answer", method=method)
    if ck is None:
        # Only state-changing calls need CK; the session itself is still usable.
        logger.warning("Spaces %s answer has no CK; continuing without it", method)
        ck = ""
    status = attributes.get("online_status")
    online: Mapping[str, object] = status if isinstance(status, Mapping) else {}
    profile_url = _as_url(attributes.get("mysite_link"))
    return Account(
        sid=sid,
        ck=ck,
        user_id=user_id,
        nickname=nickname,
        is_online=_as_bool(online.get("is_online")),
        last_seen_at=_timestamp(online.get("last_time")),
        channel_id=_as_text(attributes.get("channel_id")),
        avatar_url=_as_url(attributes.get("avatar")),
        profile_url=strip_secret_params(profile_url) if profile_url else None,
        counters=_counters_of(attributes, _ATTRIBUTE_COUNTERS, complete=True),
    )


def _counters_of(
    source: Mapping[str, object], keys: tuple[tuple[str, str], ...], *, complete: bool = False
) -> Counters | None:
    """None when none is there, or (`complete`) when any is missing: the doc's own login
    sample has `mailTbNm` alone, and a zero must not stand in for an unknown count."""
    values = {name: _as_int(source.get(key)) for key, name in keys}
    missing = [value is None for value in values.values()]
    if all(missing) or (complete and any(missing)):
        return None
    return Counters(**{name: max(value or 0, 0) for name, value in values.items()})


def auth_error(body: Mapping[str, object]) -> int | None:
    """01006's sub-code: `auth_errror` (sic, as the site sends it), or the spelling a
    fixed server would use."""
    for key in ("auth_errror", "auth_error"):
        number = _as_int(body.get(key))
        if number is not None:
            return number
    return None


def parse_counters(body: Mapping[str, object], *, method: str) -> Counters:
    """getTopCounts: keys "1"/"2"/"3" at the top level, or under `counters`/`counts`."""
    source: Mapping[str, object] = body
    for key in ("counters", "counts"):
        nested = body.get(key)
        if isinstance(nested, Mapping):
            source = nested
            break
    counters = _counters_of(source, _COUNTER_KEYS)
    if counters is None:
        logger.debug("Spaces %s answer has no counters; reporting zeros", method)
        return Counters()
    return counters


def parse_oauth_links(body: Mapping[str, object], *, method: str) -> list[OAuthLink]:
    """getOAuthLinks: `urls` with `<provider>_login_URL` keys; only http(s) links survive."""
    urls = body.get("urls")
    if not isinstance(urls, Mapping):
        raise SpacesUnavailable("bad_answer", method=method)
    links: list[OAuthLink] = []
    for key, value in urls.items():
        if not isinstance(key, str) or not key.endswith(_OAUTH_SUFFIX):
            continue
        url = _as_url(value)
        provider = key[: -len(_OAUTH_SUFFIX)]
        # The link is shown to a user as a button: never pass on a javascript: or data: URL.
        if provider and url and urlsplit(url).scheme.lower() in ("http", "https"):
            links.append(OAuthLink(provider=provider, url=url))
    return links


# The site's own client (apiError in spacesLib.js) shows an answer's `error` text for any
# code, and for these codes the text in another field when there is no `error`.
_WORDS_FIELD_BY_CODE: Mapping[str, tuple[str, ...]] = {
    "00006": ("message",),  # ERR_UNKNOWN_ERROR
    "00028": ("message",),  # ERR_WML
    "00032": ("message",),  # ERR_NOT_ENOUGH_KARMA
    "02002": ("message",),  # ERR_MESSAGE_ERROR
    "02009": ("can_write_error", "message"),  # ERR_MESSAGE_SEND_DENIED
    "09006": ("errMsg",),  # ERR_UPLOAD_ERROR
}


def server_words(body: Mapping[str, object], code: str) -> object:
    """Spaces' own explanation in an error answer, raw (SpacesAPIError cleans it), or None."""
    error = body.get("error")
    if isinstance(error, str) and error.strip():
        return error
    value: object = body
    for key in _WORDS_FIELD_BY_CODE.get(code, ()):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, str) else None
