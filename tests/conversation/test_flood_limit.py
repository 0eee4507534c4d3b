"""Replies are never lost to Telegram's flood limit (429 with retry_after)."""

from __future__ import annotations

import asyncio

from bot.services.notifier import SendOutcome
from bot.telegram_retry import MAX_ATTEMPTS
from tests.conversation.conftest import CHAT, Harness
from tests.fakes.telegram_server import ApiCall

TOO_MANY = "Too Many Requests: retry after 1"


def replies(calls: list[ApiCall], chat_id: int = CHAT) -> list[ApiCall]:
    return [c for c in calls if c.method == "sendMessage" and c.chat_id == chat_id]


async def test_a_reply_refused_with_429_is_sent_again_after_the_wait(h: Harness) -> None:
    h.tg.fail_next("sendMessage", error_code=429, description=TOO_MANY, retry_after=1)
    calls = await h.say("/help")
    sent = replies(calls)
    assert len(sent) == 2
    assert sent[0].result is None and sent[1].result is not None
    assert sent[1].params["text"] == h.t("help")


async def test_retries_are_bounded(h: Harness) -> None:
    h.tg.fail_next(
        "sendMessage", error_code=429, description=TOO_MANY, retry_after=1, times=MAX_ATTEMPTS
    )
    calls = await h.say("/help")
    sent = replies(calls)
    # The reply was tried MAX_ATTEMPTS times; then the error path told the person in words.
    assert [c.result is None for c in sent] == [True] * MAX_ATTEMPTS + [False]
    assert sent[-1].params["text"] == h.t("error-generic")


async def test_during_a_burst_of_notices_a_person_who_writes_is_answered(h: Harness) -> None:
    sender = h.services.sender
    notice_chat = 777
    await h.say("/start", chat_id=notice_chat)
    h.tg.fail_next(
        "sendMessage", error_code=429, description=TOO_MANY, retry_after=1, chat_id=notice_chat
    )
    notice = asyncio.create_task(sender.send(notice_chat, "notice"))
    while sender.stats["retry_after"] == 0:  # noqa: ASYNC110 - the sender has no event for it
        await asyncio.sleep(0.01)
    # The paced sender saw the 429 itself (no retry behind its back) and paused its queue;
    # meanwhile Telegram refuses the next reply too, and it still arrives.
    h.tg.fail_next("sendMessage", error_code=429, description=TOO_MANY, retry_after=1)
    calls = await h.say("/help")
    assert [c.params["text"] for c in replies(calls) if c.result is not None] == [h.t("help")]
    assert await notice is SendOutcome.DELIVERED
    assert sender.stats["retry_after"] == 1
