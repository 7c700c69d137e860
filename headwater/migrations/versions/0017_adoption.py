"""Catalog: a federated source adopts the dataset lineage filed first (an ``adopted`` change event), and a dataset
whose schema comes from lineage events remembers the event time of its newest schema statement.

Revision ID: 0017_adoption
Revises: 0016_auth_epoch
Create Date: 2026-12-05 22:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from headwater.db import NAMING_CONVENTION, UTCDateTime

revision: str = "0017_adoption"
down_revision: str | None = "0016_auth_epoch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ("created", "schema_changed", "metadata_updated", "deleted", "restored")


def _kinds(values: Sequence[str]) -> str:
    return "kind IN ({})".format(", ".join(f"'{value}'" for value in values))


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("schema_stated_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("change_events", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.drop_constraint("kind", type_="check")
        batch_op.create_check_constraint("kind", _kinds((*KINDS, "adopted")))


def downgrade() -> None:
    op.execute("UPDATE change_events SET kind = 'metadata_updated' WHERE kind = 'adopted'")
    with op.batch_alter_table("change_events", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.drop_constraint("kind", type_="check")
        batch_op.create_check_constraint("kind", _kinds(KINDS))
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("schema_stated_at")
