"""Noise control and access: silences, API tokens with roles, incident corroboration and severity,
alert paging and muting, subscription quiet hours.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("matchers", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expired_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
    )
    with op.batch_alter_table("silences") as batch_op:
        batch_op.create_index(batch_op.f("ix_silences_starts_at"), ["starts_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_silences_ends_at"), ["ends_at"], unique=False)

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )

    with op.batch_alter_table("incidents") as batch_op:
        batch_op.add_column(
            sa.Column("corroboration", sa.String(length=20), nullable=False, server_default="single_source")
        )
        batch_op.add_column(sa.Column("severity", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.add_column(sa.Column("last_paged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("page_count", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("muted_by", sa.Text(), nullable=True))
    with op.batch_alter_table("subscriptions") as batch_op:
        batch_op.add_column(sa.Column("quiet_hours", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch_op:
        batch_op.drop_column("quiet_hours")
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.drop_column("muted_by")
        batch_op.drop_column("page_count")
        batch_op.drop_column("last_paged_at")
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.drop_column("resolved_at")
        batch_op.drop_column("severity")
        batch_op.drop_column("corroboration")
    op.drop_table("api_tokens")
    with op.batch_alter_table("silences") as batch_op:
        batch_op.drop_index(batch_op.f("ix_silences_ends_at"))
        batch_op.drop_index(batch_op.f("ix_silences_starts_at"))
    op.drop_table("silences")
