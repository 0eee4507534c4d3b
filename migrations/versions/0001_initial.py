"""Initial schema: installation facts and linked Spaces sessions.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "spaces_sessions",
        sa.Column("chat_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("spaces_user_id", sa.BigInteger(), nullable=False),
        sa.Column("nickname", sa.String(64), nullable=False),
        sa.Column("sid_enc", sa.Text(), nullable=False),
        sa.Column("ck_enc", sa.Text(), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_confirmed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spaces_sessions")
    op.drop_table("meta")
