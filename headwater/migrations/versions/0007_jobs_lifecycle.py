"""Jobs lifecycle (issue 5): applications, attempts (retries), attachments, retention of job directories.

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-30 04:31:19.776946
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from headwater.db import BigInt, JSONType, UTCDateTime

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing jobs get attempt 1 of 1 and no archiving through the server defaults.
    op.create_table(
        "job_applications",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=True),
        sa.Column("type", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tags", JSONType, nullable=False),
        sa.Column("dependencies", JSONType, nullable=False),
        sa.Column("configs", JSONType, nullable=False),
        sa.Column("environment", JSONType, nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("status IN ('ACTIVE', 'DEPRECATED', 'INACTIVE')", name=op.f("ck_job_applications_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_applications")),
        sa.UniqueConstraint("name", name=op.f("uq_job_applications_name")),
    )
    op.create_table(
        "job_command_applications",
        sa.Column("command_id", BigInt, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("application_id", BigInt, nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["job_applications.id"],
            name=op.f("fk_job_command_applications_application_id_job_applications"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["command_id"],
            ["job_commands.id"],
            name=op.f("fk_job_command_applications_command_id_job_commands"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("command_id", "position", name=op.f("pk_job_command_applications")),
        sa.UniqueConstraint(
            "command_id", "application_id", name=op.f("uq_job_command_applications_command_id_application_id")
        ),
    )
    with op.batch_alter_table("job_command_applications", schema=None) as batch_op:
        batch_op.create_index("ix_job_command_applications_application_id", ["application_id"], unique=False)

    op.create_table(
        "job_attachments",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("job_pk", BigInt, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", BigInt, nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["jobs.pk"], name=op.f("fk_job_attachments_job_pk_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_attachments")),
        sa.UniqueConstraint("job_pk", "name", name=op.f("uq_job_attachments_job_pk_name")),
    )
    op.create_table(
        "job_attempts",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("job_pk", BigInt, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=255), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["job_pk"], ["jobs.pk"], name=op.f("fk_job_attempts_job_pk_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_attempts")),
        sa.UniqueConstraint("job_pk", "attempt", name=op.f("uq_job_attempts_job_pk_attempt")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("archive_logs", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("archive_path", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("cleaned_at", UTCDateTime(), nullable=True))
        batch_op.create_index("ix_jobs_retention", ["host", "finished_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_retention")
        batch_op.drop_column("cleaned_at")
        batch_op.drop_column("archive_path")
        batch_op.drop_column("archive_logs")
        batch_op.drop_column("max_attempts")
        batch_op.drop_column("attempt")

    op.drop_table("job_attempts")
    op.drop_table("job_attachments")
    with op.batch_alter_table("job_command_applications", schema=None) as batch_op:
        batch_op.drop_index("ix_job_command_applications_application_id")

    op.drop_table("job_command_applications")
    op.drop_table("job_applications")
