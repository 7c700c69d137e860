"""Jobs (issue 5): clusters, commands, jobs, their tags and status transitions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 08:35:59.201675
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from headwater.db import BigInt, JSONType, UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_clusters",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tags", JSONType, nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("max_concurrent_jobs", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("status IN ('UP', 'OUT_OF_SERVICE', 'TERMINATED')", name=op.f("ck_job_clusters_status")),
        sa.CheckConstraint("type IN ('spark', 'flink', 'shell')", name=op.f("ck_job_clusters_type")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_clusters")),
        sa.UniqueConstraint("name", name=op.f("uq_job_clusters_name")),
    )
    op.create_table(
        "job_commands",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("executable", JSONType, nullable=False),
        sa.Column("tags", JSONType, nullable=False),
        sa.Column("cluster_criteria", JSONType, nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("status IN ('ACTIVE', 'DEPRECATED', 'INACTIVE')", name=op.f("ck_job_commands_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_commands")),
        sa.UniqueConstraint("name", name=op.f("uq_job_commands_name")),
    )
    op.create_table(
        "jobs",
        sa.Column("pk", BigInt, nullable=False),
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("run_uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("request", JSONType, nullable=False),
        sa.Column("cluster_id", BigInt, nullable=True),
        sa.Column("command_id", BigInt, nullable=True),
        sa.Column("cluster_name", sa.String(length=255), nullable=True),
        sa.Column("command_name", sa.String(length=255), nullable=True),
        sa.Column("timeout_seconds", sa.Integer(), nullable=True),
        sa.Column("kill_requested", sa.Boolean(), nullable=False),
        sa.Column("worker_id", sa.String(length=255), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("work_dir", sa.Text(), nullable=True),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('ACCEPTED', 'RESOLVED', 'CLAIMED', 'INIT', 'RUNNING', 'SUCCEEDED', 'FAILED', 'KILLED', 'INVALID')",
            name=op.f("ck_jobs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["job_clusters.id"], name=op.f("fk_jobs_cluster_id_job_clusters"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["command_id"], ["job_commands.id"], name=op.f("fk_jobs_command_id_job_commands"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_jobs")),
        sa.UniqueConstraint("id", name=op.f("uq_jobs_id")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_cluster_status", ["cluster_id", "status"], unique=False)
        batch_op.create_index("ix_jobs_status_pk", ["status", "pk"], unique=False)
        batch_op.create_index("ix_jobs_user_name", ["user_name", "pk"], unique=False)

    op.create_table(
        "job_tags",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("job_pk", BigInt, nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["job_pk"], ["jobs.pk"], name=op.f("fk_job_tags_job_pk_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_tags")),
        sa.UniqueConstraint("job_pk", "tag", name=op.f("uq_job_tags_job_pk_tag")),
    )
    with op.batch_alter_table("job_tags", schema=None) as batch_op:
        batch_op.create_index("ix_job_tags_tag", ["tag", "job_pk"], unique=False)

    op.create_table(
        "job_transitions",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("job_pk", BigInt, nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["jobs.pk"], name=op.f("fk_job_transitions_job_pk_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_transitions")),
    )
    with op.batch_alter_table("job_transitions", schema=None) as batch_op:
        batch_op.create_index("ix_job_transitions_job_pk", ["job_pk", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_job_transitions_job_pk")

    op.drop_table("job_transitions")
    with op.batch_alter_table("job_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_job_tags_tag")

    op.drop_table("job_tags")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_user_name")
        batch_op.drop_index("ix_jobs_status_pk")
        batch_op.drop_index("ix_jobs_cluster_status")

    op.drop_table("jobs")
    op.drop_table("job_commands")
    op.drop_table("job_clusters")
