"""The plain types of the service boundary: what a service is, asks, answers and keeps.

No I/O and no frameworks here; see the package docstring for how they fit together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Final

# Stored in rows, typed after /login, put in callback data and metric labels: keep it short
# and plain.
_SERVICE_ID: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
_SECRET_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")

Secrets = Mapping[str, str]
"""A session's secrets by name ("sid", "session_key", "token"): only the adapter that made
them reads them; the store seals each value and hands them back unchanged."""


@dataclass(frozen=True, slots=True)
class Sentence:
    """A catalogue key and its placeholders: what a person reads, chosen by the adapter and
    worded in bot/locales. Params are plain values; the catalogue formats them."""

    key: str
    params: Mapping[str, str | int] = field(default_factory=dict)


class Step(StrEnum):
    """One question of a login conversation."""

    LOGIN_NAME = "login_name"
    PASSWORD = "password"
    TOKEN = "token"  # an API or access token pasted by the person
    CAPTCHA = "captcha"  # asked only when `login` returns NextStep(Step.CAPTCHA, picture)

    @property
    def secret(self) -> bool:
        """Its message is deleted at once, and the answer is sealed while the login lasts."""
        return self in _SECRET_STEPS


_SECRET_STEPS: Final = frozenset({Step.PASSWORD, Step.TOKEN})


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What the bot shows and stores of a service."""

    id: str  # stable: rows, `/login <id>`, callback data, stats and metric labels
    display_name: str  # a brand name, the same in every language
    steps: tuple[Step, ...]  # what a login asks, in order, before the first `login` call

    def __post_init__(self) -> None:
        if not _SERVICE_ID.fullmatch(self.id):
            raise ValueError(f"service id must match {_SERVICE_ID.pattern}: {self.id!r}")
        if not self.display_name.strip():
            raise ValueError("a service needs a display name")
        if not self.steps or len(set(self.steps)) != len(self.steps):
            raise ValueError("a login asks at least one question, each once")


@dataclass(frozen=True, slots=True)
class RemoteSession:
    """A logged-in session as the store keeps it (sealed) and the watch checks it."""

    service: str  # ServiceInfo.id
    account_id: str  # stable at the service; (chat, service, account_id) names a row
    display_name: str  # what people read: a nickname, a user name
    secrets: Secrets = field(repr=False)

    def __post_init__(self) -> None:
        if not _SERVICE_ID.fullmatch(self.service):
            raise ValueError(f"not a service id: {self.service!r}")
        if not self.account_id:
            raise ValueError("a session belongs to an account")
        check_secrets(self.secrets)


def check_secrets(secrets: Secrets) -> None:
    """Secrets are named plainly (the name goes into the store's encryption context)."""
    if not secrets:
        raise ValueError("a session has at least one secret")
    for name, value in secrets.items():
        if not _SECRET_NAME.fullmatch(name) or not isinstance(value, str):
            raise ValueError(f"not a plain secret name or a text value: {name!r}")


@dataclass(frozen=True, slots=True)
class LoggedIn:
    session: RemoteSession


@dataclass(frozen=True, slots=True)
class NextStep:
    """The service wants one more answer: ask `step`, then call `login` again with every
    answer so far plus this one, and this step's `attempt`."""

    step: Step
    picture: bytes | None = field(default=None, repr=False)  # shown with the question
    wrong_answer: bool = False  # the previous answer to this step was refused
    # What this login attempt must send back with the answer (e.g. the cookies a captcha is
    # tied to): opaque, sealed by the conversation, passed to the next `login` as `attempt`.
    attempt: Secrets = field(default_factory=dict, repr=False)


LoginResult = LoggedIn | NextStep


@dataclass(frozen=True, slots=True)
class SignInLink:
    """A link to the service's own sign-in page through another network."""

    provider: str  # "vk", "ok", "mail_ru", "facebook", "google": the button's caption key
    url: str = field(repr=False)  # may embed a fresh pre-login session id


# -- what a check meant: one vocabulary for the watch, /status, /stats and /metrics --------


class Verdict(StrEnum):
    CONFIRMED = "confirmed"  # the service says the session is alive
    ENDED = "ended"  # the service says it is over: stop checking, tell the chat once
    TRANSIENT = "transient"  # no verdict now; says nothing about the session, ask again later


class EndReason(StrEnum):
    EXPIRED = "expired"  # the service says the session expired
    NOT_FOUND = "not_found"  # the service does not know it (ended, logged out elsewhere)
    NOT_AUTHENTICATED = "not_authenticated"  # it exists but is no longer logged in
    REPLACED = "replaced"  # another sign-in to the account took its place
    REVOKED = "revoked"  # the credential itself is refused (a token revoked or invalid)


class TransientReason(StrEnum):
    TIMEOUT = "timeout"  # no answer in time
    NETWORK = "network"  # could not connect, or the connection broke
    HTTP_STATUS = "http_status"  # an HTTP error or redirect: the site or a proxy talking
    NOT_DATA = "not_data"  # a web page or a broken body where data was expected
    BAD_ANSWER = "bad_answer"  # data, but not the method's answer (shape, size, hostile XML)
    RATE_LIMITED = "rate_limited"  # the service asked us to slow down
    SERVICE_ERROR = "service_error"  # an error code that says nothing about the session
    UNEXPECTED = "unexpected"  # a bug on our side while checking (logged where caught)


@dataclass(frozen=True, slots=True)
class Confirmed:
    # The account's current name when the answer tells it (None: keep the stored one).
    display_name: str | None = None
    # Extra lines for /status (unread counts, space left), filled when asked `detailed`.
    details: tuple[Sentence, ...] = ()
    # New secrets to store instead of the old ones (e.g. a rotated CSRF value); None: keep.
    renewed: Secrets | None = field(default=None, repr=False)
    verdict: ClassVar[Verdict] = Verdict.CONFIRMED

    @property
    def reason(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Ended:
    reason: EndReason
    detail: str | None = None  # the service's own code, for logs; never a label
    verdict: ClassVar[Verdict] = Verdict.ENDED


@dataclass(frozen=True, slots=True)
class Transient:
    reason: TransientReason
    text: Sentence  # why the session could not be confirmed now, for /status
    detail: str | None = None  # the service's own code or status, for logs; never a label
    service_text: str | None = None  # the service's own words, shown quoted after `text`
    verdict: ClassVar[Verdict] = Verdict.TRANSIENT


CheckOutcome = Confirmed | Ended | Transient


def outcome_labels(outcome: CheckOutcome) -> tuple[str, str]:
    """(verdict, reason) as stats and metrics label values; reason is "" when confirmed."""
    return outcome.verdict.value, "" if outcome.reason is None else outcome.reason.value


def all_outcome_labels() -> tuple[tuple[str, str], ...]:
    """Every (verdict, reason) pair, so counters can show zeros before the first check."""
    return (
        (Verdict.CONFIRMED.value, ""),
        *((Verdict.ENDED.value, reason.value) for reason in EndReason),
        *((Verdict.TRANSIENT.value, reason.value) for reason in TransientReason),
    )


class LogoutOutcome(StrEnum):
    LOGGED_OUT = "logged_out"  # the service ended it now
    ALREADY_ENDED = "already_ended"  # the service no longer knew it
    NOT_CONFIRMED = "not_confirmed"  # the service could not be asked, or refused

    @property
    def ended(self) -> bool:
        """The session is over at the service."""
        return self is not LogoutOutcome.NOT_CONFIRMED


class RefusalReason(StrEnum):
    """Why a service said no to a login."""

    BAD_CREDENTIALS = "bad_credentials"  # counts towards the brute-force limit
    # No such account: counts towards the limit too, and the whole login is asked again.
    UNKNOWN_ACCOUNT = "unknown_account"
    BLOCKED = "blocked"  # the account is blocked at the service: trying again cannot help
    RATE_LIMITED = "rate_limited"  # too many attempts at the service: the step waits a while
    MISCONFIGURED = "misconfigured"  # the bot's own setup (API key, version): owners must act
    REFUSED = "refused"  # any other refusal; the sentence says which
