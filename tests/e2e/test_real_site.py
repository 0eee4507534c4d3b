"""`python -m bot` as its own process against fakes that behave like the real Spaces site:
mirrors that fail, a captcha tied to its cookie, 01006's sub-codes, sign-in links on
gdespaces.com, and bad input from Spaces that must stay harmless."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.handlers.login import NEW_PICTURE
from bot.storage.crypto import generate_key
from tests.conversation.conftest import step_data
from tests.e2e.test_bot_process import CHAT, BotProcess, bot_env, say, t
from tests.fakes.spaces_server import FakeSpaces
from tests.fakes.telegram_server import ApiCall, FakeTelegram


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens there once closed


def url_buttons(call: ApiCall) -> list[str]:
    rows = (call.params.get("reply_markup") or {}).get("inline_keyboard", [])
    return [button["url"] for row in rows for button in row if "url" in button]


@pytest.fixture
async def site() -> AsyncIterator[tuple[FakeTelegram, FakeSpaces, FakeSpaces]]:
    """Telegram, and one Spaces site answering at two addresses."""
    async with FakeTelegram() as tg, FakeSpaces() as first, FakeSpaces(state=first.state) as second:
        yield tg, first, second


async def test_failover_to_the_next_mirror_and_stats_name_it(
    site: tuple[FakeTelegram, FakeSpaces, FakeSpaces], tmp_path: Path
) -> None:
    tg, html_mirror, good = site
    html_mirror.mirror.mode = "html"  # answers a web page where JSON should be
    good.state.oauth_base = "https://gdespaces.com.evil.example"  # not Spaces: no buttons
    env = bot_env(tg, good, tmp_path, generate_key())
    refused = f"http://127.0.0.1:{closed_port()}"
    env["SPACES_BASE_URL"] = f"{refused},{html_mirror.url},{good.url}"
    env["ADMIN_IDS"] = str(CHAT)
    bot = BotProcess(env)
    await bot.start()
    try:
        await tg.wait_for_call("setMyCommands", timeout=60)
        await say(tg, "/login", t("login-ask-login")[:30])
        await say(tg, "alice", "alice")
        await say(tg, "secret123", "Alice")  # through the third address
        await say(tg, "/stats", t("admin-stats-mirror", mirror=good.url))
        # The third one fails now, the second is back: the SID works there as well.
        good.mirror.mode = "http500"
        html_mirror.mirror.mode = "ok"
        reply = await say(tg, "/status", "Alice")
        assert t("spaces-status-online") in reply.params["text"]
        await say(tg, "/stats", t("admin-stats-mirror", mirror=html_mirror.url))
    finally:
        assert await bot.stop() == 0
    assert [c for c in tg.calls if url_buttons(c)] == []
    assert good.state.counts["getOAuthLinks"] >= 1
    log = bot.stderr.decode()
    assert "Traceback" not in log and "mirror" in log


async def test_bad_mirror_setting_is_one_line(
    site: tuple[FakeTelegram, FakeSpaces, FakeSpaces], tmp_path: Path
) -> None:
    tg, spaces, _ = site
    env = bot_env(tg, spaces, tmp_path, generate_key())
    env["SPACES_BASE_URL"] = f"{spaces.url},spcs.me"
    bot = BotProcess(env)
    await bot.start()
    assert await bot.wait() == 2
    lines = [line for line in bot.stderr.decode().splitlines() if line.strip()]
    assert len(lines) == 1 and "SPACES_BASE_URL" in lines[0] and "'spcs.me'" in lines[0]


async def test_login_as_the_site_does_it(
    site: tuple[FakeTelegram, FakeSpaces, FakeSpaces], tmp_path: Path
) -> None:
    tg, spaces, _ = site
    state = spaces.state
    env = bot_env(tg, spaces, tmp_path, generate_key())
    env["FLOOD_MAX_MESSAGES"] = "1000"  # a person typing fast is not what this tests
    bot = BotProcess(env)
    await bot.start()
    try:
        await tg.wait_for_call("setMyCommands", timeout=60)
        # Sign-in links on gdespaces.com, Google's too, become buttons.
        mark = tg.mark()
        await say(tg, "/login", t("login-ask-login")[:30])
        # The prompt gets its buttons as soon as Spaces gives them.
        edit = await tg.wait_for_call(
            "editMessageText", predicate=lambda c: bool(url_buttons(c)), after=mark
        )
        links = url_buttons(edit)
        assert len(links) == 5 and all(u.startswith("https://gdespaces.com/oauth/") for u in links)
        await say(tg, "/cancel", method="editMessageText")

        # The captcha's cookie: the picture, a new picture and the answer all carry it.
        state.set_captcha("alice", True, "4242")
        await say(tg, "/login", t("login-ask-login")[:30])
        await say(tg, "alice", "alice")
        photo = await say(tg, "secret123", t("captcha-ask"), method="sendPhoto")
        mark = tg.mark()
        tg.press_button(step_data([photo], NEW_PICTURE), chat_id=CHAT)
        await tg.wait_for_call("sendPhoto", after=mark, timeout=45)
        latest = list(state.captchas)[-1]  # the newest picture's cookie
        await say(tg, "4242", "Alice")
        logins = [c for c in state.calls if c.method == "login"]
        assert [c.fields.get("code") for c in logins[-3:]] == [None, None, "4242"]
        assert logins[-1].sid == latest and logins[-2].sid and logins[-3].sid is None
        state.set_captcha("alice", False)

        # 01006: too fast keeps the step; phone digits explain the website; 1 ends the session.
        await say(tg, "/login", t("login-ask-login")[:30])
        await say(tg, "alice", "alice")
        state.next_code("login", "01006", {"auth_errror": 3})
        await say(tg, "secret123", t("spaces-auth-error-3")[:30])
        await say(tg, "secret123", "Alice")
        await say(tg, "/login", t("login-ask-login")[:30])
        await say(tg, "alice", "alice")
        state.next_code("login", "01006", {"auth_errror": 7})
        await say(tg, "secret123", t("spaces-auth-error-7")[:30])
        state.replace_sessions(1001)
        await say(tg, "/status", t("status-ended-replaced")[:30])

        # Bad input from Spaces: a sentence, nothing shown, nothing kept.
        bad_answers: list[Callable[[], None]] = [
            lambda: state.next_code(
                "login", "00001", {"captcha_url": "https://evil.example/1.png"}
            ),
            lambda: setattr(state, "captcha_cookie_domain", "evil.example"),
            lambda: setattr(state, "captcha_picture", "huge"),
            lambda: setattr(state, "captcha_picture", "endless"),
        ]
        state.set_captcha("alice", True, "4242")
        for arrange in bad_answers:
            arrange()
            await say(tg, "/login", t("login-ask-login")[:30])
            await say(tg, "alice", "alice")
            mark = tg.mark()
            await say(tg, "secret123", t("captcha-unavailable")[:30])
            assert tg.calls_of("sendPhoto", after=mark) == []
            state.captcha_cookie_domain, state.captcha_picture = None, "png"
    finally:
        assert await bot.stop() == 0
    log = bot.stderr.decode()
    assert "Traceback" not in log
    db = (tmp_path / "data" / "bot.sqlite3").read_bytes()
    handed_out = {c.sid for c in state.calls if c.method == "login" and c.sid}
    assert handed_out
    for secret in handed_out:  # the attempts' cookies never reach the database or the log
        assert secret.encode() not in db and secret not in log
