"""Restricted datasets: a dataset's restriction to groups, restricting tags, and the audience derived from both
(docs/security/restricted-data.md).

Revision ID: 0014_restricted
Revises: 0013
Create Date: 2026-12-05 17:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from headwater.db import BigInt, JSONType, UTCDateTime

revision: str = "0014_restricted"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dataset_restrictions",
        sa.Column("dataset_id", BigInt, nullable=False),
        sa.Column("groups", JSONType, nullable=False),
        sa.Column("set_by", sa.String(length=255), nullable=False),
        sa.Column("set_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_restrictions_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", name=op.f("pk_dataset_restrictions")),
    )
    op.create_table(
        "restricting_tags",
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.Column("groups", JSONType, nullable=False),
        sa.Column("set_by", sa.String(length=255), nullable=False),
        sa.Column("set_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tag", name=op.f("pk_restricting_tags")),
    )
    op.create_table(
        "dataset_audience",
        sa.Column("dataset_id", BigInt, nullable=False),
        sa.Column("member", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_dataset_audience_dataset_id_datasets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("dataset_id", "member", name=op.f("pk_dataset_audience")),
    )
    with op.batch_alter_table("dataset_audience", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dataset_audience_member"), ["member"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dataset_audience", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_audience_member"))
    op.drop_table("dataset_audience")
    op.drop_table("restricting_tags")
    op.drop_table("dataset_restrictions")
