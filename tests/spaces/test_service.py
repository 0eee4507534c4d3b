"""SpacesService: the Spaces client behind the bot.remote boundary, against the fake Spaces."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.locales import SUPPORTED, read_catalog
from bot.remote import (
    Confirmed,
    Ended,
    EndReason,
    LoggedIn,
    LoginRefused,
    LogoutOutcome,
    NextStep,
    RefusalReason,
    RemoteService,
    RemoteSession,
    Sentence,
    ServiceUnavailable,
    Step,
    Transient,
    TransientReason,
)
from bot.spaces import SpacesClient
from bot.spaces.service import SpacesService
from tests.fakes.spaces_server import CAPTCHA_PNG, FakeSpaces

ANSWERS = {Step.LOGIN_NAME: "alice", Step.PASSWORD: "secret123"}


@pytest.fixture
async def service(fake: FakeSpaces) -> AsyncIterator[SpacesService]:
    async with httpx.AsyncHTTPTransport() as transport:
        yield SpacesService(SpacesClient(transport, fake.url, rid="rid", timeout=1.0))


async def logged_in(service: SpacesService) -> RemoteSession:
    result = await service.login(ANSWERS)
    assert isinstance(result, LoggedIn)
    return result.session


def in_catalogue(sentence: Sentence) -> bool:
    return all(sentence.key in read_catalog(locale) for locale in SUPPORTED)


async def test_login_makes_a_session_the_store_can_keep(
    service: SpacesService, fake: FakeSpaces
) -> None:
    as_protocol: RemoteService = service
    assert as_protocol.info.id == "spaces"
    session = await logged_in(service)
    assert (session.service, session.account_id, session.display_name) == (
        "spaces",
        "1001",
        "Alice",
    )
    assert set(session.secrets) == {"sid", "ck"}
    assert session.secrets["sid"] in fake.state.sessions
    assert session.secrets["sid"] not in repr(session)


async def test_a_captcha_is_the_next_step(service: SpacesService, fake: FakeSpaces) -> None:
    fake.state.set_captcha("alice", True, answer="7777")
    step = await service.login(ANSWERS)
    assert isinstance(step, NextStep)
    assert (step.step, step.picture, step.wrong_answer) == (Step.CAPTCHA, CAPTCHA_PNG, False)
    assert set(step.attempt) == {"cookies"}  # the picture is tied to the attempt's cookie
    wrong = await service.login({**ANSWERS, Step.CAPTCHA: "1111"}, attempt=step.attempt)
    assert isinstance(wrong, NextStep) and wrong.wrong_answer
    # The right answer without the attempt's cookies is not taken for this picture.
    alone = await service.login({**ANSWERS, Step.CAPTCHA: "7777"})
    assert isinstance(alone, NextStep)
    done = await service.login({**ANSWERS, Step.CAPTCHA: "7777"}, attempt=wrong.attempt)
    assert isinstance(done, LoggedIn)


@pytest.mark.parametrize(
    ("answers", "reason", "key"),
    [
        ({**ANSWERS, Step.PASSWORD: "nope"}, RefusalReason.BAD_CREDENTIALS, "spaces-code-01003"),
        (
            {**ANSWERS, Step.LOGIN_NAME: "nobody"},
            RefusalReason.UNKNOWN_ACCOUNT,
            "spaces-code-00003",
        ),
    ],
)
async def test_wrong_credentials(
    service: SpacesService, answers: dict[Step, str], reason: RefusalReason, key: str
) -> None:
    with pytest.raises(LoginRefused) as caught:
        await service.login(answers)
    assert caught.value.reason is reason
    assert caught.value.text == Sentence(key)
    assert in_catalogue(caught.value.text)


async def test_rate_limit_and_unknown_codes_on_login(
    service: SpacesService, fake: FakeSpaces
) -> None:
    fake.state.next_code("login", "00007")
    with pytest.raises(LoginRefused) as caught:
        await service.login(ANSWERS)
    assert caught.value.reason is RefusalReason.RATE_LIMITED
    fake.state.next_code("login", "99999")
    with pytest.raises(LoginRefused) as caught:
        await service.login(ANSWERS)
    assert caught.value.text == Sentence("spaces-code-unknown", {"code": "99999"})


async def test_spaces_own_words_ride_along(service: SpacesService, fake: FakeSpaces) -> None:
    fake.state.next_code("login", "00025", {"error": "Blocked until <b>Monday</b>"})
    with pytest.raises(LoginRefused) as caught:
        await service.login(ANSWERS)
    assert caught.value.service_text == "Blocked until <b>Monday</b>"
    assert "Monday" not in str(caught.value)
    session = await logged_in(service)
    fake.state.next_code("check", "00006", {"error": "Try later"})
    outcome = await service.check(session.secrets)
    assert isinstance(outcome, Transient) and outcome.service_text == "Try later"


async def test_01006_sub_codes(service: SpacesService, fake: FakeSpaces) -> None:
    fake.state.next_code("login", "01006", {"auth_errror": 3})  # too fast
    with pytest.raises(LoginRefused) as caught:
        await service.login(ANSWERS)
    assert caught.value.reason is RefusalReason.RATE_LIMITED
    assert caught.value.text == Sentence("spaces-auth-error-3")
    assert in_catalogue(caught.value.text)
    session = await logged_in(service)
    fake.state.next_code("check", "01006", {"auth_errror": 1})  # another sign-in replaced it
    assert await service.check(session.secrets) == Ended(EndReason.REPLACED, "01006/1")
    fake.state.next_code("check", "01006", {"auth_errror": 5})
    outcome = await service.check(session.secrets)
    assert isinstance(outcome, Transient) and outcome.reason is TransientReason.SERVICE_ERROR


async def test_login_during_an_outage(service: SpacesService, fake: FakeSpaces) -> None:
    fake.state.set_mode("html")
    with pytest.raises(ServiceUnavailable) as caught:
        await service.login(ANSWERS)
    assert caught.value.reason is TransientReason.NOT_DATA
    assert caught.value.text == Sentence("spaces-unavailable-not_json")


async def test_check_confirms_with_details_when_asked(
    service: SpacesService, fake: FakeSpaces
) -> None:
    session = await logged_in(service)
    assert await service.check(session.secrets) == Confirmed(display_name="Alice")
    detailed = await service.check(session.secrets, detailed=True)
    assert isinstance(detailed, Confirmed)
    assert detailed.details == (
        Sentence("spaces-status-online"),
        Sentence("status-counters", {"mail": 1, "journal": 2, "feed": 5}),
    )
    assert all(in_catalogue(line) for line in detailed.details)
    assert fake.state.counts["getTopCounts"] == 0  # the check answer carried them


async def test_no_online_line_when_spaces_does_not_say(
    service: SpacesService, fake: FakeSpaces
) -> None:
    session = await logged_in(service)
    attributes = {"nid": 1001, "name": "Alice", "CK": session.secrets["ck"]}
    fake.state.next_code("check", "00000", {"attributes": attributes})  # no online_status
    outcome = await service.check(session.secrets, detailed=True)
    assert isinstance(outcome, Confirmed)
    assert [line.key for line in outcome.details] == ["status-counters"]
    assert fake.state.counts["getTopCounts"] == 1  # not in that answer: asked for


async def test_a_moved_csrf_value_is_renewed(service: SpacesService) -> None:
    session = await logged_in(service)
    outcome = await service.check({**session.secrets, "ck": "stale"})
    assert isinstance(outcome, Confirmed)
    assert outcome.renewed == session.secrets


async def test_check_ends_a_session_spaces_no_longer_knows(
    service: SpacesService, fake: FakeSpaces
) -> None:
    session = await logged_in(service)
    fake.state.expire(nid=1001)
    assert await service.check(session.secrets) == Ended(EndReason.NOT_AUTHENTICATED, "01001")
    fake.state.next_code("check", "01004")
    assert await service.check(session.secrets) == Ended(EndReason.NOT_FOUND, "01004")


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("http500", TransientReason.HTTP_STATUS),
        ("html", TransientReason.NOT_DATA),
        ("badjson", TransientReason.NOT_DATA),
        ("ratelimit", TransientReason.RATE_LIMITED),
    ],
)
async def test_outages_are_transient(
    service: SpacesService, fake: FakeSpaces, mode: str, reason: TransientReason
) -> None:
    session = await logged_in(service)
    fake.state.set_mode(mode)
    outcome = await service.check(session.secrets)
    assert isinstance(outcome, Transient) and outcome.reason is reason
    assert in_catalogue(outcome.text)


async def test_logout(service: SpacesService, fake: FakeSpaces) -> None:
    session = await logged_in(service)
    fake.state.set_mode("http500")
    assert await service.logout(session.secrets) is LogoutOutcome.NOT_CONFIRMED
    fake.state.set_mode("ok")
    assert await service.logout(session.secrets) is LogoutOutcome.LOGGED_OUT
    assert fake.state.sessions == {}
    assert await service.logout(session.secrets) is LogoutOutcome.ALREADY_ENDED


def test_accept_uses_the_login_rules(service: SpacesService) -> None:
    assert service.accept(Step.LOGIN_NAME, " +7 900 ") == "+7900"
    assert service.accept(Step.CAPTCHA, "12 34") == "1234"
    assert service.accept(Step.PASSWORD, "   ") is None
    assert service.accept(Step.TOKEN, "x") is None
