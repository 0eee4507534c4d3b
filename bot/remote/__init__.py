"""The service boundary: what a remote service is to the bot, in plain types.

The bot keeps a remote session alive and tells people when it ends; nothing in that idea
belongs to one site. Handlers, services and the store are to speak these types; each site
is one adapter that implements `RemoteService`: ``bot.spaces.service.SpacesService`` and
``bot.sendspace.service.SendspaceService``.
Imports point one way: adapters import ``bot.remote``, never the other way round, and
nothing here imports aiogram, SQLAlchemy or an adapter.

The pieces
----------
``ServiceInfo(id, display_name, steps)``
    ``id`` is stable ("spaces", "sendspace"): it is stored in rows, typed after
    ``/login``, and used as a stats/metrics label. ``steps`` are the questions a login asks
    first, in order (``Step.LOGIN_NAME``, ``Step.PASSWORD``, ``Step.TOKEN``); a
    ``Step.secret`` answer is deleted from the chat at once and kept sealed.
``RemoteService.login(answers, *, attempt=None) -> LoggedIn | NextStep``
    ``answers`` maps each step asked so far to its answer (after ``accept``).
    ``NextStep(step, picture, wrong_answer, attempt)`` asks one more (a captcha); the
    conversation keeps ``attempt`` (opaque, e.g. the cookies the captcha is tied to)
    sealed, then calls ``login`` again with all answers and that ``attempt``. Failures
    raise ``LoginRefused(reason)`` or ``ServiceUnavailable(reason)``, each with the
    ``Sentence`` to show and, when the service said something itself, its cleaned words
    (``service_text``).
``RemoteSession(service, account_id, display_name, secrets)``
    What the store keeps; ``secrets`` is an opaque name -> text mapping that only the
    adapter reads (the store seals each value, bound to chat, service, account and name).
``RemoteService.check(secrets, detailed=False) -> CheckOutcome``
    ``Confirmed(display_name, details, renewed)`` | ``Ended(reason: EndReason)`` |
    ``Transient(reason: TransientReason, text, detail, service_text)``. ``Verdict`` and
    the reason enums have stable string values, and they are the stats and metrics labels
    (``outcome_labels``, ``all_outcome_labels``). Only a definitive answer is ``Ended``;
    ``check`` never raises for what the service or the network does.
``RemoteService.logout(secrets) -> LogoutOutcome``
    ``logged_out`` | ``already_ended`` | ``not_confirmed``; never raises.
``Sentence(key, params)``
    A catalogue key the adapter picks; the words live in ``bot/locales``.

Adding a service, and spaces.pe sketched as the next one: see the README ("Services").
"""

from bot.remote.errors import LoginRefused, RemoteError, ServiceUnavailable
from bot.remote.service import OffersSignInLinks, RemoteService, TellsOwners
from bot.remote.types import (
    CheckOutcome,
    Confirmed,
    Ended,
    EndReason,
    LoggedIn,
    LoginResult,
    LogoutOutcome,
    NextStep,
    RefusalReason,
    RemoteSession,
    Secrets,
    Sentence,
    ServiceInfo,
    SignInLink,
    Step,
    Transient,
    TransientReason,
    Verdict,
    all_outcome_labels,
    check_secrets,
    outcome_labels,
)

__all__ = [
    "CheckOutcome",
    "Confirmed",
    "EndReason",
    "Ended",
    "LoggedIn",
    "LoginRefused",
    "LoginResult",
    "LogoutOutcome",
    "NextStep",
    "OffersSignInLinks",
    "RefusalReason",
    "RemoteError",
    "RemoteService",
    "RemoteSession",
    "Secrets",
    "Sentence",
    "ServiceInfo",
    "ServiceUnavailable",
    "SignInLink",
    "Step",
    "TellsOwners",
    "Transient",
    "TransientReason",
    "Verdict",
    "all_outcome_labels",
    "check_secrets",
    "outcome_labels",
]
