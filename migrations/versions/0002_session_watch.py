"""Session watch: a state and a due time per session, pending notices, chats.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("spaces_sessions") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="active"))
        # Existing sessions are due at once; the checker's rate limit spreads them out.
        batch.add_column(
            sa.Column(
                "next_check_at",
                sa.DateTime(timezone=True),
                nullable=True,
                server_default=sa.func.current_timestamp(),
            )
        )
        batch.add_column(sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("notice", sa.String(16), nullable=False, server_default="none"))
        batch.add_column(sa.Column("notice_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_spaces_sessions_next_check_at", ["next_check_at"])
        batch.create_index("ix_spaces_sessions_notice", ["notice"])
    op.create_table(
        "chats",
        sa.Column("chat_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("language_code", sa.String(16), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("chats")
    with op.batch_alter_table("spaces_sessions") as batch:
        batch.drop_index("ix_spaces_sessions_notice")
        batch.drop_index("ix_spaces_sessions_next_check_at")
        for column in (
            "notice_due_at",
            "notice",
            "ended_at",
            "failures",
            "last_checked_at",
            "next_check_at",
            "state",
        ):
            batch.drop_column(column)
