"""Catalog: an admin can merge two datasets that are one (and undo it): the duplicate points at the dataset it was
merged into, and each merge keeps what it moved so that undoing it puts that back.

Revision ID: 0018_merges
Revises: 0017_adoption
Create Date: 2026-12-06 00:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from headwater.db import NAMING_CONVENTION, BigInt, JSONType, UTCDateTime

revision: str = "0018_merges"
down_revision: str | None = "0017_adoption"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ("created", "schema_changed", "metadata_updated", "deleted", "restored", "adopted")


def _kinds(values: Sequence[str]) -> str:
    return "kind IN ({})".format(", ".join(f"'{value}'" for value in values))


def upgrade() -> None:
    with op.batch_alter_table("datasets", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.add_column(sa.Column("merged_into_id", BigInt, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_datasets_merged_into_id_datasets"),
            "datasets",
            ["merged_into_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(batch_op.f("ix_datasets_merged_into_id"), ["merged_into_id"], unique=False)
    with op.batch_alter_table("change_events", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.drop_constraint("kind", type_="check")
        batch_op.create_check_constraint("kind", _kinds((*KINDS, "merged", "unmerged")))
    op.create_table(
        "lineage_dataset_merges",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("into_id", BigInt, nullable=False),
        sa.Column("duplicate_id", BigInt, nullable=False),
        sa.Column("merged_by", sa.String(length=255), nullable=False),
        sa.Column("merged_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("moved", JSONType, nullable=False),
        sa.Column("undone_at", UTCDateTime(), nullable=True),
        sa.Column("undone_by", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["duplicate_id"],
            ["datasets.id"],
            name=op.f("fk_lineage_dataset_merges_duplicate_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["into_id"], ["datasets.id"], name=op.f("fk_lineage_dataset_merges_into_id_datasets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lineage_dataset_merges")),
    )
    op.create_index(op.f("ix_lineage_dataset_merges_duplicate_id"), "lineage_dataset_merges", ["duplicate_id"])
    op.create_index(op.f("ix_lineage_dataset_merges_into_id"), "lineage_dataset_merges", ["into_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_lineage_dataset_merges_into_id"), table_name="lineage_dataset_merges")
    op.drop_index(op.f("ix_lineage_dataset_merges_duplicate_id"), table_name="lineage_dataset_merges")
    op.drop_table("lineage_dataset_merges")
    op.execute("UPDATE change_events SET kind = 'metadata_updated' WHERE kind IN ('merged', 'unmerged')")
    with op.batch_alter_table("change_events", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.drop_constraint("kind", type_="check")
        batch_op.create_check_constraint("kind", _kinds(KINDS))
    with op.batch_alter_table("datasets", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.drop_index(batch_op.f("ix_datasets_merged_into_id"))
        batch_op.drop_constraint(batch_op.f("fk_datasets_merged_into_id_datasets"), type_="foreignkey")
        batch_op.drop_column("merged_into_id")
