"""Nothing owed is lost: replayable deliveries, subscription and source lifecycle, secret rotation.
- subscriptions: when it was disabled (what fired meanwhile is offered on enable), the previous secret and
  until when it still signs (rotation overlap), a soft-delete mark;
- notifications: the attempt count at the last replay (a replay starts the retry schedule afresh);
- sources: a soft-delete mark (a removed source's posts stay in the log).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch_op:
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("previous_secret", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.add_column(sa.Column("replay_base", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("sources") as batch_op:
        batch_op.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch_op:
        batch_op.drop_column("removed_at")
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.drop_column("replay_base")
    with op.batch_alter_table("subscriptions") as batch_op:
        batch_op.drop_column("removed_at")
        batch_op.drop_column("previous_secret_until")
        batch_op.drop_column("previous_secret")
        batch_op.drop_column("disabled_at")
