"""Jobs record the application they run on a cluster manager (issue 19): which manager, the application's id (a
Spark standalone driver id, a YARN application id, a driver pod, a Flink job id), its last state as the manager
said it, and the manager's config, so the reaper can kill an application whose worker was lost.

Revision ID: 0022_job_external_apps
Revises: 0021_dataset_name_collation
Create Date: 2026-12-06 07:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from headwater.db import NAMING_CONVENTION, JSONType

revision: str = "0022_job_external_apps"
down_revision: str | None = "0021_dataset_name_collation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("external_manager", "external_id", "external_state", "external_raw_state", "external_config")


def upgrade() -> None:
    with op.batch_alter_table("jobs", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.add_column(sa.Column("external_manager", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("external_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("external_state", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("external_raw_state", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("external_config", JSONType, nullable=True))
        # The worker checks that no other job holds an application id before recording it on a job.
        batch_op.create_index("ix_jobs_external_app", ["external_manager", "external_id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.drop_index("ix_jobs_external_app")
        for column in reversed(COLUMNS):
            batch_op.drop_column(column)
