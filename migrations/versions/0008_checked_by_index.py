"""A partial index on the sessions being checked now: each instance looks for a stopped
process's claims every 15 s, which without it reads every row.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEING_CHECKED = sa.text("checked_by IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_remote_sessions_checked_by",
        "remote_sessions",
        # The key after it: a result's write, by key and claimant, stays one lookup.
        ["checked_by", "chat_id", "service", "account_id"],
        postgresql_where=_BEING_CHECKED,
        sqlite_where=_BEING_CHECKED,
    )


def downgrade() -> None:
    op.drop_index("ix_remote_sessions_checked_by", table_name="remote_sessions")
