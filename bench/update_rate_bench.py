"""Updates a second: this bot against a bare aiogram bot, side by side in one run.

Both are fed the same N `/start` updates from U people through their Dispatcher's
`feed_update` (at most C in flight, as polling's tasks would be), and both answer through
the same fake Bot API on 127.0.0.1. The bare bot answers `/start` with one message and does
nothing else; this bot is wired as `bot/app.py` wires it (`prepare_store`,
`build_fsm_storage`, `build_services`, `build_dispatcher`) on a fresh SQLite database.

    .venv/bin/python -m bench.update_rate_bench [-n 2000] [--people 50] [--concurrency 32]
        [--rounds 3]

Prints updates/s for each bot per round, the best of each, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import CommandStart
from aiogram.types import Message, Update

from bot._telegram_types import build_types_in_use
from bot.app import (
    build_bot,
    build_dispatcher,
    build_fsm_storage,
    build_remote_services,
    build_services,
    prepare_store,
)
from bot.config import Settings
from bot.locales import build_i18n
from bot.spaces.transport import AiohttpTransport
from bot.storage.crypto import generate_key
from tests.fakes.telegram_server import FakeTelegram


def bare_dispatcher() -> Dispatcher:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer("Hello")

    dp = Dispatcher()
    dp.include_router(router)
    return dp


def updates(tg: FakeTelegram, bot: Bot, count: int, people: int) -> list[Update]:
    raw = [tg.send_message("/start", chat_id=1000 + i % people) for i in range(count)]
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


async def main(args: argparse.Namespace) -> int:
    build_types_in_use()
    async with AsyncExitStack() as stack:
        tg = await stack.enter_async_context(FakeTelegram())
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        settings = Settings(
            _env_file=None,
            bot_token=tg.token,
            telegram_api_url=tg.url,
            data_dir=workdir,
            encryption_key=generate_key(),
            # One person may send many /start here; the flood guard would drop them unanswered.
            flood_max_messages=10**6,
        )
        store, owners, cipher, sessionmaker = await prepare_store(settings, stack)
        fsm_storage = build_fsm_storage(settings, sessionmaker)
        stack.push_async_callback(fsm_storage.close)
        transport = AiohttpTransport()
        stack.push_async_callback(transport.aclose)
        ours_bot = build_bot(settings)
        stack.push_async_callback(ours_bot.session.close)
        services = build_services(
            settings=settings,
            store=store,
            owners=owners,
            remote_services=build_remote_services(settings, transport),
            cipher=cipher,
            bot=ours_bot,
            i18n=build_i18n(settings.zone),
        )
        ours = build_dispatcher(services, fsm_storage)
        bare_bot = Bot(tg.token, session=AiohttpSession(api=TelegramAPIServer.from_base(tg.url)))
        stack.push_async_callback(bare_bot.session.close)
        bare = bare_dispatcher()

        rates: dict[str, list[float]] = {"bare aiogram": [], "this bot": []}
        contenders: list[tuple[str, Dispatcher, Bot]] = [
            ("bare aiogram", bare, bare_bot),
            ("this bot", ours, ours_bot),
        ]
        # A warm-up round each, then alternate so that neither always runs on a warmer machine.
        for _name, dp, bot in contenders:
            await feed_all(dp, bot, updates(tg, bot, 200, args.people), args.concurrency)
        for round_no in range(1, args.rounds + 1):
            for name, dp, bot in contenders if round_no % 2 else contenders[::-1]:
                before = len(tg.calls_of("sendMessage"))
                seconds = await feed_all(
                    dp, bot, updates(tg, bot, args.count, args.people), args.concurrency
                )
                answered = len(tg.calls_of("sendMessage")) - before
                if answered != args.count:
                    print(f"{name}: {answered} of {args.count} answered", file=sys.stderr)
                    return 1
                rates[name].append(args.count / seconds)
                print(f"round {round_no}: {name:13} {args.count / seconds:8.0f} updates/s")
        best = {name: max(values) for name, values in rates.items()}
        ratio = best["this bot"] / best["bare aiogram"]
        print(
            f"best of {args.rounds}, {args.count} /start from {args.people} people, "
            f"{args.concurrency} in flight, SQLite: bare aiogram {best['bare aiogram']:.0f}/s, "
            f"this bot {best['this bot']:.0f}/s, ratio {ratio:.2f}"
        )
        tg.calls.clear()
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.update_rate_bench")
    parser.add_argument("-n", "--count", type=int, default=2000)
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> int:
    return asyncio.run(main(parse(argv)))


if __name__ == "__main__":
    sys.exit(run())
