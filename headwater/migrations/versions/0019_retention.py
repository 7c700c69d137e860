"""Bounded storage (issue 18, finding 4): raw event payloads stored compressed, the event log's unused indexes
dropped, a job's runs indexed newest first (the latest ones retention keeps), and the outbox's trim mark.

* ``lineage_events.payload``: JSON (jsonb) becomes zlib-compressed JSON bytes (``headwater.lineage.models.PackedJSON``);
  existing rows are converted in chunks. On PostgreSQL the column is ``STORAGE EXTERNAL``: a large compressed
  payload is moved out of line without pglz trying to compress it again.
* ``ix_lineage_events_run_uuid`` and ``ix_lineage_events_job``: nothing reads the log by run or job; each cost WAL
  on every event.
* ``ix_lineage_runs_job_id`` becomes ``(job_id, id)``: the same lookups, and a job's latest runs in index order.
* ``change_event_trims``: how far retention removed the change outbox, so a consumer behind it resyncs.

Revision ID: 0019_retention
Revises: 0018_merges
Create Date: 2026-12-06 02:00:00.000000
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

from headwater.db import NAMING_CONVENTION, BigInt, JSONType, UTCDateTime

revision: str = "0019_retention"
down_revision: str | None = "0018_merges"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 1000


def _convert(source: str, target: str, source_type: sa.types.TypeEngine, target_type: sa.types.TypeEngine) -> None:
    """Copy ``lineage_events.<source>`` into ``<target>``, converted, a chunk of rows at a time."""
    bind = op.get_bind()
    table = sa.table(
        "lineage_events", sa.column("id", BigInt), sa.column(source, source_type), sa.column(target, target_type)
    )
    pack = isinstance(target_type, sa.LargeBinary)
    last = 0
    while True:
        rows = bind.execute(
            sa.select(table.c.id, table.c[source]).where(table.c.id > last).order_by(table.c.id).limit(_CHUNK)
        ).all()
        if not rows:
            return
        values = [
            {
                "row_id": row_id,
                "value": zlib.compress(orjson.dumps(value), 6) if pack else orjson.loads(zlib.decompress(value)),
            }
            for row_id, value in rows
        ]
        bind.execute(
            table.update().where(table.c.id == sa.bindparam("row_id")).values({target: sa.bindparam("value")}), values
        )
        last = rows[-1][0]


def upgrade() -> None:
    op.create_table(
        "change_event_trims",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("through", BigInt, nullable=False),
        sa.Column("trimmed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_event_trims")),
    )
    with op.batch_alter_table("lineage_runs", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.drop_index("ix_lineage_runs_job_id")
        batch_op.create_index("ix_lineage_runs_job_id_id", ["job_id", "id"], unique=False)
    with op.batch_alter_table("lineage_events", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.drop_index("ix_lineage_events_run_uuid")
        batch_op.drop_index("ix_lineage_events_job")
        batch_op.add_column(sa.Column("packed", sa.LargeBinary(), nullable=True))
    _convert("payload", "packed", JSONType, sa.LargeBinary())
    with op.batch_alter_table("lineage_events", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.drop_column("payload")
        batch_op.alter_column("packed", new_column_name="payload", existing_type=sa.LargeBinary(), nullable=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE lineage_events ALTER COLUMN payload SET STORAGE EXTERNAL")


def downgrade() -> None:
    with op.batch_alter_table("lineage_events", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.alter_column("payload", new_column_name="packed", existing_type=sa.LargeBinary(), nullable=True)
    with op.batch_alter_table("lineage_events", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.add_column(sa.Column("payload", JSONType, nullable=True))
    _convert("packed", "payload", sa.LargeBinary(), JSONType)
    with op.batch_alter_table("lineage_events", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.drop_column("packed")
        batch_op.alter_column("payload", existing_type=JSONType, nullable=False)
        batch_op.create_index("ix_lineage_events_job", ["job_namespace", "job_name"], unique=False)
        batch_op.create_index("ix_lineage_events_run_uuid", ["run_uuid"], unique=False)
    with op.batch_alter_table("lineage_runs", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.drop_index("ix_lineage_runs_job_id_id")
        batch_op.create_index("ix_lineage_runs_job_id", ["job_id"], unique=False)
    op.drop_table("change_event_trims")
