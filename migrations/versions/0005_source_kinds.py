"""Source kinds beyond feeds (Telegram first): a source's platform handle and its cursor, and a post's origin.
- sources.handle: what the kind's adapter polls (a Telegram channel name), NULL for feed and push sources;
- sources.cursor: the newest item the source has given (a Telegram message id), NULL until its first poll;
- posts.forwarded_from: the post this one forwards (a t.me link or a name), for a later corroboration step.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch_op:
        batch_op.add_column(sa.Column("handle", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("cursor", sa.String(length=200), nullable=True))
    with op.batch_alter_table("posts") as batch_op:
        batch_op.add_column(sa.Column("forwarded_from", sa.String(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_column("forwarded_from")
    with op.batch_alter_table("sources") as batch_op:
        batch_op.drop_column("cursor")
        batch_op.drop_column("handle")
