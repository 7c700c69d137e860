"""The job-execution tables (Genie's model): clusters, commands, jobs, their tags and every status transition.

A job has a short integer primary key (``pk``, for keyset pagination and foreign keys) and the public id
clients see (``id``: a UUID, or the client's own id), which is also its OpenLineage run id when it is a UUID.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from headwater.db import Base, BigInt, JSONType
from headwater.jobs.selectors import implicit_tags
from headwater.orm import BigIntPK, Code, Count, LongText, UTCNow, UTCTime, one_of

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "Application",
    "ApplicationStatus",
    "Cluster",
    "ClusterStatus",
    "ClusterType",
    "Command",
    "CommandApplication",
    "CommandStatus",
    "Job",
    "JobArchiveChunk",
    "JobArchivedFile",
    "JobAttachment",
    "JobAttempt",
    "JobFileRequest",
    "JobStatus",
    "JobTag",
    "JobTransition",
]


class ClusterType(enum.StrEnum):
    """Which engine runs the cluster's jobs."""

    SPARK = "spark"
    FLINK = "flink"
    SHELL = "shell"


class ClusterStatus(enum.StrEnum):
    """Only UP clusters take new jobs."""

    UP = "UP"
    OUT_OF_SERVICE = "OUT_OF_SERVICE"
    TERMINATED = "TERMINATED"


class CommandStatus(enum.StrEnum):
    """Only ACTIVE commands are chosen for new jobs."""

    ACTIVE = "ACTIVE"
    DEPRECATED = "DEPRECATED"
    INACTIVE = "INACTIVE"


class ApplicationStatus(enum.StrEnum):
    """Genie's application statuses; a job whose command needs an INACTIVE application does not start."""

    ACTIVE = "ACTIVE"
    DEPRECATED = "DEPRECATED"
    INACTIVE = "INACTIVE"


class JobStatus(enum.StrEnum):
    """ACCEPTED -> RESOLVED -> CLAIMED -> INIT -> RUNNING -> SUCCEEDED | FAILED | KILLED, or INVALID."""

    ACCEPTED = "ACCEPTED"
    RESOLVED = "RESOLVED"
    CLAIMED = "CLAIMED"
    INIT = "INIT"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    INVALID = "INVALID"


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.KILLED, JobStatus.INVALID})
# Held by a worker: these count against the cluster's concurrency limit and need heartbeats.
ACTIVE_STATUSES = frozenset({JobStatus.CLAIMED, JobStatus.INIT, JobStatus.RUNNING})


class Cluster(Base):
    """Where jobs run: an engine type, its connection config, tags jobs select it by, its capacity (concurrent
    jobs, memory)."""

    __tablename__ = "job_clusters"
    __table_args__ = (
        one_of("type", ClusterType),
        one_of("status", ClusterStatus),
    )

    id: Mapped[BigIntPK]
    name: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[Code]
    status: Mapped[Code]
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    max_concurrent_jobs: Mapped[int] = mapped_column(Integer, default=8)
    # Memory its running jobs may hold together (None: not limited), and what a job declaring none is counted for.
    max_memory_mb: Mapped[int | None] = mapped_column(Integer)
    default_job_memory_mb: Mapped[int | None] = mapped_column(Integer)
    # Who may run on it (groups, or user names); empty: anyone holding jobs.submit (docs/security/jobs.md).
    groups: Mapped[list[str]] = mapped_column(JSONType, default=list)
    description: Mapped[LongText | None]
    created_at: Mapped[UTCNow]
    updated_at: Mapped[UTCNow]

    @property
    def implicit_tags(self) -> list[str]:
        """Tags it answers to in criteria without storing them: ``headwater.id:<id>``, ``headwater.name:<name>``."""
        return implicit_tags(self.id, self.name)


class Command(Base):
    """What runs: an executable with default arguments, tags jobs select it by, and the clusters it runs on."""

    __tablename__ = "job_commands"
    __table_args__ = (one_of("status", CommandStatus),)

    id: Mapped[BigIntPK]
    name: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[Code]
    # The executable followed by its default arguments, as an argv list (never a shell string).
    executable: Mapped[list[str]] = mapped_column(JSONType)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Ordered tag sets; a cluster must match one of them (empty: any cluster).
    cluster_criteria: Mapped[list[list[str]]] = mapped_column(JSONType, default=list)
    # Memory its jobs are counted for when the request names none (before the cluster's default, as in Genie).
    memory_mb: Mapped[int | None] = mapped_column(Integer)
    # Who may run it (groups, or user names); empty: anyone holding jobs.submit (docs/security/jobs.md).
    groups: Mapped[list[str]] = mapped_column(JSONType, default=list)
    description: Mapped[LongText | None]
    created_at: Mapped[UTCNow]
    updated_at: Mapped[UTCNow]
    # Read side of the ordered links (written as CommandApplication rows); lists load it with selectinload,
    # job resolution never touches it.
    applications: Mapped[list[Application]] = relationship(
        secondary="job_command_applications", order_by="CommandApplication.position", viewonly=True
    )

    @property
    def implicit_tags(self) -> list[str]:
        """Tags it answers to in criteria without storing them: ``headwater.id:<id>``, ``headwater.name:<name>``."""
        return implicit_tags(self.id, self.name)


class Application(Base):
    """Files and configuration a command needs (Genie's Application): placed in each job's directory."""

    __tablename__ = "job_applications"
    __table_args__ = (one_of("status", ApplicationStatus),)

    id: Mapped[BigIntPK]
    name: Mapped[str] = mapped_column(String(255), unique=True)
    version: Mapped[str | None] = mapped_column(String(255))
    type: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[Code]
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Absolute paths (or file:// URIs) of files or directories copied into the job's directory.
    dependencies: Mapped[list[str]] = mapped_column(JSONType, default=list)
    configs: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Environment set up for the job's process; "{app_dir}" in a value becomes the application's directory.
    environment: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    description: Mapped[LongText | None]
    created_at: Mapped[UTCNow]
    updated_at: Mapped[UTCNow]


class CommandApplication(Base):
    """The ordered list of applications a command needs (an application in use cannot be deleted)."""

    __tablename__ = "job_command_applications"
    __table_args__ = (
        UniqueConstraint("command_id", "application_id"),
        Index("ix_job_command_applications_application_id", "application_id"),
    )

    command_id: Mapped[int] = mapped_column(ForeignKey("job_commands.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("job_applications.id", ondelete="RESTRICT"))


class Job(Base):
    """One submitted job: the request as sent, what it resolved to, and where and how it ran."""

    __tablename__ = "jobs"
    __table_args__ = (
        one_of("status", JobStatus),
        Index("ix_jobs_status_pk", "status", "pk"),
        Index("ix_jobs_user_name", "user_name", "pk"),
        Index("ix_jobs_cluster_status", "cluster_id", "status"),
        Index("ix_jobs_retention", "host", "finished_at"),
        Index("ix_jobs_external_app", "external_manager", "external_id"),
    )

    pk: Mapped[BigIntPK]
    id: Mapped[str] = mapped_column(String(255), unique=True)
    run_uuid: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(255))
    user_name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[Code]
    status_message: Mapped[LongText | None]
    request: Mapped[dict[str, Any]] = mapped_column(JSONType)
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("job_clusters.id", ondelete="SET NULL"))
    command_id: Mapped[int | None] = mapped_column(ForeignKey("job_commands.id", ondelete="SET NULL"))
    cluster_name: Mapped[str | None] = mapped_column(String(255))
    command_name: Mapped[str | None] = mapped_column(String(255))
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    # Memory counted against its cluster's max_memory_mb from resolution until it ends (None: 0).
    memory_mb: Mapped[int | None] = mapped_column(Integer)
    kill_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(255))
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    work_dir: Mapped[LongText | None]
    # Attempts: a job whose worker is lost runs again while attempt < max_attempts.
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    # The claim's fencing token: +1 on every claim and every reap; a worker's writes need the epoch it claimed.
    epoch: Mapped[Count]
    # The application the job runs on a cluster manager (headwater.jobs.drivers), once its supervisor submitted
    # it: the manager's name, the application's id, its state (Headwater's AppState and the manager's own word)
    # and the manager's config, with which the reaper kills it when the job's worker is lost.
    external_manager: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(255))
    external_state: Mapped[str | None] = mapped_column(String(16))
    external_raw_state: Mapped[str | None] = mapped_column(String(64))
    external_config: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    archive_logs: Mapped[bool] = mapped_column(Boolean, default=False)
    archive_path: Mapped[LongText | None]
    # When retention removed the job's directory.
    cleaned_at: Mapped[UTCTime | None]
    # When its worker copied its logs and outputs into job_archived_files (docs/operate/job-hosts.md), and how many
    # files it left out for the per-job cap (0: the archive holds the whole directory but applications/).
    files_archived_at: Mapped[UTCTime | None]
    files_not_archived: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[UTCTime | None]
    created_at: Mapped[UTCNow]
    started_at: Mapped[UTCTime | None]
    finished_at: Mapped[UTCTime | None]
    updated_at: Mapped[UTCNow]


class JobTag(Base):
    """One tag of a job (a row per tag, so jobs can be filtered by tag on both databases)."""

    __tablename__ = "job_tags"
    __table_args__ = (UniqueConstraint("job_pk", "tag"), Index("ix_job_tags_tag", "tag", "job_pk"))

    id: Mapped[BigIntPK]
    job_pk: Mapped[int] = mapped_column(ForeignKey("jobs.pk", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(255))


class JobTransition(Base):
    """One status change of a job, with its time and reason (the job's history)."""

    __tablename__ = "job_transitions"
    __table_args__ = (Index("ix_job_transitions_job_pk", "job_pk", "id"),)

    id: Mapped[BigIntPK]
    job_pk: Mapped[int] = mapped_column(ForeignKey("jobs.pk", ondelete="CASCADE"))
    from_status: Mapped[Code | None]
    to_status: Mapped[Code]
    reason: Mapped[LongText | None]
    at: Mapped[UTCNow]


class JobAttempt(Base):
    """One run of a job's process: where it ran and how it ended (a retried job has several)."""

    __tablename__ = "job_attempts"
    __table_args__ = (UniqueConstraint("job_pk", "attempt"),)

    id: Mapped[BigIntPK]
    job_pk: Mapped[int] = mapped_column(ForeignKey("jobs.pk", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(255))
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    epoch: Mapped[Count]
    exit_code: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[Code | None]
    reason: Mapped[LongText | None]
    started_at: Mapped[UTCNow]
    ended_at: Mapped[UTCTime | None]


class JobAttachment(Base):
    """A file sent with the job's submission, written into its working directory before it starts.

    Kept in the database so a worker on any host can place it; submissions cap their count and size.
    """

    __tablename__ = "job_attachments"
    __table_args__ = (UniqueConstraint("job_pk", "name"),)

    id: Mapped[BigIntPK]
    job_pk: Mapped[int] = mapped_column(ForeignKey("jobs.pk", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInt)
    content: Mapped[bytes] = mapped_column(LargeBinary)


# A listing of the job's directory, or a byte range of one of its files.
FILE_REQUEST_KINDS = ("list", "read")


class JobArchivedFile(Base):
    """A file of a finished job's directory copied into the database, so it stays readable when its worker host
    goes away; its bytes are :class:`JobArchiveChunk` rows."""

    __tablename__ = "job_archived_files"
    __table_args__ = (UniqueConstraint("job_pk", "path"),)

    id: Mapped[BigIntPK]
    job_pk: Mapped[int] = mapped_column(ForeignKey("jobs.pk", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))
    # Uncompressed bytes; a directory is a row of size NULL (listed, holds no chunk).
    size: Mapped[int | None] = mapped_column(BigInt)


class JobArchiveChunk(Base):
    """Up to 1 MiB of an archived file (chunk ``seq`` holds bytes from ``seq`` MiB), zlib-compressed."""

    __tablename__ = "job_archive_chunks"

    file_id: Mapped[int] = mapped_column(
        BigInt, ForeignKey("job_archived_files.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class JobFileRequest(Base):
    """A request from an API process to the worker on ``host`` for a listing or a byte range of a job's directory,
    and that worker's answer (docs/concepts/jobs.md#where-a-jobs-files-live). Deleted by the asker once read;
    rows an asker left behind are swept after a few minutes."""

    __tablename__ = "job_file_requests"
    __table_args__ = (
        one_of("kind", FILE_REQUEST_KINDS),
        Index("ix_job_file_requests_host", "host", "answered_at"),
    )

    id: Mapped[BigIntPK]
    job_pk: Mapped[int] = mapped_column(ForeignKey("jobs.pk", ondelete="CASCADE"))
    host: Mapped[str] = mapped_column(String(255))
    kind: Mapped[Code]
    path: Mapped[LongText | None]
    offset: Mapped[int] = mapped_column(BigInt, default=0)
    length: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[UTCNow]
    answered_at: Mapped[UTCTime | None]
    # The answer: bytes (a range, or the listing as JSON), the file's whole size, or an error status and message.
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    size: Mapped[int | None] = mapped_column(BigInt)
    error_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[LongText | None]
