"""Dataset names in code-point order on PostgreSQL too (issue 18): ``datasets.name`` becomes ``COLLATE "C"``.

The dataset list is ordered by name, and the list cache decides which cached pages a changed dataset can alter by
comparing names in Python (headwater.catalog.list_pages), which is code-point order. SQLite already compares names
by their UTF-8 bytes, the same order; a PostgreSQL database created with a linguistic collation (en_US.UTF-8, ICU)
ordered them otherwise (``a`` before ``B``, punctuation weighed last), so pages and cache could disagree. "C" also
lets ``name_prefix`` filters read the name index as a range. The indexes on ``name`` are rebuilt and the table
analysed again (the type change drops the column's statistics, which estimated list totals read). SQLite: nothing.

Revision ID: 0021_dataset_name_collation
Revises: 0020_dataset_answers
Create Date: 2026-12-06 03:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0021_dataset_name_collation"
down_revision: str | None = "0020_dataset_answers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE datasets ALTER COLUMN name TYPE VARCHAR(1024) COLLATE "C"')
        # A new column type drops its statistics; the list's estimated totals come from them (ANALYZE samples).
        op.execute("ANALYZE datasets")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE datasets ALTER COLUMN name TYPE VARCHAR(1024) COLLATE pg_catalog."default"')
