"""Lineage: one confirmation row per (job, target dataset) instead of rewriting every column edge a run confirms.

``lineage_column_confirmations`` holds the newest complete declaration of a job's column lineage into a dataset
(event time, run, producer). Column edges that declaration named and that were live already keep their rows; their
last seen, last run and producer are read from the confirmation when it is newer (``confirmed_provenance`` in
``headwater.lineage.models``). Existing edges have no confirmation, so they read their own values, as before.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from headwater.db import BigInt, UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lineage_column_confirmations",
        sa.Column("job_id", BigInt, nullable=False),
        sa.Column("target_dataset_id", BigInt, nullable=False),
        sa.Column("confirmed_at", UTCDateTime(), nullable=False),
        sa.Column("last_run_id", BigInt, nullable=True),
        sa.Column("producer", sa.String(length=1024), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["lineage_jobs.id"],
            name=op.f("fk_lineage_column_confirmations_job_id_lineage_jobs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["last_run_id"],
            ["lineage_runs.id"],
            name=op.f("fk_lineage_column_confirmations_last_run_id_lineage_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["target_dataset_id"],
            ["datasets.id"],
            name=op.f("fk_lineage_column_confirmations_target_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "target_dataset_id", name=op.f("pk_lineage_column_confirmations")),
        postgresql_with={"fillfactor": 70},
    )
    op.create_index(
        op.f("ix_lineage_column_confirmations_target_dataset_id"),
        "lineage_column_confirmations",
        ["target_dataset_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_lineage_column_confirmations_target_dataset_id"), table_name="lineage_column_confirmations")
    op.drop_table("lineage_column_confirmations")
