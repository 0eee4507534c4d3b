"""The hot path through the real Dispatcher: a known chat's update costs no database
statement, owners' decisions and a chosen language apply to the very next update, last seen
reaches the database when the batch is written, and no filter hops to a worker thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiogram import Router
from aiogram.dispatcher.event.handler import CallableObject
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.handlers import routers
from bot.storage.engine import make_sessionmaker
from bot.storage.models import Chat
from tests.conversation.conftest import ADMIN, CHAT, Harness, step_data, texts


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    sent: list[str] = []

    def note(*args: object) -> None:
        sent.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)


async def chat_row(engine: AsyncEngine, chat_id: int) -> Chat | None:
    async with make_sessionmaker(engine)() as db:
        return await db.get(Chat, chat_id)


async def test_a_known_chat_costs_no_database_statement(h: Harness, engine: AsyncEngine) -> None:
    with statements(engine) as first:
        calls = await h.say("/start", language_code="ru")
    assert texts(calls) == [h.t("help", "ru")]
    assert first  # the chat's first update: its row is written, its access and state read
    row = await chat_row(engine, CHAT)
    assert row is not None
    with statements(engine) as later:
        for _ in range(3):
            calls = await h.say("/start", language_code="en")
            assert texts(calls) == [h.t("help", "en")]
    assert later == []
    row = await chat_row(engine, CHAT)
    assert row is not None and row.language_code == "ru"  # the news waits for the batch
    assert await h.services.last_seen.flush() == 1
    row = await chat_row(engine, CHAT)
    assert row is not None and row.language_code == "en" and row.last_seen_at > row.first_seen_at


async def test_a_ban_applies_to_the_next_update_and_an_unban_too(h: Harness) -> None:
    for _ in range(2):  # the chat's access is cached by now
        assert texts(await h.say("/status")) == [h.t("status-not-linked")]
    await h.say(f"/ban {CHAT}", chat_id=ADMIN)
    assert texts(await h.say("/status")) == [h.t("access-banned")]
    await h.say(f"/unban {CHAT}", chat_id=ADMIN)
    assert texts(await h.say("/status")) == [h.t("status-not-linked")]


async def test_a_chosen_language_applies_to_the_next_update(h: Harness) -> None:
    assert texts(await h.say("/status", language_code="en")) == [h.t("status-not-linked", "en")]
    await h.say("/language", language_code="en")
    await h.press("lang:ru", language_code="en")
    assert texts(await h.say("/status", language_code="en")) == [h.t("status-not-linked", "ru")]
    assert await h.store.chat_languages(CHAT) == ("ru", "en")


async def test_forget_is_not_undone_by_the_batch(h: Harness, engine: AsyncEngine) -> None:
    await h.say("/start")
    await h.say("/start")  # recorded for the next batch
    calls = await h.say("/forget")
    await h.press(step_data(calls, "forget"))
    await h.services.last_seen.flush()
    assert await chat_row(engine, CHAT) is None
    await h.say("/start")  # writes again: a chat that comes back is a new one
    assert await chat_row(engine, CHAT) is not None


def _callables(router: Router) -> Iterator[tuple[str, CallableObject]]:
    for name, observer in router.observers.items():
        for handler in observer.handlers:
            yield f"{router.name}.{name} handler", handler
            for flt in handler.filters or ():
                yield f"{router.name}.{name} filter of {handler.callback.__name__}", flt
        for flt in observer._handler.filters or ():
            yield f"{router.name}.{name} router filter", flt
    for sub in router.sub_routers:
        yield from _callables(sub)


def test_no_filter_or_handler_hops_to_a_worker_thread() -> None:
    # aiogram runs a callable that is not a coroutine function through asyncio.to_thread.
    threaded = [where for router in routers() for where, c in _callables(router) if not c.awaitable]
    assert threaded == []
