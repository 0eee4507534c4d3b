from __future__ import annotations

import pytest

from bot.handlers.login import NEW_PICTURE, LoginFlow
from bot.handlers.ui import CANCEL, LOGIN
from tests.conversation.conftest import CHAT, Harness, buttons, texts


async def walk_to_password(h: Harness, login: str = "alice", **kw: object) -> None:
    await h.say("/login", **kw)  # type: ignore[arg-type]
    assert await h.state() == LoginFlow.login.state
    await h.say(login, **kw)  # type: ignore[arg-type]
    assert await h.state() == LoginFlow.password.state


async def test_login_success_deletes_password_and_stores_encrypted_session(h: Harness) -> None:
    calls = await h.say("/login")
    assert h.t("login-ask-login") in texts(calls)[0]
    urls = [b["url"] for b in buttons(calls) if "url" in b]
    # Social sign-in offered, on the mirror the site names (gdespaces.com), Google too.
    assert len(urls) == 5 and all(u.startswith("https://gdespaces.com/oauth/") for u in urls)
    await h.say("alice")
    password_update = h.tg.send_message("secret123", chat_id=CHAT)
    calls = await h._feed(password_update)

    delete = [c for c in calls if c.method == "deleteMessage"]
    assert delete and delete[0].params["message_id"] == password_update["message"]["message_id"]
    assert calls.index(delete[0]) == 0  # the password leaves the chat before anything else
    assert any("Alice" in t for t in texts(calls))
    assert await h.state() is None
    assert await h.fsm_data() == {}

    session = await h.store.get_session(CHAT)
    assert session is not None and session.nickname == "Alice" and session.spaces_user_id == 1001
    assert session.sid in h.spaces.state.sessions  # type: ignore[attr-defined]


async def test_password_never_reaches_fsm_storage(h: Harness) -> None:
    h.spaces.state.set_captcha("alice", True, "4242")
    await walk_to_password(h)
    calls = await h.say("secret123")
    assert await h.state() == LoginFlow.captcha.state
    assert "secret123" not in repr(await h.fsm_data())
    photo = [c for c in calls if c.method == "sendPhoto"]
    assert photo and photo[0].files and photo[0].files.get("photo", b"").startswith(b"\x89PNG")


async def test_captcha_wrong_then_right(h: Harness) -> None:
    h.spaces.state.set_captcha("alice", True, "4242")
    await walk_to_password(h)
    await h.say("secret123")
    calls = await h.say("1111")
    assert [c for c in calls if c.method == "sendPhoto"]
    assert h.t("captcha-wrong") in texts(calls)
    assert await h.state() == LoginFlow.captcha.state
    calls = await h.say("4242")
    assert await h.state() is None
    assert (await h.store.get_session(CHAT)) is not None


@pytest.mark.parametrize(
    ("login", "password", "msg_key"),
    [
        ("nobody", "secret123", "spaces-code-00003"),
        ("alice", "wrong-password", "spaces-code-01003"),
    ],
)
async def test_login_failures_get_their_own_sentence(
    h: Harness, login: str, password: str, msg_key: str
) -> None:
    await walk_to_password(h, login)
    calls = await h.say(password)
    assert any(h.t(msg_key) in t for t in texts(calls))
    assert await h.state() is None
    assert await h.store.get_session(CHAT) is None
    assert any(b.get("callback_data") == LOGIN for b in buttons(calls))


@pytest.mark.parametrize(
    ("mode", "msg_key"),
    [
        ("http500", "spaces-unavailable-http_status"),
        ("html", "spaces-unavailable-not_json"),
        ("badjson", "spaces-unavailable-not_json"),
        ("ratelimit", "spaces-code-00007"),
    ],
)
async def test_spaces_trouble_is_told_in_words(h: Harness, mode: str, msg_key: str) -> None:
    await walk_to_password(h)
    h.spaces.state.set_mode(mode)
    calls = await h.say("secret123")
    sent = " ".join(texts(calls))
    assert h.t(msg_key) in sent
    assert "{" not in sent and "00007" not in sent


async def test_unknown_code_is_named_in_words(h: Harness) -> None:
    await walk_to_password(h)
    h.spaces.state.next_code("login", "99999")
    calls = await h.say("secret123")
    sent = " ".join(texts(calls))
    assert "99999" in sent
    assert h.t("spaces-code-unknown", code="99999") in sent


async def test_every_documented_code_has_its_own_sentence(h: Harness) -> None:
    await walk_to_password(h)
    h.spaces.state.next_code("login", "00035")
    calls = await h.say("secret123")
    assert h.t("spaces-code-00035") in " ".join(texts(calls))


async def test_absurd_input_is_refused_and_the_step_goes_on(h: Harness) -> None:
    await h.say("/login")
    for bad in ["x" * 5000, "   ", "/weird"]:
        calls = await h.say(bad)
        assert h.t("login-bad-login") in texts(calls)
        assert await h.state() == LoginFlow.login.state
    calls = await h.sticker()
    assert h.t("step-needs-text") in texts(calls)
    assert await h.state() == LoginFlow.login.state
    await h.say("alice")
    calls = await h.say("p" * 5000)
    assert h.t("login-bad-password") in texts(calls)
    assert [c for c in calls if c.method == "deleteMessage"]
    assert await h.state() == LoginFlow.password.state
    assert h.spaces.state.calls_summary()["counts"].get("login", 0) == 0


async def test_cancel_leaves_any_step(h: Harness) -> None:
    await walk_to_password(h)
    calls = await h.say("/cancel")
    assert h.t("cancel-done") in texts(calls)
    assert await h.state() is None
    await h.say("/login")
    await h.press(CANCEL)
    assert await h.state() is None


async def test_login_in_a_group_is_refused_and_nothing_typed_there_is_used(h: Harness) -> None:
    group = -100500
    calls = await h.say("/login", chat_id=group, user_id=CHAT, chat_type="supergroup")
    assert h.t("login-private-only") in texts(calls)
    assert any("?start=login" in b.get("url", "") for b in buttons(calls))
    assert await h.state(group, CHAT) is None
    # Even with a login step open in private, text in the group is not taken as a credential.
    await h.say("/login")
    await h.say("alice", chat_id=group, user_id=CHAT, chat_type="supergroup")
    assert await h.state() == LoginFlow.login.state
    assert (await h.fsm_data()).get("login") is None


async def test_relogin_replaces_and_logs_out_the_old_session(h: Harness) -> None:
    await walk_to_password(h)
    await h.say("secret123")
    first = await h.store.get_session(CHAT)
    assert first is not None
    await walk_to_password(h)
    await h.say("secret123")
    second = await h.store.get_session(CHAT)
    assert second is not None and second.sid != first.sid
    assert first.sid not in h.spaces.state.sessions  # type: ignore[attr-defined]
    assert second.sid in h.spaces.state.sessions  # type: ignore[attr-defined]


async def test_failed_password_delete_asks_the_person_to_delete_it(h: Harness) -> None:
    await walk_to_password(h)
    h.tg.fail_next(
        "deleteMessage", error_code=400, description="Bad Request: message can't be deleted"
    )
    calls = await h.say("secret123")
    assert h.t("login-delete-password-yourself") in texts(calls)
    assert (await h.store.get_session(CHAT)) is not None


async def test_start_and_help(h: Harness) -> None:
    calls = await h.say("/start")
    assert texts(calls) == [h.t("help")]
    calls = await h.say("/help", language_code="ru")
    assert texts(calls) == [h.t("help", "ru")]


async def test_a_captcha_answered_too_late_starts_over(h: Harness) -> None:
    h.spaces.state.set_captcha("alice", True, "4242")
    h.services.password_seal._ttl = -1  # the kept password is already out of date
    await walk_to_password(h)
    await h.say("secret123")
    calls = await h.say("4242")
    assert texts(calls) == [h.t("login-expired")]
    assert await h.state() is None
    assert h.spaces.state.calls_summary()["counts"]["login"] == 1  # no attempt without it


# -- as the real site does it: the captcha's cookie, a new picture, 01006's sub-codes -------


async def test_the_captcha_answer_goes_back_with_the_attempts_own_cookie(h: Harness) -> None:
    h.spaces.state.set_captcha("alice", True, "4242")
    await walk_to_password(h)
    await h.say("secret123")
    [handed_out] = h.spaces.state.captchas  # the pre-login sid set with the picture
    data = await h.fsm_data()
    assert data.get("pending_cookies") and handed_out not in repr(data)  # sealed
    await h.say("4242")
    assert await h.state() is None and await h.fsm_data() == {}
    answer = [c for c in h.spaces.state.calls if c.method == "login"][-1]
    assert answer.fields.get("code") == "4242" and answer.sid == handed_out
    session = await h.store.get_session(CHAT)
    assert session is not None and session.sid != handed_out


async def test_a_cookie_never_goes_to_another_chats_attempt(h: Harness) -> None:
    other = CHAT + 1
    h.spaces.state.set_captcha("alice", True, "4242")
    await walk_to_password(h)
    await h.say("secret123")
    mine = (await h.fsm_data()).get("pending_cookies")
    await h.say("/login", chat_id=other)
    await h.say("alice", chat_id=other)
    await h.say("secret123", chat_id=other)
    theirs = (await h.fsm_data(other)).get("pending_cookies")
    assert mine and theirs and mine != theirs
    # A sealed value moved into another chat does not open there.
    key = h.dp.fsm.get_context(h.bot, chat_id=other, user_id=other)
    await key.update_data(pending_cookies=mine)
    calls = await h.say("4242", chat_id=other)
    assert texts(calls) == [h.t("login-expired")]
    assert h.spaces.state.calls_summary()["counts"]["login"] == 2  # nothing was sent


async def test_new_picture_sends_the_same_login_again_without_a_code(h: Harness) -> None:
    h.spaces.state.set_captcha("alice", True, "4242")
    await walk_to_password(h)
    calls = await h.say("secret123")
    assert any(b.get("callback_data") == NEW_PICTURE for b in buttons(calls))
    first = next(iter(h.spaces.state.captchas))
    calls = await h.press(NEW_PICTURE)
    assert [c for c in calls if c.method == "sendPhoto"]
    assert await h.state() == LoginFlow.captcha.state
    logins = [c for c in h.spaces.state.calls if c.method == "login"]
    assert len(logins) == 2 and "code" not in logins[-1].fields
    assert logins[-1].sid == first  # the attempt's cookie went with it
    await h.say("4242")  # the newest picture's cookie is the one that counts
    assert (await h.store.get_session(CHAT)) is not None


@pytest.mark.parametrize(
    ("sub_code", "step_after", "login_button"),
    [
        (1, None, True),
        (2, None, True),
        (3, LoginFlow.password.state, False),  # too fast: the same step waits
        (4, None, False),  # blocked: trying again cannot help
        (5, None, True),
        (6, None, True),
        (7, None, True),  # confirm the phone digits on the site, then try again
    ],
)
async def test_each_auth_error_sub_code_has_its_sentence_and_step(
    h: Harness, sub_code: int, step_after: str | None, login_button: bool
) -> None:
    await walk_to_password(h)
    h.spaces.state.next_code("login", "01006", {"auth_errror": sub_code})
    calls = await h.say("secret123")
    assert h.t(f"spaces-auth-error-{sub_code}") in " ".join(texts(calls))
    assert await h.state() == step_after
    assert any(b.get("callback_data") == LOGIN for b in buttons(calls)) is login_button
    if step_after is not None:
        assert await h.fsm_data() == {"login": "alice"}  # send the password again
        await h.say("secret123")
        assert (await h.store.get_session(CHAT)) is not None


async def test_auth_error_8_is_the_captcha_step(h: Harness) -> None:
    h.spaces.state.set_captcha("alice", True, "4242")
    await walk_to_password(h)
    h.spaces.state.next_code("login", "01006", {"auth_errror": 8})
    calls = await h.say("secret123")
    assert [c for c in calls if c.method == "sendPhoto"]
    assert await h.state() == LoginFlow.captcha.state
    await h.say("4242")
    assert (await h.store.get_session(CHAT)) is not None


@pytest.mark.parametrize(
    "answer",
    [
        {"captcha_url": "https://evil.example/captcha/1.png"},
        {"captcha_url": "http://127.0.0.1:9/captcha/1.png"},
    ],
)
async def test_a_captcha_picture_outside_spaces_is_not_fetched(
    h: Harness, answer: dict[str, str]
) -> None:
    await walk_to_password(h)
    h.spaces.state.next_code("login", "00001", answer)
    calls = await h.say("secret123")
    assert h.t("spaces-unavailable-bad_answer") in " ".join(texts(calls))
    assert not [c for c in calls if c.method == "sendPhoto"]
    assert await h.state() is None and await h.fsm_data() == {}
