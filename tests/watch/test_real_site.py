"""The watch and what the real site does: a session replaced by another sign-in ends it;
a check that failed on every mirror is one failure for the outage detector."""

from __future__ import annotations

import random

import httpx
import pytest

from bot.domain import SessionState
from bot.locales import build_i18n
from bot.services.notifier import Notifier
from bot.services.registry import ServiceRegistry
from bot.services.watch import SessionWatch, WatchConfig
from bot.spaces import SpacesAPIError, SpacesClient
from bot.spaces.service import SpacesService
from tests.conftest import TEST_INSTANCE, only_session
from tests.watch.conftest import ADMIN, WatchKit


@pytest.mark.parametrize(("sub_code", "ended"), [(1, True), (2, False), (3, False), (4, False)])
async def test_a_session_replaced_by_another_sign_in_has_ended(
    kit: WatchKit, sub_code: int, ended: bool
) -> None:
    await kit.link(1, "1111")
    kit.spaces.answers["1111"] = SpacesAPIError("01006", auth_error=sub_code)
    await kit.sweep()
    session = await only_session(kit.store, 1)
    assert session is not None
    assert (session.state == SessionState.ENDED) is ended
    assert len(kit.tg.sent_messages(1)) == int(ended)


async def test_a_check_that_failed_on_every_mirror_counts_once(kit: WatchKit) -> None:
    asked: list[str] = []

    def unreachable(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        return httpx.Response(502)

    client = SpacesClient(
        httpx.MockTransport(unreachable), ["https://spcs.me", "https://gdespaces.com"], rid="r"
    )
    notifier = Notifier(kit.store, kit.sender, build_i18n(), [ADMIN], instance=TEST_INSTANCE)
    watch = SessionWatch(
        kit.store,
        ServiceRegistry([SpacesService(client)]),
        notifier,
        WatchConfig(interval=900, spaces_rate=0),
        instance=TEST_INSTANCE,
        rng=random.Random(1),
    )
    detector = watch.detectors["spaces"]
    observed: list[bool] = []
    observe = detector.observe

    def counting(transient: bool) -> None:
        observed.append(transient)
        observe(transient)

    detector.observe = counting  # type: ignore[method-assign]
    for chat in range(1, 5):
        await kit.link(chat, f"{chat}" * 4)
    await watch.sweep()
    assert len(asked) == 8  # both mirrors were tried for each session
    assert observed == [True] * 4  # but each check is one failure
    assert not detector.down  # 4 failures are below its five-sample minimum
