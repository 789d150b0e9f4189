"""Per-source language hint and keep/block patterns (a feed reader's source settings):
- sources: `lang` (the language of its posts that declare none), `keep_patterns` and `block_patterns` (RE2, JSON
  lists), `posts_filtered` (how many the patterns kept out) and `last_filtered`/`last_filtered_at` (the last
  poll's account of it, shown in source health);
- filtered_posts: each post kept out, once, with the reason: its id is taken, so it is not evaluated again.

Revision ID: 0007p
Revises: 0007f
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007p"
down_revision: str | None = "0007f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch_op:
        batch_op.add_column(sa.Column("lang", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("keep_patterns", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("block_patterns", sa.JSON(), nullable=True))
        # existing sources have kept nothing out
        batch_op.add_column(sa.Column("posts_filtered", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("last_filtered", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("last_filtered_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "filtered_posts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("dedup_key", sa.String(length=2000), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("filtered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name=op.f("fk_filtered_posts_source_id_sources")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filtered_posts")),
    )
    op.create_index(op.f("ix_filtered_posts_source_id"), "filtered_posts", ["source_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_filtered_posts_source_id"), table_name="filtered_posts")
    op.drop_table("filtered_posts")
    with op.batch_alter_table("sources") as batch_op:
        batch_op.drop_column("last_filtered_at")
        batch_op.drop_column("last_filtered")
        batch_op.drop_column("posts_filtered")
        batch_op.drop_column("block_patterns")
        batch_op.drop_column("keep_patterns")
        batch_op.drop_column("lang")
