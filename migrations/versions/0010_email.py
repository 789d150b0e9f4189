"""Email as a second channel beside webhooks (issue 11): a subscription's channel (webhook or email, from its
URL's scheme), whether an email recipient gets alerts as they fire, its shift digest times and its time zone;
and when an incident last escalated (severity or corroboration rose), for the digest's "escalating" section.

Revision ID: 0010e
Revises: 0007s
Create Date: 2026-12-12
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010e"
down_revision: str | None = "0007s"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(10), nullable=False, server_default="webhook"))
        batch_op.add_column(sa.Column("immediate", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column("digest", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("tz", sa.String(64), nullable=True))
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_incidents_escalated_at"), "incidents", ["escalated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_incidents_escalated_at"), table_name="incidents")
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.drop_column("escalated_at")
    with op.batch_alter_table("subscriptions") as batch_op:
        for column in ("tz", "digest", "immediate", "channel"):
            batch_op.drop_column(column)
