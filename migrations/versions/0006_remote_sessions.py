"""Sessions of any service, several per chat: spaces_sessions becomes remote_sessions.

Rows are keyed by (chat, service, account). Today's Spaces rows come over as service
"spaces", account_id = the Spaces user id, secrets {"sid", "ck"} with their cipher tokens
unchanged and `legacy_seal` set: they are still sealed under the old table's context, and
the app re-seals them under the new one right after migrating (it holds the key; a
migration run by hand does not). Down: Spaces rows go back (the newest per chat); rows of
other services cannot exist in the old table and are dropped. A row the app already
re-sealed goes back readable only to code that knows the new context, so the older version
shows it as unreadable and asks for a new login.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COMMON = (
    "linked_at",
    "last_confirmed_at",
    "state",
    "next_check_at",
    "last_checked_at",
    "failures",
    "ended_at",
    "notice",
    "notice_due_at",
)


def _watch_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="active"),
        sa.Column(
            "next_check_at",
            sa.DateTime(timezone=True),
            nullable=True,
            server_default=sa.func.current_timestamp(),
        ),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notice", sa.String(16), nullable=False, server_default="none"),
        sa.Column("notice_due_at", sa.DateTime(timezone=True), nullable=True),
    ]


def _old_table() -> sa.Table:
    return sa.Table(
        "spaces_sessions",
        sa.MetaData(),
        sa.Column("chat_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("spaces_user_id", sa.BigInteger(), nullable=False),
        sa.Column("nickname", sa.String(64), nullable=False),
        sa.Column("sid_enc", sa.Text(), nullable=False),
        sa.Column("ck_enc", sa.Text(), nullable=False),
        *_watch_columns(),
    )


def _new_table() -> sa.Table:
    return sa.Table(
        "remote_sessions",
        sa.MetaData(),
        sa.Column("chat_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("service", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("secrets_enc", sa.Text(), nullable=False),
        sa.Column("legacy_seal", sa.Boolean(), nullable=False, server_default=sa.false()),
        *_watch_columns(),
    )


def upgrade() -> None:
    new = _new_table()
    new.create(op.get_bind())
    op.create_index("ix_remote_sessions_next_check_at", "remote_sessions", ["next_check_at"])
    op.create_index("ix_remote_sessions_notice", "remote_sessions", ["notice"])
    old = _old_table()
    bind = op.get_bind()
    rows = [
        {
            "chat_id": row.chat_id,
            "service": "spaces",
            "account_id": str(row.spaces_user_id),
            "telegram_user_id": row.telegram_user_id,
            "display_name": row.nickname,
            "secrets_enc": json.dumps({"sid": row.sid_enc, "ck": row.ck_enc}),
            "legacy_seal": True,
            **{name: getattr(row, name) for name in _COMMON},
        }
        for row in bind.execute(sa.select(old)).all()
    ]
    if rows:
        bind.execute(sa.insert(new), rows)
    op.drop_index("ix_spaces_sessions_notice", table_name="spaces_sessions")
    op.drop_index("ix_spaces_sessions_next_check_at", table_name="spaces_sessions")
    op.drop_table("spaces_sessions")


def downgrade() -> None:
    old = _old_table()
    bind = op.get_bind()
    old.create(bind)
    op.create_index("ix_spaces_sessions_next_check_at", "spaces_sessions", ["next_check_at"])
    op.create_index("ix_spaces_sessions_notice", "spaces_sessions", ["notice"])
    new = _new_table()
    newest: dict[int, dict[str, object]] = {}
    query = sa.select(new).where(new.c.service == "spaces").order_by(new.c.linked_at)
    for row in bind.execute(query).all():
        try:
            secrets = json.loads(row.secrets_enc)
            spaces_user_id = int(row.account_id)
        except ValueError:
            continue  # not a row the old table can hold
        newest[row.chat_id] = {  # later rows replace earlier ones: the newest per chat stays
            "chat_id": row.chat_id,
            "telegram_user_id": row.telegram_user_id,
            "spaces_user_id": spaces_user_id,
            "nickname": row.display_name,
            "sid_enc": secrets.get("sid", ""),
            "ck_enc": secrets.get("ck", ""),
            **{name: getattr(row, name) for name in _COMMON},
        }
    if newest:
        bind.execute(sa.insert(old), list(newest.values()))
    op.drop_index("ix_remote_sessions_notice", table_name="remote_sessions")
    op.drop_index("ix_remote_sessions_next_check_at", table_name="remote_sessions")
    op.drop_table("remote_sessions")
