"""Workers on other hosts (issue 19): a job's files are served through the database and archived in it.

* ``job_file_requests``: an API process asks the worker on a job's host for a listing or a byte range of the job's
  directory; the worker writes the answer into the same row (docs/concepts/jobs.md).
* ``job_archived_files`` and ``job_archive_chunks``: a finished job's logs and (up to HEADWATER_JOBS_DB_ARCHIVE_MAX_BYTES)
  outputs, zlib-compressed in chunks of at most 1 MiB, readable when its worker host has gone away.
* ``jobs.files_archived_at`` and ``jobs.files_not_archived``: when that archive was made, and what it left out.

Revision ID: 0024_job_remote_files
Revises: 0023_cluster_capacity
Create Date: 2026-12-06 07:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from headwater.db import NAMING_CONVENTION, BigInt, UTCDateTime

revision: str = "0024_job_remote_files"
down_revision: str | None = "0023_cluster_capacity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.add_column(sa.Column("files_archived_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("files_not_archived", sa.Integer(), nullable=True))
    op.create_table(
        "job_archived_files",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("job_pk", BigInt, nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("size", BigInt, nullable=True),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["jobs.pk"], name=op.f("fk_job_archived_files_job_pk_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_archived_files")),
        sa.UniqueConstraint("job_pk", "path", name=op.f("uq_job_archived_files_job_pk_path")),
    )
    op.create_table(
        "job_archive_chunks",
        sa.Column("file_id", BigInt, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["job_archived_files.id"],
            name=op.f("fk_job_archive_chunks_file_id_job_archived_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("file_id", "seq", name=op.f("pk_job_archive_chunks")),
    )
    op.create_table(
        "job_file_requests",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("job_pk", BigInt, nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("offset", BigInt, nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("size", BigInt, nullable=True),
        sa.Column("error_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('list', 'read')", name=op.f("ck_job_file_requests_kind")),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["jobs.pk"], name=op.f("fk_job_file_requests_job_pk_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_file_requests")),
    )
    op.create_index("ix_job_file_requests_host", "job_file_requests", ["host", "answered_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_file_requests_host", table_name="job_file_requests")
    op.drop_table("job_file_requests")
    op.drop_table("job_archive_chunks")
    op.drop_table("job_archived_files")
    with op.batch_alter_table("jobs", naming_convention=NAMING_CONVENTION) as batch_op:
        batch_op.drop_column("files_not_archived")
        batch_op.drop_column("files_archived_at")
