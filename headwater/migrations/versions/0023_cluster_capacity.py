"""Jobs: cluster memory capacity (issue 19): ``job_clusters.max_memory_mb`` and ``default_job_memory_mb``,
``job_commands.memory_mb`` and the memory each job is counted for, ``jobs.memory_mb``.

All nullable: existing clusters keep no memory limit and existing jobs count 0 MB, so nothing changes until a
cluster declares its memory.

Revision ID: 0023_cluster_capacity
Revises: 0022_job_external_apps
Create Date: 2026-12-06 07:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_cluster_capacity"
down_revision: str | None = "0022_job_external_apps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_clusters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_memory_mb", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("default_job_memory_mb", sa.Integer(), nullable=True))
    with op.batch_alter_table("job_commands", schema=None) as batch_op:
        batch_op.add_column(sa.Column("memory_mb", sa.Integer(), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("memory_mb", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("memory_mb")
    with op.batch_alter_table("job_commands", schema=None) as batch_op:
        batch_op.drop_column("memory_mb")
    with op.batch_alter_table("job_clusters", schema=None) as batch_op:
        batch_op.drop_column("default_job_memory_mb")
        batch_op.drop_column("max_memory_mb")
