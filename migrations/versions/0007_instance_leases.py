"""Several instances on one database: each process holds a lease, and the work it claims
(a session's check, an expiry notice, a broadcast) names it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bot_instances",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("remote_sessions") as batch:
        batch.add_column(sa.Column("checked_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("notice_owner", sa.String(64), nullable=True))
    with op.batch_alter_table("broadcasts") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.drop_column("owner")
    with op.batch_alter_table("remote_sessions") as batch:
        batch.drop_column("notice_owner")
        batch.drop_column("checked_by")
    op.drop_table("bot_instances")
