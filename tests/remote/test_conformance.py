"""Every adapter, through the protocol alone: the same scenario for Spaces and sendspace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest

from bot.remote import (
    Confirmed,
    Ended,
    LoggedIn,
    LoginRefused,
    LogoutOutcome,
    RefusalReason,
    RemoteService,
    Step,
    Transient,
    Verdict,
    outcome_labels,
)
from bot.sendspace import SendspaceClient, SendspaceService
from bot.spaces import SpacesClient
from bot.spaces.service import SpacesService
from tests.fakes.sendspace_server import API_KEY, FakeSendspace
from tests.fakes.spaces_server import FakeSpaces


@dataclass
class Harness:
    service: RemoteService
    answers: dict[Step, str]
    end_all: Callable[[], object]  # the service forgets every session
    outage: Callable[[bool], None]  # the service answers with a web page, or recovers


@pytest.fixture(params=["spaces", "sendspace"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    async with httpx.AsyncHTTPTransport() as transport:
        if request.param == "spaces":
            async with FakeSpaces() as spaces:
                yield Harness(
                    SpacesService(SpacesClient(transport, spaces.url, rid="r", timeout=2.0)),
                    {Step.LOGIN_NAME: "alice", Step.PASSWORD: "secret123"},
                    lambda: spaces.state.expire(nid=1001),
                    lambda down: spaces.state.set_mode("html" if down else "ok"),
                )
        else:
            async with FakeSendspace() as sendspace:
                yield Harness(
                    SendspaceService(SendspaceClient(transport, API_KEY, sendspace.url)),
                    {Step.LOGIN_NAME: "alice", Step.PASSWORD: "s3cret-Pass"},
                    lambda: sendspace.state.expire(user="alice", kind="not_found"),
                    lambda down: sendspace.state.set_mode("html" if down else "ok"),
                )


async def test_the_life_of_a_session(harness: Harness) -> None:
    service = harness.service
    answers = {step: service.accept(step, text) for step, text in harness.answers.items()}
    assert set(answers) == set(service.info.steps) and None not in answers.values()

    result = await service.login({k: v for k, v in answers.items() if v is not None})
    assert isinstance(result, LoggedIn)
    session = result.session
    assert session.service == service.info.id

    assert isinstance(await service.check(session.secrets), Confirmed)
    harness.outage(True)
    transient = await service.check(session.secrets)
    assert isinstance(transient, Transient)
    assert outcome_labels(transient) == ("transient", "not_data")
    assert await service.logout(session.secrets) is LogoutOutcome.NOT_CONFIRMED
    harness.outage(False)

    harness.end_all()
    ended = await service.check(session.secrets)
    assert isinstance(ended, Ended) and ended.verdict is Verdict.ENDED
    assert (await service.logout(session.secrets)).ended


async def test_a_wrong_password(harness: Harness) -> None:
    answers = {**harness.answers, Step.PASSWORD: "not-the-password"}
    with pytest.raises(LoginRefused) as caught:
        await harness.service.login(answers)
    assert caught.value.reason is RefusalReason.BAD_CREDENTIALS
    assert caught.value.service == harness.service.info.id
