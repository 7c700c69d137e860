"""Jobs: clusters and commands name the groups allowed to run on them (docs/security/jobs.md).

An empty list (every existing row) means anyone holding ``jobs.submit`` may use it, as before.

Revision ID: 0015_job_groups
Revises: 0014_restricted
Create Date: 2026-12-05 17:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from headwater.db import JSONType

revision: str = "0015_job_groups"
down_revision: str | None = "0014_restricted"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("job_clusters", "job_commands"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("groups", JSONType, nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    for table in ("job_commands", "job_clusters"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("groups")
