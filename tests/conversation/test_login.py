from __future__ import annotations

import asyncio

import pytest

from bot.handlers import steps
from bot.handlers.login import NEW_PICTURE, LoginFlow
from bot.handlers.ui import LOGIN
from tests.conftest import only_session
from tests.conversation.conftest import CHAT, Harness, buttons, step_data, texts
from tests.fakes.telegram_server import ApiCall


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

    session = await only_session(h.store, CHAT)
    assert session is not None and session.display_name == "Alice" and session.account_id == "1001"
    assert session.secrets["sid"] in h.spaces.state.sessions


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
    assert (await only_session(h.store, CHAT)) is not None


@pytest.mark.parametrize(
    ("login", "password", "msg_key"),
    [("nobody", "secret123", "spaces-code-00003")],
)
async def test_login_failures_get_their_own_sentence(
    h: Harness, login: str, password: str, msg_key: str
) -> None:
    await walk_to_password(h, login)
    calls = await h.say(password)
    assert any(h.t(msg_key) in t for t in texts(calls))
    assert await h.state() is None
    assert await only_session(h.store, CHAT) is None
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


def prompt_id(calls: list[ApiCall]) -> int:
    """The message id of the last message the bot sent among `calls`."""
    sent = [c for c in calls if c.method in {"sendMessage", "sendPhoto", "copyMessage"}]
    assert sent and isinstance(sent[-1].result, dict)
    return int(sent[-1].result["message_id"])


async def test_cancel_says_what_it_cancelled_in_the_prompt(h: Harness) -> None:
    await h.say("/login")
    calls = await h.say("alice")
    asked = prompt_id(calls)
    calls = await h.say("/cancel")
    assert await h.state() is None
    [edit] = [c for c in calls if c.method == "editMessageText"]
    assert edit.params["message_id"] == asked
    assert edit.params["text"] == h.t("cancel-done-login")
    assert "reply_markup" not in edit.params or not edit.params["reply_markup"]
    assert not [c for c in calls if c.method == "sendMessage"]  # the prompt says it, once
    calls = await h.say("/cancel")
    assert texts(calls) == [h.t("cancel-nothing")]


async def test_cancel_button_edits_its_own_prompt(h: Harness) -> None:
    calls = await h.say("/login")
    calls = await h.press(step_data(calls, "cancel"))
    assert await h.state() is None
    assert h.t("cancel-done-login") in texts(calls)
    assert not [c for c in calls if c.method == "sendMessage"]


async def test_a_replaced_steps_button_is_out_of_date_and_disappears(h: Harness) -> None:
    first = await h.say("/login")
    old_cancel = step_data(first, "cancel")
    calls = await h.say("alice")  # a new prompt replaces the first: its buttons go
    removed = [c for c in calls if c.method == "editMessageReplyMarkup"]
    assert [c.params["message_id"] for c in removed] == [prompt_id(first)]
    # A client that has not redrawn the message yet can still press it.
    calls = await h.press(old_cancel, message_id=prompt_id(first))
    [toast] = [c for c in calls if c.method == "answerCallbackQuery"]
    assert toast.params["text"] == h.t("button-stale")
    assert await h.state() == LoginFlow.password.state  # the newer step goes on
    assert (await h.fsm_data())["login"] == "alice"


async def test_a_finished_steps_button_cannot_restart_anything(h: Harness) -> None:
    await h.say("/login")
    calls = await h.say("alice")
    cancel = step_data(calls, "cancel")
    await h.say("secret123")
    assert await only_session(h.store, CHAT) is not None
    calls = await h.press(cancel, message_id=prompt_id(calls))
    assert [c.params.get("text") for c in calls if c.method == "answerCallbackQuery"] == [
        h.t("button-stale")
    ]
    assert [c.method for c in calls if c.method == "editMessageReplyMarkup"]
    assert await only_session(h.store, CHAT) is not None


async def test_buttons_from_before_step_tokens_are_out_of_date(h: Harness) -> None:
    for legacy in ("cancel", "forget:yes", "bc:send"):
        calls = await h.press(legacy, message_id=1)
        assert h.t("button-stale") in [c.params.get("text") for c in calls]


async def test_wrong_password_keeps_the_login_and_asks_only_the_password(h: Harness) -> None:
    await walk_to_password(h)
    calls = await h.say("wrong-password")
    assert await h.state() == LoginFlow.retry.state
    assert (await h.fsm_data())["login"] == "alice"
    again = step_data(calls, "password-again")
    step_data(calls, "start-over")
    calls = await h.press(again)
    assert await h.state() == LoginFlow.password.state
    assert h.t("login-ask-password", login="alice") in texts(calls)
    await h.say("secret123")
    session = await only_session(h.store, CHAT)
    assert session is not None and session.display_name == "Alice"


async def test_wrong_password_then_start_over_asks_the_login(h: Harness) -> None:
    await walk_to_password(h)
    calls = await h.say("wrong-password")
    calls = await h.press(step_data(calls, "start-over"))
    assert await h.state() == LoginFlow.login.state
    assert (await h.fsm_data()).get("login") is None


async def test_text_after_a_wrong_password_is_deleted_and_the_choice_offered_again(
    h: Harness,
) -> None:
    await walk_to_password(h)
    await h.say("wrong-password")
    retyped = h.tg.send_message("secret123", chat_id=CHAT)
    calls = await h._feed(retyped)
    deleted = [c.params["message_id"] for c in calls if c.method == "deleteMessage"]
    assert deleted == [retyped["message"]["message_id"]]
    step_data(calls, "password-again")
    assert await h.state() == LoginFlow.retry.state
    assert h.spaces.state.calls_summary()["counts"]["login"] == 1


async def test_status_and_login_show_typing_while_spaces_is_slow(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(steps, "CHAT_ACTION_INTERVAL", 0.05)
    await walk_to_password(h)
    await h.say("secret123")
    h.spaces.state.set_mode("timeout")
    h.spaces.state.timeout_seconds = 0.5
    calls = await h.say("/status")
    actions = [c for c in calls if c.method == "sendChatAction"]
    assert len(actions) >= 2 and all(c.params["action"] == "typing" for c in actions)
    assert h.t("spaces-unavailable-http_status") in " ".join(texts(calls))  # the stall ends
    await walk_to_password(h)
    calls = await h.say("secret123")
    assert len([c for c in calls if c.method == "sendChatAction"]) >= 2


async def test_a_superseded_attempt_says_nothing_late(h: Harness) -> None:
    await walk_to_password(h)
    h.spaces.state.set_mode("timeout")
    slow = asyncio.create_task(h.say("secret123"))
    while h.spaces.state.calls_summary()["counts"].get("login", 0) == 0:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await h.say("/login")  # the person starts again while the first attempt waits
    h.spaces.state.set_mode("ok")  # the first attempt now fails...
    late = await slow
    assert not [t for t in texts(late) if t.startswith(h.t("login-failed", reason="")[:10])]
    assert await h.state() == LoginFlow.login.state  # ...and does not end the new one
    await h.say("alice")
    await h.say("secret123")
    assert await only_session(h.store, CHAT) is not None


async def test_social_links_never_delay_the_first_prompt(h: Harness) -> None:
    calls = await h.say("/login")
    first = next(c for c in calls if c.method == "sendMessage")
    # Not known yet: the prompt goes out first, the buttons are added to it after.
    assert not [b for b in buttons([first]) if "url" in b]
    [edit] = [c for c in calls if c.method == "editMessageText"]
    assert edit.params["message_id"] == first.result["message_id"]
    assert [b for b in buttons([edit]) if "url" in b]
    assert calls.index(first) < calls.index(edit)
    # Known now: the next prompt has them at once, and Spaces is not asked again.
    asked = h.spaces.state.calls_summary()["counts"].get("getOAuthLinks", 0)
    assert asked == 1
    calls = await h.say("/login")
    first = next(c for c in calls if c.method == "sendMessage")
    assert [b for b in buttons([first]) if "url" in b]
    assert h.spaces.state.calls_summary()["counts"].get("getOAuthLinks", 0) == asked


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
    first = await only_session(h.store, CHAT)
    assert first is not None
    await walk_to_password(h)
    await h.say("secret123")
    second = await only_session(h.store, CHAT)
    assert second is not None and second.secrets["sid"] != first.secrets["sid"]
    assert first.secrets["sid"] not in h.spaces.state.sessions
    assert second.secrets["sid"] in h.spaces.state.sessions


async def test_failed_password_delete_asks_the_person_to_delete_it(h: Harness) -> None:
    await walk_to_password(h)
    h.tg.fail_next(
        "deleteMessage", error_code=400, description="Bad Request: message can't be deleted"
    )
    calls = await h.say("secret123")
    assert h.t("login-delete-password-yourself") in texts(calls)
    assert (await only_session(h.store, CHAT)) is not None


async def test_start_and_help(h: Harness) -> None:
    calls = await h.say("/start")
    assert texts(calls) == [h.t("help")]
    assert [b["callback_data"] for b in buttons(calls)] == [LOGIN]  # "Log in" at once
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
    assert data.get("pending_attempt") and handed_out not in repr(data)  # sealed
    await h.say("4242")
    assert await h.state() is None and await h.fsm_data() == {}
    answer = [c for c in h.spaces.state.calls if c.method == "login"][-1]
    assert answer.fields.get("code") == "4242" and answer.sid == handed_out
    session = await only_session(h.store, CHAT)
    assert session is not None and session.secrets["sid"] != handed_out


async def test_a_cookie_never_goes_to_another_chats_attempt(h: Harness) -> None:
    other = CHAT + 1
    h.spaces.state.set_captcha("alice", True, "4242")
    await walk_to_password(h)
    await h.say("secret123")
    mine = (await h.fsm_data()).get("pending_attempt")
    await h.say("/login", chat_id=other)
    await h.say("alice", chat_id=other)
    await h.say("secret123", chat_id=other)
    theirs = (await h.fsm_data(other)).get("pending_attempt")
    assert mine and theirs and mine != theirs
    # A sealed value moved into another chat does not open there.
    key = h.dp.fsm.get_context(h.bot, chat_id=other, user_id=other)
    await key.update_data(pending_attempt=mine)
    calls = await h.say("4242", chat_id=other)
    assert texts(calls) == [h.t("login-expired")]
    assert h.spaces.state.calls_summary()["counts"]["login"] == 2  # nothing was sent


async def test_new_picture_sends_the_same_login_again_without_a_code(h: Harness) -> None:
    h.spaces.state.set_captcha("alice", True, "4242")
    await walk_to_password(h)
    calls = await h.say("secret123")
    new_picture = step_data(calls, NEW_PICTURE)
    first = next(iter(h.spaces.state.captchas))
    calls = await h.press(new_picture)
    assert [c for c in calls if c.method == "sendPhoto"]
    assert await h.state() == LoginFlow.captcha.state
    logins = [c for c in h.spaces.state.calls if c.method == "login"]
    assert len(logins) == 2 and "code" not in logins[-1].fields
    assert logins[-1].sid == first  # the attempt's cookie went with it
    await h.say("4242")  # the newest picture's cookie is the one that counts
    assert (await only_session(h.store, CHAT)) is not None


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
        assert (await h.fsm_data())["login"] == "alice"  # send the password again
        await h.say("secret123")
        assert (await only_session(h.store, CHAT)) is not None


async def test_auth_error_8_is_the_captcha_step(h: Harness) -> None:
    h.spaces.state.set_captcha("alice", True, "4242")
    await walk_to_password(h)
    h.spaces.state.next_code("login", "01006", {"auth_errror": 8})
    calls = await h.say("secret123")
    assert [c for c in calls if c.method == "sendPhoto"]
    assert await h.state() == LoginFlow.captcha.state
    await h.say("4242")
    assert (await only_session(h.store, CHAT)) is not None


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
    assert h.t("captcha-unavailable") in " ".join(texts(calls))
    assert not [c for c in calls if c.method == "sendPhoto"]
    assert await h.state() is None and await h.fsm_data() == {}


async def test_cancel_at_the_picture_check_edits_its_caption(h: Harness) -> None:
    h.spaces.state.set_captcha("alice", True, "4242")
    await walk_to_password(h)
    calls = await h.say("secret123")
    picture = prompt_id(calls)
    calls = await h.say("/cancel")
    [edit] = [c for c in calls if c.method == "editMessageCaption"]
    assert edit.params["message_id"] == picture
    assert edit.params["caption"] == h.t("cancel-done-login")
    assert not [c for c in calls if c.method == "sendMessage"]
    assert await h.state() is None


async def test_a_new_picture_shows_upload_photo_while_it_comes(h: Harness) -> None:
    h.spaces.state.set_captcha("alice", True, "4242")
    await walk_to_password(h)
    calls = await h.say("secret123")
    calls = await h.press(step_data(calls, NEW_PICTURE))
    actions = [c.params["action"] for c in calls if c.method == "sendChatAction"]
    assert actions and set(actions) == {"upload_photo"}
