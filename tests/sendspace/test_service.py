"""SendspaceService against the fake sendspace API: login, check, logout, outages, hostile XML."""

from __future__ import annotations

import hashlib
import logging
import socket

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
    RefusalReason,
    RemoteService,
    RemoteSession,
    Sentence,
    ServiceUnavailable,
    Step,
    Transient,
    TransientReason,
)
from bot.sendspace import DEFAULT_BASE_URL, SendspaceClient, SendspaceService
from bot.spaces.transport import AiohttpTransport
from tests.fakes.sendspace_server import API_KEY, FakeSendspace

PASSWORD = "s3cret-Pass"  # the fake's default account "alice"
ANSWERS = {Step.LOGIN_NAME: "alice", Step.PASSWORD: PASSWORD}


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def assert_known_sentence(text: Sentence) -> None:
    for locale in SUPPORTED:
        assert text.key in read_catalog(locale), (locale, text.key)


async def logged_in(service: SendspaceService) -> RemoteSession:
    result = await service.login(ANSWERS)
    assert isinstance(result, LoggedIn)
    return result.session


def test_it_is_a_remote_service(service: SendspaceService) -> None:
    as_protocol: RemoteService = service  # mypy checks the structure; this checks the info
    assert as_protocol.info.id == "sendspace"
    assert as_protocol.info.steps == (Step.LOGIN_NAME, Step.PASSWORD)


# -- login ------------------------------------------------------------------------------


async def test_login_sends_the_tokened_password_and_never_the_password(
    service: SendspaceService, fake: FakeSendspace
) -> None:
    session = await logged_in(service)

    assert session.service == "sendspace"
    assert (session.account_id, session.display_name) == ("alice", "alice")
    assert fake.state.live_sessions() == {session.secrets["session_key"]: "alice"}
    create, login = list(fake.state.calls)
    assert (create.method, login.method) == ("auth.createtoken", "auth.login")
    assert create.params["api_key"] == API_KEY
    assert create.params["api_version"] == "1.0"
    token = login.params["token"]
    assert login.params["tokened_password"] == md5(token + md5(PASSWORD))
    for call in fake.state.calls:
        assert PASSWORD not in call.raw
        assert md5(PASSWORD) not in call.raw  # only the token-salted hash travels
        assert "password" not in {k for k in call.params if k != "tokened_password"}


async def test_login_name_case_does_not_make_another_account(
    service: SendspaceService,
) -> None:
    result = await service.login({Step.LOGIN_NAME: "Alice", Step.PASSWORD: PASSWORD})
    assert isinstance(result, LoggedIn)
    assert (result.session.account_id, result.session.display_name) == ("alice", "Alice")


async def test_wrong_password_is_refused_as_bad_credentials(
    service: SendspaceService, fake: FakeSendspace
) -> None:
    with pytest.raises(LoginRefused) as caught:
        await service.login({Step.LOGIN_NAME: "alice", Step.PASSWORD: "wrong"})
    assert caught.value.reason is RefusalReason.BAD_CREDENTIALS
    assert caught.value.text == Sentence("sendspace-code-8")
    assert fake.state.sessions == {}
    assert_known_sentence(caught.value.text)


async def test_unknown_user_is_refused_as_bad_credentials(service: SendspaceService) -> None:
    with pytest.raises(LoginRefused) as caught:
        await service.login({Step.LOGIN_NAME: "nobody", Step.PASSWORD: PASSWORD})
    assert caught.value.reason is RefusalReason.BAD_CREDENTIALS


async def test_an_unknown_api_key_is_the_owners_problem(
    fake: FakeSendspace, transport: httpx.AsyncBaseTransport
) -> None:
    service = SendspaceService(SendspaceClient(transport, "NOT-A-KEY", fake.url))
    with pytest.raises(LoginRefused) as caught:
        await service.login(ANSWERS)
    assert caught.value.reason is RefusalReason.MISCONFIGURED
    assert caught.value.text == Sentence("sendspace-code-18")
    assert fake.state.counts["auth.login"] == 0  # stopped at createToken


@pytest.mark.parametrize(
    ("code", "reason"),
    [(30, RefusalReason.REFUSED), (11, RefusalReason.REFUSED), (5, RefusalReason.MISCONFIGURED)],
)
async def test_other_login_errors_keep_their_sentence(
    service: SendspaceService, fake: FakeSendspace, code: int, reason: RefusalReason
) -> None:
    fake.state.next_error("auth.login", code)
    with pytest.raises(LoginRefused) as caught:
        await service.login(ANSWERS)
    assert caught.value.reason is reason
    assert caught.value.text == Sentence(f"sendspace-code-{code}")
    assert str(code) in str(caught.value)


async def test_maintenance_during_login_is_unavailability(
    service: SendspaceService, fake: FakeSendspace
) -> None:
    fake.state.next_error("auth.createtoken", 15)
    with pytest.raises(ServiceUnavailable) as caught:
        await service.login(ANSWERS)
    assert caught.value.reason is TransientReason.SERVICE_ERROR


async def test_an_undocumented_code_is_told_with_its_number(
    service: SendspaceService, fake: FakeSendspace
) -> None:
    fake.state.next_error("auth.login", 99)
    with pytest.raises(LoginRefused) as caught:
        await service.login(ANSWERS)
    assert caught.value.text == Sentence("sendspace-code-unknown", {"code": 99})


async def test_login_during_an_outage(service: SendspaceService, fake: FakeSendspace) -> None:
    fake.state.set_mode("http500")
    with pytest.raises(ServiceUnavailable) as caught:
        await service.login(ANSWERS)
    assert caught.value.reason is TransientReason.HTTP_STATUS
    assert caught.value.text == Sentence("sendspace-unavailable-http_status")
    assert "HTTP 500" in str(caught.value)


@pytest.mark.parametrize(
    ("step", "text", "expected"),
    [
        (Step.LOGIN_NAME, "  alice ", "alice"),
        (Step.LOGIN_NAME, "al ice", None),
        (Step.LOGIN_NAME, "/status", None),
        (Step.LOGIN_NAME, "a" * 65, None),
        (Step.LOGIN_NAME, "", None),
        (Step.PASSWORD, " spaced pass ", " spaced pass "),
        (Step.PASSWORD, "   ", None),
        (Step.PASSWORD, "x" * 129, None),
        (Step.PASSWORD, "tab\tpass", None),
        (Step.CAPTCHA, "1234", None),
        (Step.TOKEN, "abc", None),
    ],
)
def test_accept(step: Step, text: str, expected: str | None) -> None:
    offline = httpx.MockTransport(lambda request: httpx.Response(500))
    service = SendspaceService(SendspaceClient(offline, API_KEY))
    assert service.accept(step, text) == expected


def test_the_default_base_url_and_bad_settings() -> None:
    offline = httpx.MockTransport(lambda request: httpx.Response(500))
    assert DEFAULT_BASE_URL == "https://api.sendspace.com/rest/"
    assert DEFAULT_BASE_URL in repr(SendspaceClient(offline, API_KEY))
    for base_url in ("api.sendspace.com/rest/", "ftp://x/rest/", "https://u:p@x/rest/"):
        with pytest.raises(ValueError):
            SendspaceClient(offline, API_KEY, base_url)
    with pytest.raises(ValueError):
        SendspaceClient(offline, "  ")


# -- check ------------------------------------------------------------------------------


async def test_check_confirms_a_live_session(service: SendspaceService) -> None:
    session = await logged_in(service)
    outcome = await service.check(session.secrets)
    assert outcome == Confirmed()


async def test_detailed_check_tells_space_and_bandwidth(
    service: SendspaceService, fake: FakeSendspace
) -> None:
    account = fake.state.accounts["alice"]
    account.diskspace_left, account.bandwidth_left = -1, 3 * 1024 * 1024 + 5
    session = await logged_in(service)
    outcome = await service.check(session.secrets, detailed=True)
    assert isinstance(outcome, Confirmed)
    assert outcome.details == (
        Sentence("sendspace-status-disk-unlimited"),
        Sentence("sendspace-status-bandwidth-left", {"megabytes": 3}),
    )
    for line in outcome.details:
        assert_known_sentence(line)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("expired", EndReason.EXPIRED),
        ("not_found", EndReason.NOT_FOUND),
        ("not_auth", EndReason.NOT_AUTHENTICATED),
    ],
)
async def test_check_ends_an_expired_session(
    service: SendspaceService, fake: FakeSendspace, kind: str, reason: EndReason
) -> None:
    session = await logged_in(service)
    assert fake.state.expire(user="alice", kind=kind) == 1
    outcome = await service.check(session.secrets)
    assert isinstance(outcome, Ended)
    assert outcome.reason is reason


@pytest.mark.parametrize("code", [6, 7])
async def test_check_ends_on_error_6_and_7(
    service: SendspaceService, fake: FakeSendspace, code: int
) -> None:
    session = await logged_in(service)
    fake.state.next_error("auth.checksession", code)
    outcome = await service.check(session.secrets)
    assert isinstance(outcome, Ended)
    assert outcome.detail == f"error {code}"


@pytest.mark.parametrize("code", [3, 11, 15, 18, 30, 99])
async def test_any_other_error_on_check_is_transient(
    service: SendspaceService, fake: FakeSendspace, code: int
) -> None:
    session = await logged_in(service)
    fake.state.next_error("auth.checksession", code)
    outcome = await service.check(session.secrets)
    assert isinstance(outcome, Transient)
    assert outcome.reason is TransientReason.SERVICE_ERROR
    assert_known_sentence(outcome.text)
    # The session itself was untouched, and the next check confirms it.
    assert await service.check(session.secrets) == Confirmed()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("http500", TransientReason.HTTP_STATUS),
        ("html", TransientReason.NOT_DATA),
        ("badxml", TransientReason.NOT_DATA),
        ("entities", TransientReason.BAD_ANSWER),
        ("entities_utf16", TransientReason.BAD_ANSWER),
        ("huge", TransientReason.BAD_ANSWER),
    ],
)
async def test_outages_and_hostile_answers_are_transient(
    service: SendspaceService, fake: FakeSendspace, mode: str, reason: TransientReason
) -> None:
    session = await logged_in(service)
    fake.state.set_mode(mode)
    outcome = await service.check(session.secrets)
    assert isinstance(outcome, Transient)
    assert outcome.reason is reason
    assert outcome.text == Sentence(f"sendspace-unavailable-{reason.value}")
    assert_known_sentence(outcome.text)
    fake.state.set_mode("ok")
    assert await service.check(session.secrets) == Confirmed()


async def test_a_stalled_answer_times_out(
    fake: FakeSendspace, transport: httpx.AsyncBaseTransport
) -> None:
    service = SendspaceService(SendspaceClient(transport, API_KEY, fake.url, timeout=0.2))
    session = await logged_in(service)
    fake.state.set_mode("timeout")
    outcome = await service.check(session.secrets)
    assert isinstance(outcome, Transient)
    assert outcome.reason is TransientReason.TIMEOUT


async def test_nobody_listening_is_a_network_failure(
    transport: httpx.AsyncBaseTransport,
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = SendspaceClient(transport, API_KEY, f"http://127.0.0.1:{port}/rest/", timeout=1.0)
    outcome = await SendspaceService(client).check({"session_key": "k"})
    assert isinstance(outcome, Transient)
    assert outcome.reason is TransientReason.NETWORK


async def test_check_without_a_session_key_is_a_bug_not_a_verdict(
    service: SendspaceService,
) -> None:
    with pytest.raises(ValueError):
        await service.check({"sid": "a Spaces secret"})


# -- logout -----------------------------------------------------------------------------


async def test_logout_ends_the_session_at_sendspace(
    service: SendspaceService, fake: FakeSendspace
) -> None:
    session = await logged_in(service)
    assert await service.logout(session.secrets) is LogoutOutcome.LOGGED_OUT
    assert fake.state.sessions == {}
    assert await service.logout(session.secrets) is LogoutOutcome.ALREADY_ENDED
    outcome = await service.check(session.secrets)
    assert isinstance(outcome, Ended)


async def test_logout_during_an_outage_is_not_confirmed(
    service: SendspaceService, fake: FakeSendspace
) -> None:
    session = await logged_in(service)
    fake.state.set_mode("html")
    assert await service.logout(session.secrets) is LogoutOutcome.NOT_CONFIRMED
    assert not LogoutOutcome.NOT_CONFIRMED.ended
    fake.state.set_mode("ok")
    assert len(fake.state.live_sessions()) == 1


# -- secrets stay out of logs and reprs -----------------------------------------------------


async def test_no_secret_reaches_a_log_line_or_a_repr(
    service: SendspaceService,
    client: SendspaceClient,
    fake: FakeSendspace,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    session = await logged_in(service)
    await service.check(session.secrets, detailed=True)
    fake.state.set_mode("entities")
    await service.check(session.secrets)
    fake.state.set_mode("ok")
    await service.logout(session.secrets)
    key = session.secrets["session_key"]
    assert caplog.records  # the client does log; just not these
    for secret in (key, API_KEY, PASSWORD, md5(PASSWORD)):
        assert secret not in caplog.text
        assert secret not in repr(session)
    assert API_KEY not in repr(client)


async def test_through_the_bots_own_transport(fake: FakeSendspace) -> None:
    """The aiohttp-backed transport the bot shares with the Spaces client works here too."""
    transport = AiohttpTransport()
    try:
        service = SendspaceService(SendspaceClient(transport, API_KEY, fake.url, timeout=2.0))
        session = await logged_in(service)
        assert await service.check(session.secrets) == Confirmed()
        fake.state.set_mode("huge")
        outcome = await service.check(session.secrets)
        assert isinstance(outcome, Transient) and outcome.reason is TransientReason.BAD_ANSWER
    finally:
        await transport.aclose()
