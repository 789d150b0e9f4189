"""Indexes that keep the sender's, the alert stage's and the sweeper's walks bounded as the event log grows
(issue 11), with or without a vacuum and fresh planner statistics.

- notifications: the sender claims pending rows in `next_attempt_at` order. A partial index of pending rows
  replaces the index of every row's `next_attempt_at`, which a claim walked past every delivered row's old
  versions. The index of `subscription_id` goes: the unique constraint's leading column serves the same
  lookups, and with it PostgreSQL read every notification of the subscription on each claim (17-58 ms a
  claim after 5 minutes at 500 posts/s on a server that does not vacuum).
- incidents: a partial index of the open ones by `last_seen_at`, for the alert stage's candidates near an
  event's time (without it, the open-incident index below was read whole: 40 ms an event batch).
- incidents.last_report_at, when the latest report was recorded, and a partial index of open incidents on it:
  the sweeper asked for the open incidents whose latest report is older than the resolve delay by grouping
  every open incident's reports, every 10 s (0.45 s a sweep after 5 minutes at 500 posts/s). Filled from
  the reports already recorded.
- On PostgreSQL, a notification's body (its signed webhook, ~2 kB) goes to the TOAST table: each of the 3
  updates of a send (lease, attempt, outcome) then copies a small row, not the body.

Revision ID: 0011q
Revises: 0010e
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011q"
down_revision: str | None = "0010e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("state = 'pending'")
OPEN = sa.text("state = 'open'")


def upgrade() -> None:
    op.drop_index("ix_notifications_next_attempt_at", table_name="notifications")
    op.drop_index("ix_notifications_subscription_id", table_name="notifications")
    op.create_index("ix_notifications_due", "notifications", ["next_attempt_at", "id"],
                    postgresql_where=PENDING, sqlite_where=PENDING)
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.add_column(sa.Column("last_report_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE incidents SET last_report_at = (SELECT max(r.added_at) FROM incident_reports r "
               "WHERE r.incident_id = incidents.id)")
    op.create_index("ix_incidents_open_quiet", "incidents", ["last_report_at"],
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index("ix_incidents_open_last_seen", "incidents", ["last_seen_at"],
                    postgresql_where=OPEN, sqlite_where=OPEN)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE notifications ALTER COLUMN body SET STORAGE EXTERNAL")
        op.execute("ALTER TABLE notifications SET (toast_tuple_target = 256)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE notifications RESET (toast_tuple_target)")
        op.execute("ALTER TABLE notifications ALTER COLUMN body SET STORAGE EXTENDED")
    op.drop_index("ix_incidents_open_last_seen", table_name="incidents")
    op.drop_index("ix_incidents_open_quiet", table_name="incidents")
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.drop_column("last_report_at")
    op.drop_index("ix_notifications_due", table_name="notifications")
    op.create_index("ix_notifications_subscription_id", "notifications", ["subscription_id"])
    op.create_index("ix_notifications_next_attempt_at", "notifications", ["next_attempt_at"])
