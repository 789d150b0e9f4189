"""Independent corroboration: which report copies which, and who may push under a source.
- incident_reports: when each report was published, the MinHash signature of its text, the report it comes
  from (a forward, repost or syndicated copy of it) and how similar it is (services/alert/copies.py);
- sources: the token name that owns a push source (`pushed_by`).

Revision ID: 0005c
Revises: 0005
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005c"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incident_reports") as batch_op:
        batch_op.add_column(sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("signature", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("origin_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("similarity", sa.Float(), nullable=True))
    with op.batch_alter_table("sources") as batch_op:
        batch_op.add_column(sa.Column("pushed_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch_op:
        batch_op.drop_column("pushed_by")
    with op.batch_alter_table("incident_reports") as batch_op:
        batch_op.drop_column("similarity")
        batch_op.drop_column("origin_id")
        batch_op.drop_column("signature")
        batch_op.drop_column("reported_at")
