"""What the real site does beyond the doc: mirrors, a login attempt's cookies, 01006's
sub-codes, counters in the check answer, links and pictures on any Spaces domain."""

from __future__ import annotations

import httpx
import pytest

from bot.spaces import (
    CaptchaRequired,
    Counters,
    LoginCookies,
    SpacesAPIError,
    SpacesClient,
    SpacesUnavailable,
)
from bot.spaces.hosts import is_public_address, is_spaces_domain, parse_mirrors
from tests.spaces.test_client import (
    CAPTCHA_URL,
    LOGIN,
    LOGIN_OK,
    OAUTH_OK,
    PASSWORD,
    PNG,
    SID,
    Recorder,
    answer,
    json_response,
)

MIRRORS = ["https://spcs.me", "https://gdespaces.com"]
PRE_LOGIN_SID = "9876543210987654"


class SiteRecorder(Recorder):
    """Also remembers which names the client looked up."""

    def __init__(self) -> None:
        super().__init__()
        self.resolved: list[str] = []


def picture(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=PNG, headers={"Content-Type": "image/png"})


def make_client(
    recorder: SiteRecorder, mirrors: list[str] | str = MIRRORS, addresses: list[str] | None = None
) -> SpacesClient:
    async def resolve(host: str) -> list[str]:
        recorder.resolved.append(host)
        if addresses is None:
            raise OSError("no such name")
        return addresses

    return SpacesClient(
        httpx.MockTransport(recorder), mirrors, rid="r", timeout=2, captcha_max_bytes=4096,
        resolver=resolve,
    )  # fmt: skip


def hosts_asked(recorder: Recorder) -> list[str]:
    return [request.url.host for request in recorder.requests]


# -- mirrors ------------------------------------------------------------------------------


def down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


def dns_failure(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno -2] Name or service not known")


def timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out")


@pytest.mark.parametrize(
    "failure",
    [
        down,
        dns_failure,
        timeout,
        lambda request: httpx.Response(502, text="Bad Gateway"),
        lambda request: httpx.Response(200, html="<html>Spaces</html>"),
    ],
    ids=["refused", "dns", "timeout", "5xx", "html"],
)
async def test_a_mirror_that_cannot_answer_hands_over_to_the_next_which_is_kept(
    failure: object,
) -> None:
    recorder = SiteRecorder()

    def reply(request: httpx.Request) -> httpx.Response:
        if request.url.host == "spcs.me":
            return failure(request)  # type: ignore[operator,no-any-return]
        return json_response(LOGIN_OK)

    recorder.reply = reply
    client = make_client(recorder)
    account = await client.check(SID)
    assert account.sid == SID
    assert hosts_asked(recorder) == ["spcs.me", "gdespaces.com"]
    assert client.base_url == "https://gdespaces.com"
    await client.check(SID)  # straight to the one that answered
    assert hosts_asked(recorder)[2:] == ["gdespaces.com"]
    # The SID goes to whichever mirror is asked.
    assert all(r.headers["Cookie"] == f"json=1; sid={SID}" for r in recorder.requests)


@pytest.mark.parametrize(
    "reply",
    [
        lambda request: json_response(answer("01001")),  # an answer, not an outage
        lambda request: httpx.Response(404),
        lambda request: httpx.Response(302, headers={"Location": "/registration/"}),
    ],
)
async def test_an_answer_from_the_first_mirror_is_final(reply: object) -> None:
    recorder = SiteRecorder()
    recorder.reply = reply  # type: ignore[assignment]
    client = make_client(recorder)
    with pytest.raises((SpacesAPIError, SpacesUnavailable)):
        await client.check(SID)
    assert hosts_asked(recorder) == ["spcs.me"]


async def test_failing_on_every_mirror_is_one_failure() -> None:
    recorder = SiteRecorder()
    recorder.reply = lambda request: httpx.Response(503)
    client = make_client(recorder, [*MIRRORS, "http://127.0.0.1:8080/spaces"])
    with pytest.raises(SpacesUnavailable) as caught:
        await client.check(SID)
    assert (caught.value.reason, caught.value.status) == ("http_status", 503)
    assert hosts_asked(recorder) == ["spcs.me", "gdespaces.com", "127.0.0.1"]
    assert str(recorder.requests[2].url) == "http://127.0.0.1:8080/spaces/neoapi/session"
    assert client.base_url == "https://spcs.me"  # nothing answered: nothing changes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://spcs.me", ("https://spcs.me",)),
        (" https://spcs.me/ ,http://127.0.0.1:8080/x ,", ("https://spcs.me", "http://127.0.0.1:8080/x")),
        ("https://spcs.me,https://spcs.me", ("https://spcs.me",)),
    ],
)  # fmt: skip
def test_mirrors_setting(value: str, expected: tuple[str, ...]) -> None:
    assert parse_mirrors(value) == expected


@pytest.mark.parametrize(
    "value", ["spcs.me", "https://spcs.me,ftp://x", "https://u:p@spcs.me", "https://a/?q=1", " , "]
)
def test_a_bad_mirror_is_one_sentence(value: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_mirrors(value)
    assert "\n" not in str(caught.value)


# -- a login attempt's cookies ---------------------------------------------------------------


def captcha_answer(*set_cookies: str, code: str = "00001") -> httpx.Response:
    return json_response(
        answer(code, captcha_url=CAPTCHA_URL), headers=[("Set-Cookie", c) for c in set_cookies]
    )


async def test_the_captcha_cookie_goes_back_with_the_answer_and_the_picture() -> None:
    recorder = SiteRecorder()
    recorder.reply = lambda request: captcha_answer(f"sid={PRE_LOGIN_SID}; Path=/; HttpOnly")
    client = make_client(recorder)
    with pytest.raises(CaptchaRequired) as challenge:
        await client.login(LOGIN, PASSWORD)
    cookies = challenge.value.cookies
    assert cookies.header_for("spcs.me") == f"sid={PRE_LOGIN_SID}"
    assert PRE_LOGIN_SID not in repr(cookies) + repr(challenge.value)

    recorder.reply = picture
    assert await client.fetch_captcha(CAPTCHA_URL, cookies=cookies) == PNG
    assert recorder.requests[-1].headers["Cookie"] == f"sid={PRE_LOGIN_SID}"

    recorder.reply = lambda request: json_response(LOGIN_OK)
    await client.login(LOGIN, PASSWORD, captcha_code="1234", cookies=cookies)
    assert recorder.requests[-1].headers["Cookie"] == f"json=1; sid={PRE_LOGIN_SID}"
    await client.check(SID)  # another request: nothing of the attempt goes with it
    assert recorder.requests[-1].headers["Cookie"] == f"json=1; sid={SID}"


async def test_a_wrong_answer_renews_the_cookie() -> None:
    recorder = SiteRecorder()
    recorder.reply = lambda request: captcha_answer("sid=1111")
    client = make_client(recorder)
    with pytest.raises(CaptchaRequired) as first:
        await client.login(LOGIN, PASSWORD)
    recorder.reply = lambda request: captcha_answer("sid=2222", "lang=ru", code="00004")
    with pytest.raises(CaptchaRequired) as wrong:
        await client.login(LOGIN, PASSWORD, captcha_code="0", cookies=first.value.cookies)
    assert recorder.requests[-1].headers["Cookie"] == "json=1; sid=1111"
    assert wrong.value.cookies.header_for("spcs.me") == "sid=2222; lang=ru"


@pytest.mark.parametrize(
    "set_cookie",
    [
        "sid=1111; Domain=evil.example",
        "sid=1111; Domain=spcs.me.evil.example",
        "sid=1111; Domain=me",  # a whole top-level domain
        "sid=1111; Domain=pcs.me",
        "json=0",  # ours
        "sid=a b",
        'sid=with"quote',
        "sid=" + "x" * 5000,
        "no-equals-sign",
        "sid=1111; Max-Age=0",
        "sid=1111; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
    ],
)
async def test_a_cookie_that_is_not_for_us_is_ignored(set_cookie: str) -> None:
    recorder = SiteRecorder()
    recorder.reply = lambda request: captcha_answer(set_cookie)
    client = make_client(recorder)
    with pytest.raises(CaptchaRequired) as challenge:
        await client.login(LOGIN, PASSWORD)
    assert not challenge.value.cookies
    recorder.reply = lambda request: json_response(LOGIN_OK)
    await client.login(LOGIN, PASSWORD, captcha_code="1", cookies=challenge.value.cookies)
    assert recorder.requests[-1].headers["Cookie"] == "json=1"


async def test_a_host_only_cookie_stays_on_its_mirror_a_domain_cookie_on_its_domain() -> None:
    cookies = LoginCookies().merged(
        ["sid=1111", "lang=ru; Domain=.spcs.me", "x=1; Domain=m.spcs.me"], "m.spcs.me"
    )
    assert cookies.header_for("m.spcs.me") == "sid=1111; lang=ru; x=1"
    assert cookies.header_for("spcs.me") == "lang=ru"
    assert cookies.header_for("a.m.spcs.me") == "lang=ru; x=1"
    assert cookies.header_for("gdespaces.com") == ""
    assert LoginCookies.load(cookies.dump()) == cookies
    for garbage in ("", "[", "{}", '[["a;b", "1", "spcs.me", true]]', "[[1]]"):
        assert not LoginCookies.load(garbage)
    later = cookies.merged(["sid=; Max-Age=0", "lang=en; Domain=spcs.me"], "m.spcs.me")
    assert later.header_for("m.spcs.me") == "lang=en; x=1"


async def test_only_a_login_keeps_cookies() -> None:
    recorder = SiteRecorder()
    recorder.reply = lambda request: json_response(LOGIN_OK, headers={"Set-Cookie": "sid=1"})
    client = make_client(recorder)
    await client.login(LOGIN, PASSWORD)
    await client.check(SID)
    assert [r.headers["Cookie"] for r in recorder.requests] == ["json=1", f"json=1; sid={SID}"]


# -- 01006 and its sub-code ------------------------------------------------------------------


@pytest.mark.parametrize("value", [7, "7", "07"])
async def test_auth_error_sub_code_is_read(value: object) -> None:
    recorder = SiteRecorder()
    recorder.reply = lambda request: json_response(answer("01006", auth_errror=value))
    with pytest.raises(SpacesAPIError) as caught:
        await make_client(recorder).login(LOGIN, PASSWORD)
    assert (caught.value.code, caught.value.auth_error) == ("01006", 7)
    assert "auth error 7" in str(caught.value)


async def test_sub_code_8_with_a_picture_is_a_captcha_and_without_one_is_not() -> None:
    recorder = SiteRecorder()
    recorder.reply = lambda request: json_response(
        answer("01006", auth_errror=8, captcha_url=CAPTCHA_URL), headers={"Set-Cookie": "sid=5"}
    )
    client = make_client(recorder)
    with pytest.raises(CaptchaRequired) as captcha:
        await client.login(LOGIN, PASSWORD)
    assert captcha.value.auth_error == 8 and not captcha.value.wrong_answer
    assert captcha.value.cookies.header_for("spcs.me") == "sid=5"
    recorder.reply = lambda request: json_response(answer("01006", auth_errror=8))
    with pytest.raises(SpacesAPIError) as plain:
        await client.login(LOGIN, PASSWORD)
    assert type(plain.value) is SpacesAPIError and plain.value.auth_error == 8


@pytest.mark.parametrize(
    ("error", "gone", "limited"),
    [
        (SpacesAPIError("01006", auth_error=1), True, False),
        (SpacesAPIError("01006", auth_error=3), False, True),
        (SpacesAPIError("01006", auth_error=4), False, False),
        (SpacesAPIError("01006"), False, False),
        (SpacesAPIError("00006", auth_error=1), False, False),  # only 01006 has sub-codes
    ],
)
def test_what_a_sub_code_means_for_a_session(
    error: SpacesAPIError, gone: bool, limited: bool
) -> None:
    assert (error.is_session_gone, error.is_rate_limited) == (gone, limited)


# -- counters ----------------------------------------------------------------------------------


async def test_counters_come_from_the_check_answer() -> None:
    recorder = SiteRecorder()
    body = answer(attributes={**LOGIN_OK["attributes"], "journalTbNm": "3", "lentaTbNm": 4,
                              "mailTbNm": 5, "confirm_phone": 0, "color": 2})  # fmt: skip
    recorder.reply = lambda request: json_response(body)
    account = await make_client(recorder).check(SID)
    assert account.counters == Counters(journal=3, feed=4, mail=5)
    # The doc's own sample has mailTbNm alone: no made-up zeros for the other two.
    recorder.reply = lambda request: json_response(LOGIN_OK)
    assert (await make_client(recorder).check(SID)).counters is None


# -- links and pictures on any Spaces domain ---------------------------------------------------


async def test_sign_in_links_on_any_spaces_mirror_and_nowhere_else() -> None:
    recorder = SiteRecorder()
    urls = {
        "vk_login_URL": "https://gdespaces.com/oauth/?P=1&amp;sid=1",
        "google_login_URL": "https://gdespaces.com/oauth/?P=5",
        "ok_login_URL": "https://m.spaces.ru/oauth/?P=2",
        "mail_ru_login_URL": "https://gdespaces.com.evil.example/oauth/?P=3",
        "facebook_login_URL": "http://spac1.net/oauth/?P=4",  # not https, not configured
        "x_login_URL": "https://user@spcs.me/oauth/",
        "y_login_URL": "https://spcs.me:8443/oauth/",
    }
    recorder.reply = lambda request: json_response({**OAUTH_OK, "urls": urls})
    links = await make_client(recorder).oauth_links()
    assert {link.provider: link.url for link in links} == {
        "vk": "https://gdespaces.com/oauth/?P=1&sid=1",
        "google": "https://gdespaces.com/oauth/?P=5",
        "ok": "https://m.spaces.ru/oauth/?P=2",
    }


async def test_a_configured_mirror_counts_as_configured_scheme_and_port_included() -> None:
    recorder = SiteRecorder()
    local = "http://127.0.0.1:8080"
    urls = {"vk_login_URL": f"{local}/oauth/", "ok_login_URL": "http://127.0.0.1:8081/oauth/"}
    recorder.reply = lambda request: json_response({**OAUTH_OK, "urls": urls})
    client = make_client(recorder, [local])
    assert [link.provider for link in await client.oauth_links()] == ["vk"]
    recorder.reply = picture
    assert await client.fetch_captcha(f"{local}/captcha/1.png") == PNG
    assert recorder.resolved == []  # configured: no lookup


async def test_a_picture_on_a_spaces_domain_is_fetched_when_it_resolves_to_the_internet() -> None:
    recorder = SiteRecorder()
    recorder.reply = picture
    client = make_client(recorder, addresses=["185.12.92.31"])
    assert await client.fetch_captcha("https://ts01.spac.me/captcha/1.png") == PNG
    assert recorder.resolved == ["ts01.spac.me"]


@pytest.mark.parametrize(
    "addresses",
    [["127.0.0.1"], ["185.12.92.31", "10.0.0.5"], ["169.254.169.254"], ["::1"],
     ["::ffff:192.168.1.1"], ["fd00::1"], []],
)  # fmt: skip
async def test_a_spaces_name_pointing_into_this_network_is_not_fetched(
    addresses: list[str],
) -> None:
    recorder = SiteRecorder()
    recorder.reply = picture
    client = make_client(recorder, addresses=addresses)
    with pytest.raises(SpacesUnavailable) as caught:
        await client.fetch_captcha("https://spaces.ru/captcha/1.png")
    assert caught.value.reason == "bad_answer"
    assert recorder.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://gdespaces.com/captcha/1.png",  # a known domain, but not https
        "https://gdespaces.com:8443/captcha/1.png",
        "https://notspaces.ru/captcha/1.png",
        "https://127.0.0.1/captcha/1.png",
    ],
)
async def test_a_picture_elsewhere_is_not_even_looked_up(url: str) -> None:
    recorder = SiteRecorder()
    client = make_client(recorder, addresses=["185.12.92.31"])
    with pytest.raises(SpacesUnavailable):
        await client.fetch_captcha(url)
    assert recorder.requests == [] and recorder.resolved == []


async def test_a_name_that_does_not_resolve_is_a_network_failure() -> None:
    recorder = SiteRecorder()
    client = make_client(recorder, addresses=None)
    with pytest.raises(SpacesUnavailable) as caught:
        await client.fetch_captcha("https://spaces.im/captcha/1.png")
    assert caught.value.reason == "network" and recorder.requests == []


def test_domains_and_addresses() -> None:
    assert is_spaces_domain("SPCS.me.") and is_spaces_domain("a.b.spaces-blogs.com")
    assert not is_spaces_domain("evilspcs.me") and not is_spaces_domain("spcs.me.evil.example")
    assert is_public_address("185.12.92.31") and is_public_address("2a00:1450::1")
    for private in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "100.64.0.1", "0.0.0.0", "224.0.0.1",
                    "::ffff:127.0.0.1", "fe80::1%eth0", "not an address"):  # fmt: skip
        assert not is_public_address(private), private
