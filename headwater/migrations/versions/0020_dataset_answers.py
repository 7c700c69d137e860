"""Catalog: each dataset's stored, ready-to-send answer, valid while the dataset is at the revision it was built
from, so that a read missing the in-process cache costs one indexed read (issue 18).

Revision ID: 0020_dataset_answers
Revises: 0019_retention
Create Date: 2026-12-07 01:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from headwater.db import BigInt

revision: str = "0020_dataset_answers"
down_revision: str | None = "0019_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dataset_answers",
        sa.Column("dataset_id", BigInt, autoincrement=False, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_answers_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", name=op.f("pk_dataset_answers")),
    )


def downgrade() -> None:
    op.drop_table("dataset_answers")
