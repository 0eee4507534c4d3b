"""Two bot processes' watches and outboxes on one PostgreSQL database: each session is
checked once, each notice told once, and a stopped process's work is taken over."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from aiogram import Bot

from bot.locales import build_i18n
from bot.services.instance import InstanceLease
from bot.services.notifier import Notifier, TelegramSender
from bot.services.registry import ServiceRegistry
from bot.services.watch import SessionWatch, WatchConfig
from bot.spaces import Account, SpacesUnavailable
from bot.spaces.service import SpacesService
from bot.storage.crypto import Cipher
from bot.storage.engine import create_engine, make_sessionmaker, migrate
from bot.storage.store import Store
from tests.conftest import spaces_session
from tests.external import pg_url  # noqa: F401 - fixture
from tests.fakes.telegram_server import FakeTelegram
from tests.watch.conftest import ADMIN, ScriptedSpaces
from tests.watch.test_outbox import eventually


@dataclass
class Instance:
    store: Store
    watch: SessionWatch
    notifier: Notifier
    lease: InstanceLease


@pytest.fixture
async def spaces() -> ScriptedSpaces:
    return ScriptedSpaces()


@pytest.fixture
async def instances(
    pg_url: str,  # noqa: F811
    cipher: Cipher,
    tg: FakeTelegram,
    bot: Bot,
    spaces: ScriptedSpaces,
) -> AsyncIterator[list[Instance]]:
    engines = [create_engine(pg_url) for _ in range(2)]
    await migrate(engines[0])
    made: list[Instance] = []
    for n, engine in enumerate(engines):
        store = Store(make_sessionmaker(engine), cipher)
        name = f"test-host:{n}:0000000{n}"
        registry = ServiceRegistry([SpacesService(spaces)])  # type: ignore[arg-type]
        notifier = Notifier(
            store,
            TelegramSender(bot, rate=30.0),
            build_i18n(),
            [ADMIN],
            instance=name,
            poll_seconds=0.05,
            service_names=registry.display_name,
        )
        # Small claims, so both instances take part in one sweep.
        config = WatchConfig(interval=900, concurrency=2, spaces_rate=0, batch_size=4)
        watch = SessionWatch(store, registry, notifier, config, instance=name, rng=random.Random(n))
        lease = InstanceLease(store, name, takeovers=[notifier.recover_orphans], lease_seconds=2.0)
        await lease.join()
        made.append(Instance(store, watch, notifier, lease))
    try:
        yield made
    finally:
        for engine in engines:
            await engine.dispose()


async def link(store: Store, chats: range) -> None:
    now = datetime.now(UTC)
    for chat in chats:
        await store.save_session(chat, chat, spaces_session(f"{chat:016d}"), now, next_check_at=now)


async def test_two_watches_sweeping_at_once_check_each_session_once(
    instances: list[Instance], spaces: ScriptedSpaces, monkeypatch: pytest.MonkeyPatch
) -> None:
    await link(instances[0].store, range(1, 61))
    slow = spaces.check

    async def check(sid: str) -> Account:
        await asyncio.sleep(0.005)  # both sweeps overlap
        return await slow(sid)

    monkeypatch.setattr(spaces, "check", check)
    await asyncio.gather(*(i.watch.sweep() for i in instances))
    per_session = Counter(spaces.calls)
    assert len(per_session) == 60 and set(per_session.values()) == {1}
    assert all(sum(i.watch.totals.values()) > 0 for i in instances)  # both worked
    accounts = [a for c in range(1, 61) for a in await instances[0].store.accounts(c)]
    assert all(a.next_check_at is not None for a in accounts)
    assert {a.state for a in accounts} == {"active"}


async def test_an_outage_seen_by_both_instances_is_told_to_the_owners_once(
    instances: list[Instance], spaces: ScriptedSpaces, tg: FakeTelegram
) -> None:
    await link(instances[0].store, range(1, 41))
    spaces.default = SpacesUnavailable("http_status", 503)
    await asyncio.gather(*(i.watch.sweep() for i in instances))
    assert all(i.watch.detectors["spaces"].down for i in instances)
    i18n = build_i18n()
    told = [c.params["text"] for c in tg.sent_messages(ADMIN) if c.method == "sendMessage"]
    assert told == [i18n.text("admin-service-down", "ru", service="Spaces")]

    # Back: both see it answer again, the owners hear of it once.
    spaces.default = None
    store = instances[0].store
    keys = [(c, a.key) for c in range(1, 41) for a in await store.accounts(c)]
    for _ in range(2):
        await store.defer(keys, datetime.now(UTC))
        await asyncio.gather(*(i.watch.sweep() for i in instances))
    assert not any(i.watch.detectors["spaces"].down for i in instances)
    told = [c.params["text"] for c in tg.sent_messages(ADMIN) if c.method == "sendMessage"]
    assert told[1:] == [i18n.text("admin-service-up", "ru", service="Spaces")]


async def test_a_stopped_instances_notices_are_sent_by_the_other_once_its_lease_runs_out(
    instances: list[Instance], tg: FakeTelegram
) -> None:
    first, second = instances
    await link(first.store, range(1, 4))
    for chat in range(1, 4):
        [account] = await first.store.accounts(chat)
        session = await first.store.get_session(chat, account.key)
        assert session is not None
        await first.store.end_session(
            chat, account.key, session.secrets, datetime.now(UTC), notify=True
        )
    # The first instance claims every notice, then dies before sending any.
    while await first.store.claim_notice(datetime.now(UTC), first.lease.id):
        pass
    assert await second.store.recover_notices(datetime.now(UTC)) == (0, 0)  # still alive
    stop = asyncio.Event()
    runs = [
        asyncio.create_task(second.lease.run(stop)),
        asyncio.create_task(second.notifier.run(stop)),
    ]
    try:
        # Two seconds later its lease has run out: the second one sends them, once each.
        await eventually(lambda: {c.chat_id for c in tg.sent_messages()} >= {1, 2, 3}, limit=15)
        await asyncio.sleep(0.6)  # more rounds: still once
    finally:
        stop.set()
        await asyncio.gather(*runs)
    sent = Counter(c.chat_id for c in tg.sent_messages() if c.method == "sendMessage")
    assert [sent[c] for c in (1, 2, 3)] == [1, 1, 1]


async def test_the_lease_loop_renews_takes_over_survives_a_failing_database_and_leaves(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.services.instance")
    taken_over = 0

    async def takeover() -> None:
        nonlocal taken_over
        taken_over += 1
        if taken_over == 2:
            raise RuntimeError("one failed takeover")  # logged; the loop goes on

    lease = InstanceLease(store, "test-host:9:99999999", takeovers=[takeover], lease_seconds=0.4)
    await lease.join()
    assert await store.live_instance_count(datetime.now(UTC)) == 1
    real = store.hold_lease
    broken = False

    async def hold(*args: object) -> bool:
        if broken:
            raise OSError("database is locked")
        return await real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "hold_lease", hold)
    stop = asyncio.Event()
    task = asyncio.create_task(lease.run(stop))
    try:
        await eventually(lambda: taken_over >= 3)
        broken = True
        await eventually(lambda: "renewing the instance lease failed" in caplog.text)
        count = taken_over
        await asyncio.sleep(0.3)
        assert taken_over == count  # no takeover while its own lease is in doubt
        broken = False
        await eventually(lambda: "renewed again" in caplog.text)
        await eventually(lambda: taken_over > count)
    finally:
        stop.set()
        await task
    assert caplog.text.count("renewing the instance lease failed") == 1  # said once per streak
    assert "one failed takeover" in caplog.text
    await lease.leave()
    assert await store.live_instance_count(datetime.now(UTC)) == 0
