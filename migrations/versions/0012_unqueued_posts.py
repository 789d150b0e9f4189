"""A partial index of the posts ingest stored and has not published yet, for the outbox's walk (issue 11).

Ingest asks every second for posts stored but never marked queued, oldest first. Planned afresh without
statistics (a server that never analyzes; shared/db.py re-plans every minute), PostgreSQL walked every post by
`fetched_at`, looking for one whose `queued_at` is NULL: 14-24 ms a walk after 5 minutes at 500 posts/s, growing
with the table. This index holds only those posts, in that order, whatever the plan.

Revision ID: 0012u
Revises: 0011q
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012u"
down_revision: str | None = "0011q"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNQUEUED = sa.text("queued_at IS NULL")


def upgrade() -> None:
    op.create_index("ix_posts_unqueued", "posts", ["fetched_at"], postgresql_where=UNQUEUED, sqlite_where=UNQUEUED)


def downgrade() -> None:
    op.drop_index("ix_posts_unqueued", table_name="posts")
