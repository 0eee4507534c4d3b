"""Plain domain types for what Spaces tells us; no HTTP in here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Account:
    """A logged-in Spaces session and who it belongs to."""

    sid: str = field(repr=False)  # the session secret
    ck: str = field(repr=False)  # CSRF value for state-changing calls
    user_id: int  # attributes.nid
    nickname: str  # attributes.name
    is_online: bool | None
    last_seen_at: datetime | None  # aware, UTC
    channel_id: str | None  # token for the site's live WebSocket
    avatar_url: str | None
    profile_url: str | None  # HTML-unescaped, with the `sid`/`CK` query parameters removed
    # Unread counts the login/check answer carries (mailTbNm, journalTbNm, lentaTbNm);
    # None when the answer has none of them.
    counters: Counters | None = None


@dataclass(frozen=True, slots=True)
class Counters:
    """Unread counts: from a check answer's attributes, or from getTopCounts."""

    journal: int = 0  # journalTbNm; getTopCounts key "1"
    feed: int = 0  # lentaTbNm; getTopCounts key "2"
    mail: int = 0  # mailTbNm; getTopCounts key "3"


@dataclass(frozen=True, slots=True)
class OAuthLink:
    """A social-login link; the URL embeds a fresh pre-login SID, so keep it out of repr."""

    provider: str  # "vk", "ok", "mail_ru", "facebook", "google", ...
    url: str = field(repr=False)
