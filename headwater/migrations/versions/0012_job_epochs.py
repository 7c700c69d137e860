"""Jobs: an epoch on each claim (fencing), so a reaped claim's late writes are refused (docs/adr/0001-job-fencing.md).

Every claim of a job increments ``jobs.epoch``; reaping increments it again in the same statement that takes the
job away. A worker's writes for a job are conditioned on (worker, epoch). ``job_attempts.epoch`` records which
claim ran each attempt. Existing rows start at epoch 0.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 05:15:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("epoch", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("job_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("epoch", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("job_attempts", schema=None) as batch_op:
        batch_op.drop_column("epoch")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("epoch")
