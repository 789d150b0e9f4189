"""Report status and what came with it:
- events: what each post says of the attack it describes (reported, claimed, denied, rumoured, historical,
  hypothetical) and why; the post of each event (a roundup's attacks are events of one post); a place the post
  names that no gazetteer knows;
- incidents: marked disputed when a later report denies their attack;
- places: the places officers add to the gazetteer.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.add_column(sa.Column("post_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("status", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("status_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("status_evidence", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("unresolved_place", sa.JSON(), nullable=True))
    # Every event so far is its post's main event; then the column is required.
    op.execute("UPDATE events SET post_id = id")
    with op.batch_alter_table("events") as batch_op:
        batch_op.alter_column("post_id", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index(batch_op.f("ix_events_post_id"), ["post_id"], unique=False)
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.add_column(sa.Column("disputed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("disputed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("dispute_reason", sa.Text(), nullable=True))
    op.create_table(
        "places",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("admin1", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_places")),
    )
    with op.batch_alter_table("places") as batch_op:
        batch_op.create_index(batch_op.f("ix_places_key"), ["key"], unique=False)


def downgrade() -> None:
    op.drop_table("places")
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.drop_column("dispute_reason")
        batch_op.drop_column("disputed_by")
        batch_op.drop_column("disputed_at")
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_column("unresolved_place")
        batch_op.drop_column("status_evidence")
        batch_op.drop_column("status_reason")
        batch_op.drop_column("status")
        batch_op.drop_index(batch_op.f("ix_events_post_id"))
        batch_op.drop_column("post_id")
