"""Identity: the auth epoch, one row every process polls to forget cached credentials after a revocation
(docs/security/tokens-and-audit.md).

Revision ID: 0016_auth_epoch
Revises: 0015_job_groups
Create Date: 2026-12-05 21:40:00.000000
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from headwater.db import BigInt, UTCDateTime

revision: str = "0016_auth_epoch"
down_revision: str | None = "0015_job_groups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "auth_epoch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("epoch", BigInt, nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_epoch")),
    )
    op.bulk_insert(table, [{"id": 1, "epoch": 0, "changed_at": dt.datetime.now(dt.UTC)}])


def downgrade() -> None:
    op.drop_table("auth_epoch")
