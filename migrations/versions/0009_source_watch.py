"""A silent source is news (issue 10): what a source's rhythm is (learned from its own posts, bounded), when it
started failing, the operator alert raised on it now; ingest's outbox of those alerts (`source_watch_events`),
the alert service's record of them (`source_alerts`), and which webhook event types a subscription wants.

Revision ID: 0007s
Revises: 0007p
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007s"
down_revision: str | None = "0007p"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch_op:
        batch_op.add_column(sa.Column("last_post_at", WHEN, nullable=True))
        batch_op.add_column(sa.Column("posts_learned", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("gap_mean_seconds", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("daily_longest_gaps", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("learned_until", WHEN, nullable=True))
        batch_op.add_column(sa.Column("failing_since", WHEN, nullable=True))
        batch_op.add_column(sa.Column("watch_state", sa.String(10), nullable=True))
        batch_op.add_column(sa.Column("watch_since", WHEN, nullable=True))
        batch_op.add_column(sa.Column("watch_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("watch_id", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("watch_version", sa.Integer(), nullable=False, server_default="0"))
    # A source failing now started failing at its last success at the latest (or its first poll): a fair start.
    op.execute("UPDATE sources SET failing_since = COALESCE(last_success_at, last_error_at) "
               "WHERE consecutive_failures > 0")

    op.create_table(
        "source_watch_events",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("watch_id", sa.String(64), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("queued_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_watch_events")),
    )
    for column in ("watch_id", "source_id", "at", "queued_at"):
        op.create_index(op.f(f"ix_source_watch_events_{column}"), "source_watch_events", [column])

    op.create_table(
        "source_alerts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("source_name", sa.String(200), nullable=False),
        sa.Column("source_kind", sa.String(20), nullable=False),
        sa.Column("source_url", sa.String(2000), nullable=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("resolved_reason", sa.Text(), nullable=True),
        sa.Column("raised_at", WHEN, nullable=False),
        sa.Column("resolved_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_alerts")),
    )
    for column in ("source_id", "state", "raised_at"):
        op.create_index(op.f(f"ix_source_alerts_{column}"), "source_alerts", [column])

    with op.batch_alter_table("subscriptions") as batch_op:
        batch_op.add_column(sa.Column("events", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch_op:
        batch_op.drop_column("events")
    op.drop_table("source_alerts")
    op.drop_table("source_watch_events")
    with op.batch_alter_table("sources") as batch_op:
        for column in ("watch_version", "watch_id", "watch_reason", "watch_since", "watch_state", "failing_since",
                       "learned_until", "daily_longest_gaps", "gap_mean_seconds", "posts_learned", "last_post_at"):
            batch_op.drop_column(column)
