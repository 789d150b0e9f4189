"""Report citations: how a copy was found (`via`: text or forward), and each report's own address and the links
it cites, so that a Telegram forward or a relay quoting a wire story's URL is linked to that story
(services/alert/copies.py).

Revision ID: 0007f
Revises: 0005i
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007f"
down_revision: str | None = "0005i"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incident_reports") as batch_op:
        batch_op.add_column(sa.Column("via", sa.String(10), nullable=True))
        batch_op.add_column(sa.Column("url", sa.String(2000), nullable=True))
        batch_op.add_column(sa.Column("forward_of", sa.String(2000), nullable=True))
        batch_op.add_column(sa.Column("cites", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incident_reports") as batch_op:
        batch_op.drop_column("cites")
        batch_op.drop_column("forward_of")
        batch_op.drop_column("url")
        batch_op.drop_column("via")
