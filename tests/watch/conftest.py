from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from aiogram import Bot

from bot.app import build_bot
from bot.config import Settings
from bot.locales import build_i18n
from bot.services.notifier import Notifier, TelegramSender
from bot.services.registry import ServiceRegistry
from bot.services.watch import SessionWatch, WatchConfig
from bot.spaces import Account, SpacesError
from bot.spaces.service import SpacesService
from bot.storage.store import Store
from tests.conftest import TEST_INSTANCE, close_bot, spaces_session
from tests.fakes.telegram_server import FakeTelegram

ADMIN = 900


def account(sid: str, nick: str = "Alice", nid: int = 1001) -> Account:
    return Account(
        sid=sid,
        ck=sid[-4:],
        user_id=nid,
        nickname=nick,
        is_online=True,
        last_seen_at=None,
        channel_id=None,
        avatar_url=None,
        profile_url=None,
    )


@dataclass
class ScriptedSpaces:
    """Stands in for SpacesClient.check: each sid answers what the test says."""

    answers: dict[str, Account | Exception] = field(default_factory=dict)
    default: Account | Exception | None = None
    calls: list[str] = field(default_factory=list)
    base_url: str = "https://spcs.me"

    async def check(self, sid: str) -> Account:
        self.calls.append(sid)
        answer = self.answers.get(sid, self.default)
        if answer is None:
            answer = account(sid)
        if isinstance(answer, SpacesError | Exception):
            raise answer
        return answer


@dataclass
class WatchKit:
    watch: SessionWatch
    spaces: ScriptedSpaces
    tg: FakeTelegram
    store: Store
    sender: TelegramSender
    notifier: Notifier

    async def sweep(self) -> None:
        """One sweep, then what the outbox loop would send right after it."""
        await self.watch.sweep()
        await self.notifier.deliver_pending()

    async def link(self, chat_id: int, sid: str, nick: str = "Alice", *, due: bool = True) -> None:
        now = datetime.now(UTC)
        await self.store.save_session(
            chat_id, chat_id, spaces_session(sid, nick), now, next_check_at=now
        )

    async def make_due(self, *chat_ids: int) -> None:
        """The chats' sessions are due for a check now."""
        keys = [(c, a.key) for c in chat_ids for a in await self.store.accounts(c)]
        await self.store.defer(keys, datetime.now(UTC))

    def notices(self, chat_id: int | None = None) -> list[str]:
        return [
            c.params["text"] for c in self.tg.sent_messages(chat_id) if c.method == "sendMessage"
        ]


MakeKit = Callable[..., WatchKit]


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    settings = Settings(_env_file=None, bot_token=tg.token, telegram_api_url=tg.url)
    bot = build_bot(settings)
    yield bot
    await close_bot(bot)


@pytest.fixture
def make_kit(store: Store, tg: FakeTelegram, bot: Bot):  # type: ignore[no-untyped-def]
    def make(
        interval: float = 900.0,
        rate: float = 1000.0,
        config: WatchConfig | None = None,
        poll_seconds: float = 0.05,
    ) -> WatchKit:
        spaces = ScriptedSpaces()
        sender = TelegramSender(bot, rate=min(rate, 30.0))
        # The real Spaces adapter over a scripted client: the adapter's mapping is under test.
        registry = ServiceRegistry([SpacesService(spaces)])  # type: ignore[arg-type]
        notifier = Notifier(
            store,
            sender,
            build_i18n(),
            [ADMIN],
            instance=TEST_INSTANCE,
            poll_seconds=poll_seconds,
            service_names=registry.display_name,
        )
        config = config or WatchConfig(interval=interval, concurrency=4, spaces_rate=0)
        watch = SessionWatch(
            store, registry, notifier, config, instance=TEST_INSTANCE, rng=random.Random(7)
        )
        return WatchKit(
            watch=watch, spaces=spaces, tg=tg, store=store, sender=sender, notifier=notifier
        )

    return make


@pytest.fixture
def kit(make_kit) -> WatchKit:  # type: ignore[no-untyped-def]
    return make_kit()  # type: ignore[no-any-return]
