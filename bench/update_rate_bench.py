"""Updates a second: this bot against bare aiogram bots, side by side in one run.

All are fed the same N `/start` updates from U people through their Dispatcher's
`feed_update` (at most C in flight, as polling's tasks would be), and all answer through the
same fake Bot API on 127.0.0.1 (in this process). This bot is wired as `bot/app.py` wires it
(`prepare_store`, `build_fsm_storage`, `build_services`, `build_dispatcher`, and the
last-seen flusher running) on a fresh SQLite database, or with `--db postgres` on a scratch
PostgreSQL database (`--pg-url`, dropped afterwards), and with `--redis URL` keeping
conversations and one-at-a-time handling in Redis as several instances do. Two floors, bare
aiogram bots that do nothing but answer `/start` with one message:

- "same answer": the very message this bot sends (its help text in the person's language,
  HTML, the login button). The goal is measured against this one: what this bot adds.
- "Hello": the word "Hello" and nothing else. Sending, serialising and validating a long
  message with entities and a keyboard costs more than this whole floor's update does.

    .venv/bin/python -m bench.update_rate_bench [-n 2000] [--people 50] [--concurrency 32]
        [--rounds 3] [--db sqlite|postgres] [--pg-url URL] [--redis URL]

Prints, per round, each bot's updates/s and the process's CPU per update (the fake's share
included, alike for all), then the best rate and the least CPU of each, the ratios against
both floors, and how many database statements this bot sent during the rounds. The machine
is shared: CPU per update moves less with other jobs' load than updates/s does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.filters import CommandStart
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from sqlalchemy import event

from bench.sweep_kit import PG_URL, scratch_db
from bot._telegram_types import build_types_in_use
from bot.app import (
    BackgroundTask,
    build_bot,
    build_dispatcher,
    build_fsm_storage,
    build_remote_services,
    build_services,
    prepare_store,
)
from bot.config import Settings
from bot.handlers.ui import LOGIN
from bot.locales import SUPPORTED, PoI18n, build_i18n, chat_locale
from bot.spaces.transport import AiohttpTransport
from bot.storage.crypto import generate_key
from tests.fakes.telegram_server import FakeTelegram

THIS_BOT = "this bot"
SAME = "bare, same answer"
HELLO = "bare, Hello"


def bare_dispatcher() -> Dispatcher:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer("Hello")

    dp = Dispatcher()
    dp.include_router(router)
    return dp


def same_answer_dispatcher(i18n: PoI18n) -> Dispatcher:
    """A bare bot that answers /start with this bot's own message, built up front."""
    answers = {
        locale: (
            i18n.text("help", locale),
            InlineKeyboardMarkup(
                inline_keyboard=[
                    [
                        InlineKeyboardButton(
                            text=i18n.plain("button-login", locale), callback_data=LOGIN
                        )
                    ]
                ]
            ),
        )
        for locale in SUPPORTED
    }
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        user = message.from_user
        text, keyboard = answers[chat_locale(None, user.language_code if user else None)]
        await message.answer(text, reply_markup=keyboard)

    dp = Dispatcher()
    dp.include_router(router)
    return dp


def updates(tg: FakeTelegram, bot: Bot, count: int, people: int, first: int = 0) -> list[Update]:
    """`count` /start, the i-th from person `(first + i) % people`: with more people than
    updates in a run, every update is someone's first."""
    raw = [tg.send_message("/start", chat_id=1000 + (first + i) % people) for i in range(count)]
    return [Update.model_validate(u, context={"bot": bot}) for u in raw]


async def feed_all(dp: Dispatcher, bot: Bot, batch: list[Update], concurrency: int) -> float:
    """Seconds to handle the whole batch, at most `concurrency` updates in flight."""
    gate = asyncio.Semaphore(concurrency)

    async def one(update: Update) -> None:
        async with gate:
            await dp.feed_update(bot, update)

    started = time.perf_counter()
    await asyncio.gather(*(one(u) for u in batch))
    return time.perf_counter() - started


@dataclass
class Contender:
    name: str
    dp: Dispatcher
    bot: Bot
    rates: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


class StatementCount:
    """Statements the engine sends while counting is on."""

    def __init__(self) -> None:
        self.on = False
        self.count = 0

    def __call__(self, *_: Any) -> None:
        if self.on:
            self.count += 1


async def main(args: argparse.Namespace) -> int:
    build_types_in_use()
    async with AsyncExitStack() as stack:
        tg = await stack.enter_async_context(FakeTelegram())
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        database = await stack.enter_async_context(scratch_db(args.db, args.pg_url))
        if args.redis:
            await flushed(args.redis)
        settings = Settings(
            _env_file=None,
            bot_token=tg.token,
            telegram_api_url=tg.url,
            data_dir=workdir,
            database_url=database.url,
            redis_url=args.redis,
            encryption_key=generate_key(),
            # One person may send many /start here; the flood guard would drop them unanswered.
            flood_max_messages=10**6,
        )
        store, owners, cipher, sessionmaker = await prepare_store(settings, stack)
        statements = StatementCount()
        event.listen(sessionmaker.kw["bind"].sync_engine, "before_cursor_execute", statements)
        fsm_storage = build_fsm_storage(settings, sessionmaker)
        stack.push_async_callback(fsm_storage.close)
        transport = AiohttpTransport()
        stack.push_async_callback(transport.aclose)
        ours_bot = build_bot(settings)
        stack.push_async_callback(ours_bot.session.close)
        i18n = build_i18n(settings.zone)
        services = build_services(
            settings=settings,
            store=store,
            owners=owners,
            remote_services=build_remote_services(settings, transport),
            cipher=cipher,
            bot=ours_bot,
            i18n=i18n,
        )
        flusher = BackgroundTask("last-seen", services.last_seen.run)
        flusher.start()
        stack.push_async_callback(flusher.stop)

        def bare_bot(**kw: Any) -> Bot:
            session = AiohttpSession(api=TelegramAPIServer.from_base(tg.url))
            bot = Bot(tg.token, session=session, **kw)
            stack.push_async_callback(bot.session.close)
            return bot

        # The floor that answers like this bot also sends with this bot's defaults.
        html = DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True)
        contenders = [
            Contender(SAME, same_answer_dispatcher(i18n), bare_bot(default=html)),
            Contender(HELLO, bare_dispatcher(), bare_bot()),
            Contender(THIS_BOT, build_dispatcher(services, fsm_storage), ours_bot),
        ]
        # A warm-up round each, then rotate so that none always runs on a warmer machine.
        for c in contenders:
            await feed_all(c.dp, c.bot, updates(tg, c.bot, 200, args.people), args.concurrency)
        for round_no in range(1, args.rounds + 1):
            shift = round_no % len(contenders)
            first = 200 + (round_no - 1) * args.count  # each bot meets the same people
            for c in contenders[shift:] + contenders[:shift]:
                batch = updates(tg, c.bot, args.count, args.people, first)
                before = len(tg.calls_of("sendMessage"))
                statements.on = c.name == THIS_BOT
                cpu = time.process_time()
                seconds = await feed_all(c.dp, c.bot, batch, args.concurrency)
                cpu = time.process_time() - cpu
                statements.on = False
                answered = len(tg.calls_of("sendMessage")) - before
                tg.calls.clear()
                if answered != args.count:
                    print(f"{c.name}: {answered} of {args.count} answered", file=sys.stderr)
                    return 1
                c.rates.append(args.count / seconds)
                c.cpu_ms.append(cpu * 1000 / args.count)
                print(
                    f"round {round_no}: {c.name:17} {c.rates[-1]:6.0f} updates/s "
                    f"{c.cpu_ms[-1]:6.3f} ms CPU/update"
                )
        report(contenders, args, statements.count)
    return 0


def report(contenders: list[Contender], args: argparse.Namespace, statements: int) -> None:
    by_name = {c.name: c for c in contenders}
    ours = by_name[THIS_BOT]
    best: Callable[[Contender], float] = lambda c: max(c.rates)  # noqa: E731
    least: Callable[[Contender], float] = lambda c: min(c.cpu_ms)  # noqa: E731
    print(
        f"{args.count} /start from {args.people} people, {args.concurrency} in flight, "
        f"{'PostgreSQL' if args.db == 'postgres' else 'SQLite'}"
        f"{', Redis' if args.redis else ''}, {args.rounds} rounds; "
        "best updates/s, least CPU ms/update:"
    )
    for c in contenders:
        print(f"  {c.name:17} {best(c):6.0f}/s {least(c):6.3f} ms")
    for floor in (by_name[SAME], by_name[HELLO]):
        print(
            f"  this bot / {floor.name:17}: rate {best(ours) / best(floor):.2f}, "
            f"CPU {least(floor) / least(ours):.2f}"
        )
    total = args.count * args.rounds
    print(f"  database statements of this bot during the rounds: {statements} for {total} updates")


async def flushed(url: str) -> None:
    """The bench's Redis database starts empty (it holds nothing else: say which one)."""
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.update_rate_bench")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pg-url", default=PG_URL, help="a server to make a scratch database on")
    parser.add_argument("--redis", default=None, help="a Redis database to use (it is emptied)")
    parser.add_argument("-n", "--count", type=int, default=2000)
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> int:
    return asyncio.run(main(parse(argv)))


if __name__ == "__main__":
    sys.exit(run())
