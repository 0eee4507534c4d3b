"""The real SpacesClient against the fake Spaces server, in-process and as a subprocess."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from bot.spaces import CaptchaRequired, Counters, SpacesAPIError, SpacesClient, SpacesUnavailable
from tests.fakes.spaces_server import (
    CAPTCHA_PNG,
    FakeSpaces,
    FakeSpacesControl,
    FakeSpacesProcess,
)

RID = "test-rid"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: never route test traffic through a proxy from the environment.
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
async def transport() -> AsyncIterator[httpx.AsyncHTTPTransport]:
    # httpx's own transport: the client works on any httpx transport, not only the bot's.
    async with httpx.AsyncHTTPTransport() as transport:
        yield transport


@pytest.fixture
def client(fake: FakeSpaces, transport: httpx.AsyncHTTPTransport) -> SpacesClient:
    return SpacesClient(transport, fake.url, rid=RID, timeout=5)


async def test_login_and_check(fake: FakeSpaces, client: SpacesClient) -> None:
    account = await client.login("alice", "secret123")
    assert (account.user_id, account.nickname) == (1001, "Alice")
    assert re.fullmatch(r"\d{16}", account.sid) and account.ck == account.sid[-4:]
    assert account.is_online is True and account.last_seen_at is not None
    assert account.profile_url == f"{fake.url}/mysite/?name=Alice"
    checked = await client.check(account.sid)
    assert checked.sid == account.sid and checked.user_id == 1001
    assert fake.state.counts["login"] == 1 and fake.state.counts["check"] == 1
    first = fake.state.calls[0]
    assert first.method == "login" and "password" not in first.fields
    assert first.fields["rid"] == RID
    assert fake.state.calls[1].sid == account.sid


async def test_login_by_alias(client: SpacesClient) -> None:
    assert (await client.login("Alice@Example.com", "secret123")).user_id == 1001


@pytest.mark.parametrize(
    ("login", "password", "code"),
    [("alice", "wrong-password", "01003"), ("nobody", "secret123", "00003"), ("", "x", "01002")],
)
async def test_login_failures(client: SpacesClient, login: str, password: str, code: str) -> None:
    with pytest.raises(SpacesAPIError) as caught:
        await client.login(login, password)
    assert caught.value.code == code


async def test_captcha_flow_wrong_then_right(fake: FakeSpaces, client: SpacesClient) -> None:
    fake.state.set_captcha("alice", True, answer="7777")
    with pytest.raises(CaptchaRequired) as first:
        await client.login("alice", "secret123")
    assert not first.value.wrong_answer
    assert first.value.captcha_url.startswith(f"{fake.url}/captcha/")
    cookies = first.value.cookies
    assert cookies  # the answer set the attempt's pre-login sid
    assert await client.fetch_captcha(first.value.captcha_url, cookies=cookies) == CAPTCHA_PNG

    with pytest.raises(CaptchaRequired) as wrong:
        await client.login("alice", "secret123", captcha_code="1234", cookies=cookies)
    assert wrong.value.wrong_answer
    assert wrong.value.captcha_url.startswith(f"{fake.url}/captcha/")

    account = await client.login(
        "alice", "secret123", captcha_code="7777", cookies=wrong.value.cookies
    )
    assert account.user_id == 1001
    assert [c.fields.get("code") for c in fake.state.calls] == [None, "1234", "7777"]
    # Each answer went back with the cookie set with the picture it answers.
    sent = [c.sid for c in fake.state.calls]
    assert sent[0] is None and sent[1] and sent[2] and sent[1] != sent[2]


async def test_a_captcha_answer_without_its_cookie_is_wrong_forever(
    fake: FakeSpaces, client: SpacesClient
) -> None:
    """What the real site does to a client that drops the cookie: every answer is wrong,
    and the picture is not even shown."""
    fake.state.set_captcha("alice", True, answer="7777")
    with pytest.raises(CaptchaRequired) as first:
        await client.login("alice", "secret123")
    with pytest.raises(SpacesUnavailable):
        await client.fetch_captcha(first.value.captcha_url)
    for _ in range(2):
        with pytest.raises(CaptchaRequired) as again:
            await client.login("alice", "secret123", captcha_code="7777")
        assert again.value.wrong_answer


async def test_a_cookie_for_another_domain_is_not_kept(
    fake: FakeSpaces, client: SpacesClient
) -> None:
    fake.state.set_captcha("alice", True, answer="7777")
    fake.state.captcha_cookie_domain = "evil.example"
    with pytest.raises(CaptchaRequired) as first:
        await client.login("alice", "secret123")
    assert not first.value.cookies
    with pytest.raises(CaptchaRequired) as again:
        await client.login("alice", "secret123", captcha_code="7777", cookies=first.value.cookies)
    assert again.value.wrong_answer
    assert [c.sid for c in fake.state.calls] == [None, None]


async def test_auth_error_subcodes(fake: FakeSpaces, client: SpacesClient) -> None:
    fake.state.next_code("login", "01006", {"auth_errror": 7})
    with pytest.raises(SpacesAPIError) as phone:
        await client.login("alice", "secret123")
    assert (phone.value.code, phone.value.auth_error) == ("01006", 7)
    assert not phone.value.is_session_gone

    fake.state.next_code("login", "01006", {"auth_errror": 3})
    with pytest.raises(SpacesAPIError) as fast:
        await client.login("alice", "secret123")
    assert fast.value.is_rate_limited and not fast.value.is_session_gone

    fake.state.set_captcha("alice", True, answer="7777")
    fake.state.next_code("login", "01006", {"auth_errror": 8})
    with pytest.raises(CaptchaRequired) as captcha:  # sub-code 8: the captcha step
        await client.login("alice", "secret123")
    assert captcha.value.auth_error == 8 and captcha.value.cookies
    assert await client.fetch_captcha(captcha.value.captcha_url, cookies=captcha.value.cookies)
    account = await client.login(
        "alice", "secret123", captcha_code="7777", cookies=captcha.value.cookies
    )

    assert fake.state.replace_sessions(1001) == 1
    with pytest.raises(SpacesAPIError) as replaced:
        await client.check(account.sid)
    assert (replaced.value.code, replaced.value.auth_error) == ("01006", 1)
    assert replaced.value.is_session_gone and replaced.value.session_replaced


async def test_expire_and_logout_end_sessions(fake: FakeSpaces, client: SpacesClient) -> None:
    first = await client.login("alice", "secret123")
    second = await client.login("alice", "secret123")
    assert fake.state.expire(sid=first.sid) == 1
    with pytest.raises(SpacesAPIError) as gone:
        await client.check(first.sid)
    assert gone.value.code == "01001" and gone.value.is_session_gone
    assert (await client.check(second.sid)).sid == second.sid

    await client.logout(second.sid)
    with pytest.raises(SpacesAPIError) as after_logout:
        await client.check(second.sid)
    assert after_logout.value.is_session_gone
    with pytest.raises(SpacesAPIError):
        await client.logout(second.sid)


async def test_expire_by_user(fake: FakeSpaces, client: SpacesClient) -> None:
    sids = [(await client.login("alice", "secret123")).sid for _ in range(3)]
    assert fake.state.expire(nid=1001) == 3
    for sid in sids:
        with pytest.raises(SpacesAPIError):
            await client.check(sid)


async def test_oauth_links_and_counters(fake: FakeSpaces, client: SpacesClient) -> None:
    links = await client.oauth_links()
    assert {link.provider for link in links} == {"vk", "ok", "mail_ru", "facebook", "google"}
    # Like the real site: on another mirror than the one asked.
    assert all(link.url.startswith("https://gdespaces.com/oauth/?CK=") for link in links)
    assert all("&amp;" not in link.url for link in links)
    fake.state.oauth_base = "https://gdespaces.com.evil.example"
    assert await client.oauth_links() == []  # refused: not a Spaces domain

    account = await client.login("alice", "secret123")
    # The counters come at the top level of the answer's attributes.
    assert account.counters == Counters(journal=2, feed=5, mail=1)
    sid = account.sid
    assert await client.top_counts(sid) == Counters(journal=2, feed=5, mail=1)
    fake.state.set_counters(journal=0, feed=1, mail=7)
    assert await client.top_counts(sid) == Counters(journal=0, feed=1, mail=7)
    assert (await client.check(sid)).counters == Counters(journal=0, feed=1, mail=7)
    fake.state.expire(sid=sid)
    with pytest.raises(SpacesAPIError) as gone:
        await client.top_counts(sid)
    assert gone.value.is_session_gone


@pytest.mark.parametrize(
    ("mode", "reason", "status"),
    [
        ("http500", "http_status", 500),
        ("html", "not_json", 200),
        ("badjson", "not_json", 200),
        ("timeout", "timeout", None),
    ],
)
async def test_fault_modes(
    fake: FakeSpaces,
    transport: httpx.AsyncHTTPTransport,
    mode: str,
    reason: str,
    status: int | None,
) -> None:
    client = SpacesClient(transport, fake.url, rid=RID, timeout=0.3)
    fake.state.set_mode(mode)
    with pytest.raises(SpacesUnavailable) as caught:
        await client.check("1234123412341234")
    assert (caught.value.reason, caught.value.status) == (reason, status)
    fake.state.set_mode("ok")
    assert (await client.login("alice", "secret123")).user_id == 1001


async def test_ratelimit_mode(fake: FakeSpaces, client: SpacesClient) -> None:
    fake.state.set_mode("ratelimit")
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: client.login("alice", "secret123"),
        lambda: client.check("1"),
        client.oauth_links,
    ]
    for call in calls:
        with pytest.raises(SpacesAPIError) as caught:
            await call()
        assert caught.value.is_rate_limited and not caught.value.is_session_gone


async def test_next_code_is_one_shot(fake: FakeSpaces, client: SpacesClient) -> None:
    fake.state.next_code("login", "00035")
    fake.state.next_code("login", "00001", {"captcha_url": None})
    with pytest.raises(SpacesAPIError) as banned:
        await client.login("alice", "secret123")
    assert (banned.value.code, banned.value.name) == ("00035", "ERR_YOU_ARE_BANNED")
    with pytest.raises(SpacesAPIError) as no_url:
        await client.login("alice", "secret123")
    assert type(no_url.value) is SpacesAPIError and no_url.value.code == "00001"
    assert (await client.login("alice", "secret123")).user_id == 1001


async def test_unknown_method(fake: FakeSpaces, http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"{fake.url}/neoapi/session",
        files={"method": (None, b"getTopCounts")},  # a common method on the wrong endpoint
        headers={"X-Proxy": "spaces", "Cookie": "json=1"},
    )
    assert response.json()["code"] == "00002"


async def test_json_only_with_header_cookie_and_multipart(
    fake: FakeSpaces, http: httpx.AsyncClient
) -> None:
    url, form = f"{fake.url}/neoapi/session", {"method": (None, b"check")}
    no_proxy = await http.post(url, files=form, headers={"Cookie": "json=1"})
    no_cookie = await http.post(url, files=form, headers={"X-Proxy": "spaces"})
    for response in (no_proxy, no_cookie):
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
    urlencoded = await http.post(
        url, data={"method": "check"}, headers={"X-Proxy": "spaces", "Cookie": "json=1"}
    )
    assert urlencoded.status_code == 400
    envelope = await http.post(url, files=form, headers={"X-Proxy": "spaces", "Cookie": "json=1"})
    assert set(envelope.json()) == {"css_files", "time", "config", "t", "code"}


async def test_set_cookie_from_login_does_not_mix_sessions(
    fake: FakeSpaces, client: SpacesClient
) -> None:
    fake.state.add_user("bob", "bobpassword", 2002, "Bob")
    alice = await client.login("alice", "secret123")
    bob = await client.login("bob", "bobpassword")  # answers Set-Cookie: sid=<bob's>
    assert (await client.check(alice.sid)).user_id == 1001
    assert (await client.check(bob.sid)).user_id == 2002
    assert [c.sid for c in fake.state.calls if c.method == "check"] == [alice.sid, bob.sid]


async def test_control_over_http_in_process(fake: FakeSpaces, client: SpacesClient) -> None:
    async with FakeSpacesControl(fake.url) as control:
        await control.add_user("carol", "carolpass", 3003, "Carol", aliases=["+79990001122"])
        await control.set_captcha("carol", True, answer="4242")
        with pytest.raises(CaptchaRequired) as challenge:
            await client.login("+79990001122", "carolpass")
        cookies = challenge.value.cookies
        account = await client.login("carol", "carolpass", captcha_code="4242", cookies=cookies)
        assert (await control.sessions()) == {account.sid: 3003}
        assert await control.expire(nid=3003) == 1
        await control.next_code("check", "00007")
        with pytest.raises(SpacesAPIError) as limited:
            await client.check(account.sid)
        assert limited.value.is_rate_limited
        await control.set_mode("http500")
        assert fake.state.mode == "http500"
        await control.set_mirror_mode("html")
        assert fake.mirror.mode == "html"
        await control.set_oauth_base("https://spaces.im")
        await control.set_captcha_cookie_domain("evil.example")
        assert (fake.state.oauth_base, fake.state.captcha_cookie_domain) == (
            "https://spaces.im",
            "evil.example",
        )
        assert await control.replace_sessions(3003) == 0
        counts = await control.counts()
        assert counts == {"login": 2, "check": 1}
        await control.reset()
        assert fake.state.mode == "ok" and fake.state.find_user("carol") is None
        assert await control.counts() == {}
        await control.set_mirror_mode("ok")


async def test_accept_any_sid(fake: FakeSpaces, client: SpacesClient) -> None:
    with pytest.raises(SpacesAPIError) as gone:
        await client.check("1234567890123456")
    assert gone.value.is_session_gone  # off by default: unknown SIDs are dead
    async with FakeSpacesControl(fake.url) as control:
        await control.accept_any_sid(True)
        checked = await client.check("1234567890123456")
        assert (checked.sid, checked.user_id) == ("1234567890123456", 890123456)
        assert isinstance(await client.top_counts("42"), Counters)
        assert fake.state.sessions == {}  # nothing is kept per SID
        account = await client.login("alice", "secret123")  # real sessions still work
        assert (await client.check(account.sid)).user_id == 1001
        await control.accept_any_sid(False)
        with pytest.raises(SpacesAPIError):
            await client.check("1234567890123456")
        await control.accept_any_sid(True)
        await control.reset()
    assert fake.state.accept_any_sid is False


async def test_calls_list_is_bounded_but_counts_exact(
    fake: FakeSpaces, client: SpacesClient
) -> None:
    fake.state.calls = type(fake.state.calls)(maxlen=5)
    for _ in range(12):
        with pytest.raises(SpacesAPIError):
            await client.check("0")
    assert fake.state.counts["check"] == 12 and len(fake.state.calls) == 5


async def test_subprocess_mode(
    http: httpx.AsyncClient, transport: httpx.AsyncHTTPTransport
) -> None:
    fake = FakeSpacesProcess()
    await fake.start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fake.url)
        client = SpacesClient(transport, fake.url, rid=RID, timeout=5)
        async with fake.control() as control:
            await control.add_user("dave", "davepass", 4004, "Dave")
            account = await client.login("dave", "davepass")
            assert (await client.check(account.sid)).user_id == 4004
            assert await control.expire(sid=account.sid) == 1
            with pytest.raises(SpacesAPIError) as gone:
                await client.check(account.sid)
            assert gone.value.is_session_gone
            await control.set_mode("html")
            with pytest.raises(SpacesUnavailable):
                await client.check(account.sid)
            summary = await control.calls_summary()
            assert summary["counts"] == {"login": 1, "check": 3}
            assert all("password" not in call["fields"] for call in summary["calls"])
    finally:
        returncode = await fake.stop()
    assert returncode == 0  # SIGTERM is a clean stop
    assert fake.process is not None and fake.process.stdout is not None
    assert await fake.process.stdout.read() == b""  # READY was the only line
    with pytest.raises(httpx.ConnectError):
        await http.get(fake.url)


async def test_two_mirrors_share_one_site(
    fake: FakeSpaces, transport: httpx.AsyncHTTPTransport
) -> None:
    async with FakeSpaces(state=fake.state) as second:
        client = SpacesClient(transport, [fake.url, second.url], rid=RID, timeout=5)
        account = await client.login("alice", "secret123")
        fake.mirror.mode = "http500"  # this address only
        assert (await client.check(account.sid)).user_id == 1001  # the SID works on both
        assert client.base_url == second.url
        assert [c.sid for c in fake.state.calls] == [None, account.sid, account.sid]


async def test_subprocess_with_two_mirrors(transport: httpx.AsyncHTTPTransport) -> None:
    async with FakeSpacesProcess(mirrors=2) as fake:
        assert len(fake.urls) == 2 and fake.url == fake.urls[0]
        client = SpacesClient(transport, fake.urls, rid=RID, timeout=5)
        account = await client.login("alice", "secret123")
        async with FakeSpacesControl(fake.urls[0]) as first:
            await first.set_mirror_mode("html")
            assert (await client.check(account.sid)).user_id == 1001
            assert client.base_url == fake.urls[1]
            assert (await first.counts()) == {"login": 1, "check": 2}  # one state for both


@pytest.mark.parametrize("kind", ["huge", "endless"])
async def test_a_huge_or_endless_picture_is_cut_off(
    fake: FakeSpaces, transport: httpx.AsyncHTTPTransport, kind: str
) -> None:
    client = SpacesClient(transport, fake.url, rid=RID, timeout=5, captcha_max_bytes=64 * 1024)
    fake.state.set_captcha("alice", True)
    with pytest.raises(CaptchaRequired) as challenge:
        await client.login("alice", "secret123")
    async with FakeSpacesControl(fake.url) as control:
        await control.set_captcha_picture(kind)
    with pytest.raises(SpacesUnavailable) as caught:
        await client.fetch_captcha(challenge.value.captcha_url, cookies=challenge.value.cookies)
    assert caught.value.reason == "bad_answer"
