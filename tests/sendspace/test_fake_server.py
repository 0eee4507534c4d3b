"""The fake sendspace follows its doc and can be driven over HTTP, in process or not."""

from __future__ import annotations

import httpx

from tests.fakes.sendspace_server import (
    API_KEY,
    FakeSendspace,
    FakeSendspaceControl,
    FakeSendspaceProcess,
    md5_hex,
)


async def test_the_doc_flow_over_plain_http(fake: FakeSendspace) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        answer = await http.get(
            fake.url,
            params={"method": "auth.createToken", "api_key": API_KEY, "api_version": "1.0"},
        )
        assert answer.headers["content-type"].startswith("text/xml")
        token = answer.text.split("<token>")[1].split("</token>")[0]
        tokened = md5_hex(token + md5_hex("s3cret-Pass"))
        login = {"method": "auth.login", "token": token, "user_name": "alice"}
        answer = await http.get(fake.url, params={**login, "tokened_password": tokened})
        assert 'status="ok"' in answer.text and "<session_key>" in answer.text
        # A token is good for one login only.
        again = await http.get(fake.url, params={**login, "tokened_password": tokened})
        assert '<error code="6"' in again.text
        unknown = await http.get(fake.url, params={"method": "files.nope"})
        assert '<error code="2"' in unknown.text
        nothing = await http.get(fake.url)
        assert '<error code="1"' in nothing.text


async def test_control_over_http(fake: FakeSendspace) -> None:
    async with FakeSendspaceControl(fake.url) as control:
        await control.add_account("bob", "pw-bob", "bob@example.com")
        assert "bob" in fake.state.accounts
        fake.state.open_session("bob", session_key="k1")
        assert await control.sessions() == {"k1": "bob"}
        assert await control.expire(user="bob", kind="not_auth") == 1
        assert await control.sessions() == {}
        await control.next_error("auth.checkSession", 15)
        assert list(fake.state.next_errors["auth.checksession"]) == [15]
        await control.set_mode("html")
        assert fake.state.mode == "html"
        summary = await control.calls_summary()
        assert summary == {"counts": {}, "calls": []}
        await control.reset()
        assert fake.state.mode == "ok" and "bob" not in fake.state.accounts


async def test_as_a_separate_process() -> None:
    async with FakeSendspaceProcess() as process:
        assert process.url.endswith("/rest/")
        async with process.control() as control:
            await control.set_mode("http500")
            async with httpx.AsyncClient(trust_env=False) as http:
                assert (await http.get(process.url)).status_code == 500
