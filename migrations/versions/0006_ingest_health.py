"""Ingest health: a source's last warning (a poll that dropped items over WATCHFLOOR_MAX_ENTRIES_PER_POLL says
so, and ops see it in `watchfloor source list` and GET /api/sources), and when it was set.

Revision ID: 0005i
Revises: 0005c
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005i"
down_revision: str | None = "0005c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch_op:
        batch_op.add_column(sa.Column("last_warning", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("last_warning_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch_op:
        batch_op.drop_column("last_warning_at")
        batch_op.drop_column("last_warning")
