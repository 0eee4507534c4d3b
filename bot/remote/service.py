"""The one contract every service adapter fulfils (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from bot.remote.types import (
    CheckOutcome,
    LoginResult,
    LogoutOutcome,
    Secrets,
    Sentence,
    ServiceInfo,
    SignInLink,
    Step,
)


class RemoteService(Protocol):
    @property
    def info(self) -> ServiceInfo: ...

    def accept(self, step: Step, text: str) -> str | None:
        """The answer to `step` as it will be sent, or None when it cannot be right (too
        long, a command, characters the service never accepts): then nothing is sent."""
        ...

    async def login(
        self, answers: Mapping[Step, str], *, attempt: Secrets | None = None
    ) -> LoginResult:
        """Log in with every answer so far (each passed through `accept`), and the `attempt`
        state of the NextStep that asked the last one (None on the first call).

        Returns LoggedIn, or NextStep when the service wants one more answer. Raises
        LoginRefused or ServiceUnavailable (bot.remote.errors) for anything else. A
        password is used for this call only: nothing derived from it is in the session's
        secrets unless the service itself issued it.
        """
        ...

    async def check(self, secrets: Secrets, *, detailed: bool = False) -> CheckOutcome:
        """Ask the service whether the session is alive.

        Never raises for anything the service or the network does: that is a Transient
        outcome. Only a definitive answer is Ended. `detailed` also fills
        Confirmed.details for /status (it may cost one more request).
        """
        ...

    async def logout(self, secrets: Secrets) -> LogoutOutcome:
        """End the session at the service; never raises for the service's answers."""
        ...


@runtime_checkable
class OffersSignInLinks(Protocol):
    """A service whose site also signs people in through other networks (VK, Google, …):
    the links go under the login question. Optional; checked with isinstance."""

    async def sign_in_links(self) -> list[SignInLink]:
        """The links now; an empty list when the service cannot give them (never raises)."""
        ...


@runtime_checkable
class TellsOwners(Protocol):
    """A service with facts of its own for the owners' /stats (e.g. which mirror answers).
    Optional; checked with isinstance."""

    def owner_facts(self) -> tuple[Sentence, ...]: ...
