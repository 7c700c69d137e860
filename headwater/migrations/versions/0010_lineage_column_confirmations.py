"""Lineage: one confirmation row per (job, target dataset) instead of rewriting every column edge a run confirms;
the edges' last-run pointers without foreign keys.

``lineage_column_confirmations`` holds the newest complete declaration of a job's column lineage into a dataset
(event time, run, producer). Column edges that declaration named and that were live already keep their rows; their
last seen, last run and producer are read from the confirmation when it is newer (``confirmed_provenance`` in
``headwater.lineage.models``). Existing edges have no confirmation, so they read their own values, as before.

``last_run_id`` of ``lineage_job_datasets``, ``lineage_dataset_edges`` and ``lineage_column_edges`` loses its
foreign key: checking it took a lookup and a row lock on the run for every edge every run confirms. Runs are only
deleted with their job, whose edges go with it, and readers outer-join the run.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from headwater.db import NAMING_CONVENTION, BigInt, UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EDGE_TABLES = ("lineage_job_datasets", "lineage_dataset_edges", "lineage_column_edges")


def _run_fk(table: str) -> str:
    return f"fk_{table}_last_run_id_lineage_runs"


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
    for table in EDGE_TABLES:
        with op.batch_alter_table(table, naming_convention=NAMING_CONVENTION) as batch:
            batch.drop_constraint(_run_fk(table), type_="foreignkey")


def downgrade() -> None:
    for table in EDGE_TABLES:
        # Pointers to runs that are gone would fail the restored check.
        op.execute(
            f"UPDATE {table} SET last_run_id = NULL WHERE last_run_id IS NOT NULL "
            f"AND NOT EXISTS (SELECT 1 FROM lineage_runs r WHERE r.id = {table}.last_run_id)"
        )
        with op.batch_alter_table(table, naming_convention=NAMING_CONVENTION) as batch:
            batch.create_foreign_key(_run_fk(table), "lineage_runs", ["last_run_id"], ["id"], ondelete="SET NULL")
    op.drop_index(op.f("ix_lineage_column_confirmations_target_dataset_id"), table_name="lineage_column_confirmations")
    op.drop_table("lineage_column_confirmations")
