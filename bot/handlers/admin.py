"""The owners' commands. Every handler and button here is behind the admin filter."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, Filter, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.config import Settings
from bot.domain import Backlog
from bot.handlers.chats import PRIVATE_CHAT
from bot.handlers.filters import InLoop
from bot.handlers.steps import (
    Flow,
    StepButton,
    ask,
    cancel_row,
    finish,
    new_step,
    shown,
    step_button,
)
from bot.locales import PoI18n
from bot.remote import TellsOwners, Verdict
from bot.services.broadcast import RESUME_PREFIX, STOP_PREFIX, BroadcastService
from bot.services.clock import utcnow
from bot.services.owners import OwnerService
from bot.services.registry import ServiceRegistry
from bot.services.watch import reachability_key
from bot.storage.owners import AuditRecord
from bot.storage.store import Store

SEND = "send"
BROADCAST_MAX_CHARS = 4000
# Audit details written since they became language-neutral: a count, or a broadcast's "#id".
_NEUTRAL_DETAIL = re.compile(r"#?\d+")


class IsAdmin(Filter):
    async def __call__(self, event: Message | CallbackQuery, settings: Settings) -> bool:
        user = event.from_user
        return user is not None and user.id in settings.admin_ids


class BroadcastFlow(StatesGroup):
    text = State()
    confirm = State()


def _admin_id(event: Message | CallbackQuery) -> int:
    assert event.from_user is not None  # IsAdmin let it through
    return event.from_user.id


# -- statistics ---------------------------------------------------------------------------


async def stats(
    message: Message,
    i18n: PoI18n,
    owner_service: OwnerService,
    store: Store,
    remote_services: ServiceRegistry,
    started_at: float,
    version: str,
) -> None:
    now = utcnow()
    s = await owner_service.stats(now)
    events = s.events_24h

    def checks(service: str | None, verdict: Verdict | None = None) -> int:
        """Checks of the last 24 h (buckets "<service>:<verdict>"), of one service or all."""
        total = 0
        for kind, n in events.items():
            owner, _, outcome = kind.partition(":")
            if not outcome or (service is not None and owner != service):
                continue
            if verdict is None or outcome == verdict.value:
                total += n
        return total

    lines = [
        i18n.text(
            "admin-stats",
            sessions=s.sessions_total,
            active=s.sessions_by_state.get("active", 0),
            unconfirmed=s.sessions_by_state.get("unconfirmed", 0),
            ended=s.sessions_by_state.get("ended", 0),
            blocked=s.blocked_chats,
            people=s.people_total,
            people_24h=s.people_24h,
            people_7d=s.people_7d,
            checks=checks(None),
            expired=checks(None, Verdict.ENDED),
            transient=checks(None, Verdict.TRANSIENT),
            notices=events.get("notices", 0),
            uptime=i18n.duration(time.monotonic() - started_at),
            version=version,
        )
    ]
    lines.append(_backlog_lines(i18n, await store.backlog(now), now))
    instances = await store.live_instance_count(now)
    lines.append(i18n.ntext("admin-stats-instances", instances, count=instances))
    listed = [*remote_services.ids, *sorted(set(s.sessions_by_service) - set(remote_services.ids))]
    for service_id in listed:
        states = s.sessions_by_service.get(service_id, {})
        reachable = (await store.get_meta(reachability_key(service_id)) or "up") == "up"
        lines.append(
            i18n.text(
                "admin-stats-service",
                service=remote_services.display_name(service_id),
                sessions=sum(states.values()),
                active=states.get("active", 0),
                unconfirmed=states.get("unconfirmed", 0),
                ended=states.get("ended", 0),
                checks=checks(service_id),
                expired=checks(service_id, Verdict.ENDED),
                transient=checks(service_id, Verdict.TRANSIENT),
                reachable=i18n.text(
                    "admin-service-reachable" if reachable else "admin-service-unreachable"
                ),
            )
        )
        service = remote_services.get(service_id)
        if isinstance(service, TellsOwners):
            lines += [i18n.text(f.key, **dict(f.params)) for f in service.owner_facts()]
    await message.answer("\n".join(lines))


def _backlog_lines(i18n: PoI18n, backlog: Backlog, now: datetime) -> str:
    """How far behind the watch and the notice outbox are, in two lines."""

    def age(since: datetime | None) -> str:
        return i18n.duration((now - since).total_seconds() if since else 0)

    if backlog.overdue_sessions:
        n = backlog.overdue_sessions
        checks = i18n.ntext("admin-stats-behind", n, count=n, age=age(backlog.oldest_overdue_since))
    else:
        checks = i18n.text("admin-stats-on-time")
    if backlog.pending_notices:
        n = backlog.pending_notices
        notices = i18n.ntext(
            "admin-stats-notices-waiting", n, count=n, age=age(backlog.oldest_pending_since)
        )
    else:
        notices = i18n.text("admin-stats-notices-none")
    return f"{checks}\n{notices}"


# -- access -------------------------------------------------------------------------------


# Telegram ids are stored as 64-bit integers; anything outside is a typo, not an id.
_ID_LIMIT = 2**63


def _target(command: CommandObject) -> int | None:
    arg = (command.args or "").strip()
    if not (arg.lstrip("-").isascii() and arg.lstrip("-").isdigit()) or len(arg) > 20:
        return None
    value = int(arg)
    return value if -_ID_LIMIT <= value < _ID_LIMIT else None


async def access_command(
    message: Message, command: CommandObject, i18n: PoI18n, owner_service: OwnerService
) -> None:
    user_id = _target(command)
    name = command.command.lower()
    if user_id is None:
        await message.answer(i18n.text("admin-usage-id", command=name))
        return
    admin = _admin_id(message)
    if name == "allow":
        await owner_service.allow(admin, user_id)
    elif name == "deny":
        await owner_service.deny(admin, user_id)
    elif name == "unban":
        await owner_service.unban(admin, user_id)
    else:
        result = await owner_service.ban(admin, user_id)
        await message.answer(
            i18n.ntext(
                "admin-banned",
                result.sessions_ended,
                user_id=user_id,
                sessions=result.sessions_ended,
            )
        )
        return
    await message.answer(i18n.text(f"admin-{name}-done", user_id=user_id))


async def audit(message: Message, i18n: PoI18n, owner_service: OwnerService) -> None:
    entries = await owner_service.audit_log(20)
    if not entries:
        await message.answer(i18n.text("admin-audit-empty"))
        return
    lines = [i18n.text("admin-audit-title")]
    now = utcnow()
    for e in entries:
        action = i18n.text(
            "admin-audit-line",
            when=i18n.moment(e.at, now),
            admin=e.admin_id,
            action=_audit_action(i18n, e),
        )
        lines.append(action)
    await message.answer("\n".join(lines))


def _audit_action(i18n: PoI18n, entry: AuditRecord) -> str:
    """The action in the owner's words; details are ids and counts, the same in any language.
    An action without a sentence (or an old free-text detail) is shown as stored."""
    key = f"audit-action-{entry.action}"
    template = i18n.gettext(key)
    neutral = entry.detail is None or _NEUTRAL_DETAIL.fullmatch(entry.detail) is not None
    if template == key or not neutral:
        parts = [entry.action, *(p for p in (entry.target, entry.detail) if p)]
        return " · ".join(parts)  # escaped by the line's own text()
    return template.format(target=entry.target or "", detail=entry.detail or "")


# -- broadcast ----------------------------------------------------------------------------


async def broadcast_start(message: Message, state: FSMContext, bot: Bot, i18n: PoI18n) -> None:
    await finish(state, bot, message.chat.id)
    await state.set_state(BroadcastFlow.text)
    await ask(message, state, bot, i18n, Flow.BROADCAST, i18n.text("broadcast-ask"))


async def broadcast_text(
    message: Message, state: FSMContext, bot: Bot, i18n: PoI18n, broadcasts: BroadcastService
) -> None:
    text = message.html_text if message.text else ""
    if not text.strip() or len(text) > BROADCAST_MAX_CHARS:
        await ask(message, state, bot, i18n, Flow.BROADCAST, i18n.text("broadcast-bad-text"))
        return
    await state.update_data(text=text)
    await state.set_state(BroadcastFlow.confirm)
    recipients = await broadcasts.recipients()
    # The preview is the message itself, copied, with the confirm buttons under it.
    token = await new_step(state, Flow.BROADCAST)
    send = i18n.nplain("button-broadcast-send", recipients, count=recipients)
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[step_button(send, SEND, token)], cancel_row(i18n, token)]
    )
    preview = await message.copy_to(message.chat.id, reply_markup=markup)
    await shown(state, bot, message.chat.id, preview.message_id)


async def broadcast_not_text(message: Message, state: FSMContext, bot: Bot, i18n: PoI18n) -> None:
    await ask(message, state, bot, i18n, Flow.BROADCAST, i18n.text("broadcast-bad-text"))


async def broadcast_send(
    query: CallbackQuery,
    state: FSMContext,
    bot: Bot,
    i18n: PoI18n,
    broadcasts: BroadcastService,
    owner_service: OwnerService,
) -> None:
    data: dict[str, Any] = await state.get_data()
    text = data.get("text")
    await query.answer()
    if not isinstance(text, str) or not isinstance(query.message, Message):
        await state.clear()
        return
    await finish(state, bot, query.message.chat.id)
    admin = _admin_id(query)
    broadcast_id = await broadcasts.start(admin, query.message.chat.id, text)
    await owner_service.record(admin, "broadcast", f"#{broadcast_id}")


async def broadcast_stop(
    query: CallbackQuery, i18n: PoI18n, broadcasts: BroadcastService, owner_service: OwnerService
) -> None:
    raw = (query.data or "").removeprefix(STOP_PREFIX)
    stopped = raw.isdigit() and await broadcasts.cancel(int(raw))
    if stopped:
        await owner_service.record(_admin_id(query), "broadcast-stop", f"#{raw}")
    await query.answer(i18n.plain("broadcast-stopping" if stopped else "broadcast-not-running"))


async def broadcast_resume(
    query: CallbackQuery, i18n: PoI18n, broadcasts: BroadcastService, owner_service: OwnerService
) -> None:
    raw = (query.data or "").removeprefix(RESUME_PREFIX)
    resumed = raw.isdigit() and await broadcasts.resume(int(raw))
    if resumed:
        await owner_service.record(_admin_id(query), "broadcast-resume", f"#{raw}")
        if isinstance(query.message, Message):
            await query.message.edit_reply_markup(reply_markup=None)
    await query.answer(i18n.plain("broadcast-resumed" if resumed else "broadcast-not-resumable"))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(IsAdmin(), PRIVATE_CHAT)
    router.callback_query.filter(IsAdmin())
    router.message.register(stats, Command("stats"))
    router.message.register(access_command, Command("allow", "deny", "ban", "unban"))
    router.message.register(audit, Command("audit"))
    router.message.register(broadcast_start, Command("broadcast"))
    router.message.register(broadcast_text, StateFilter(BroadcastFlow.text), InLoop(F.text))
    router.message.register(broadcast_not_text, StateFilter(BroadcastFlow.text))
    router.callback_query.register(
        broadcast_send, StateFilter(BroadcastFlow.confirm), StepButton.filter(F.action == SEND)
    )
    router.callback_query.register(broadcast_stop, InLoop(F.data.startswith(STOP_PREFIX)))
    router.callback_query.register(broadcast_resume, InLoop(F.data.startswith(RESUME_PREFIX)))
    return router
