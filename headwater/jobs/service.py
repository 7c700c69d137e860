"""Job-execution logic: cluster and command CRUD, submission and resolution, reading jobs and kill requests
(the queue is :mod:`headwater.jobs.dispatch`, job directories :mod:`headwater.jobs.workspace`). Functions take
``session`` keyword-only and flush only.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session, selectinload

from headwater.db import utcnow
from headwater.errors import Conflict, InvalidInput, NotFound
from headwater.jobs import access, applications
from headwater.jobs.models import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    Cluster,
    Command,
    Job,
    JobAttachment,
    JobAttempt,
    JobStatus,
    JobTag,
    JobTransition,
)
from headwater.jobs.resolution import resolve as resolution_of
from headwater.jobs.schemas import (
    ClusterCreate,
    ClusterUpdate,
    CommandCreate,
    CommandUpdate,
    JobOut,
    JobSubmit,
)
from headwater.jobs.selectors import DEFAULT_SELECTOR
from headwater.orm import get_by_name
from headwater.pagination import PageResult, SortKey, paginate

__all__ = [
    "JOBS_CHANNEL",
    "JobFilters",
    "attempts_of",
    "create_cluster",
    "create_command",
    "delete_cluster",
    "delete_command",
    "get_cluster",
    "get_command",
    "get_job",
    "job_out",
    "list_clusters",
    "list_commands",
    "list_jobs",
    "request_kill",
    "submit_job",
    "transition",
    "transitions_of",
    "update_cluster",
    "update_command",
]

RUN_ID_NAMESPACE = uuid.UUID("6f1f6a52-3d0e-4a53-9f0e-6b5c1d2e7a10")
# PostgreSQL LISTEN/NOTIFY channel: a queued job or a freed slot wakes idle workers at once.
JOBS_CHANNEL = "headwater_jobs"

Named = TypeVar("Named", Cluster, Command)  # the two resources addressed by a unique name

CLUSTER_SORTS = {"name": SortKey(Cluster.name, Cluster.id), "id": SortKey(Cluster.id, Cluster.id, kind="int")}
COMMAND_SORTS = {"name": SortKey(Command.name, Command.id), "id": SortKey(Command.id, Command.id, kind="int")}
JOB_SORTS = {
    "created": SortKey(Job.created_at, Job.pk, kind="datetime"),
    "name": SortKey(Job.name, Job.pk),
}


# ------------------------------------------------------------------------------ clusters, commands


def _create_named(session: Session, model: type[Named], data: ClusterCreate | CommandCreate, label: str) -> Named:
    if session.scalar(select(model.id).where(model.name == data.name)) is not None:
        raise Conflict(f"a {label} named {data.name!r} already exists", detail={"field": "name"})
    now = utcnow()
    row = model(**data.model_dump(mode="json", exclude={"applications"}), created_at=now, updated_at=now)
    session.add(row)
    _flush_unique(session, f"a {label} named {data.name!r} already exists")
    return row


def _update_named(
    session: Session, model: type[Named], name: str, data: ClusterUpdate | CommandUpdate, label: str
) -> Named:
    row = get_by_name(session, model, name, label=label)
    for key, value in data.model_dump(mode="json", exclude_unset=True, exclude={"applications"}).items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    session.flush()
    return row


def _delete_named(
    session: Session, model: type[Named], name: str, label: str, job_column: InstrumentedAttribute[int | None]
) -> None:
    row = get_by_name(session, model, name, label=label)
    _refuse_if_busy(session, job_column == row.id, f"{label} {name!r}")
    session.delete(row)
    session.flush()


def create_cluster(session: Session, *, data: ClusterCreate) -> Cluster:
    """Register a cluster; a taken name is a Conflict."""
    return _check_memory(_create_named(session, Cluster, data, "cluster"))


def get_cluster(session: Session, *, name: str) -> Cluster:
    """The cluster called ``name``."""
    return get_by_name(session, Cluster, name, label="cluster")


def update_cluster(session: Session, *, name: str, data: ClusterUpdate) -> Cluster:
    """Change the given fields of a cluster."""
    return _check_memory(_update_named(session, Cluster, name, data, "cluster"))


def _check_memory(cluster: Cluster) -> Cluster:
    maximum, default = cluster.max_memory_mb, cluster.default_job_memory_mb
    if maximum is not None and default is not None and default > maximum:
        raise InvalidInput(
            f"default_job_memory_mb {default} exceeds the cluster's max_memory_mb {maximum}: its jobs could "
            "never start",
            detail={"field": "default_job_memory_mb"},
        )
    return cluster


def delete_cluster(session: Session, *, name: str) -> None:
    """Remove a cluster; refused while jobs run on it."""
    _delete_named(session, Cluster, name, "cluster", Job.cluster_id)


def list_clusters(session: Session, *, sort: str, cursor: str | None, limit: int) -> PageResult[Cluster]:
    """One page of clusters."""
    return paginate(session, select(Cluster), sorts=CLUSTER_SORTS, sort=sort, cursor=cursor, limit=limit)


def create_command(session: Session, *, data: CommandCreate) -> Command:
    """Register a command and the applications it needs; a taken name is a Conflict."""
    command = _create_named(session, Command, data, "command")
    applications.set_command_applications(session, command=command, names=data.applications)
    return command


def get_command(session: Session, *, name: str) -> Command:
    """The command called ``name``."""
    return get_by_name(session, Command, name, label="command")


def update_command(session: Session, *, name: str, data: CommandUpdate) -> Command:
    """Change the given fields of a command (``applications`` replaces its whole ordered list)."""
    command = _update_named(session, Command, name, data, "command")
    if "applications" in data.model_fields_set:
        applications.set_command_applications(session, command=command, names=data.model_dump()["applications"])
    return command


def delete_command(session: Session, *, name: str) -> None:
    """Remove a command; refused while jobs run it."""
    _delete_named(session, Command, name, "command", Job.command_id)


def list_commands(session: Session, *, sort: str, cursor: str | None, limit: int) -> PageResult[Command]:
    """One page of commands."""
    stmt = select(Command).options(selectinload(Command.applications))
    return paginate(session, stmt, sorts=COMMAND_SORTS, sort=sort, cursor=cursor, limit=limit)


def _refuse_if_busy(session: Session, condition: Any, what: str) -> None:
    busy = session.scalar(
        select(func.count()).select_from(Job).where(condition, Job.status.in_([s.value for s in ACTIVE_STATUSES]))
    )
    if busy:
        raise Conflict(f"{what} has {busy} job(s) running; wait for them or kill them first")


def _flush_unique(session: Session, message: str) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(message) from exc


# ------------------------------------------------------------------------------ submission


def transition(
    job: Job, to: JobStatus, reason: str | None, *, session: Session, now: dt.datetime | None = None
) -> None:
    """Move ``job`` to ``to`` and record the change with its time and reason."""
    now = now or utcnow()
    session.add(JobTransition(job_pk=job.pk, from_status=job.status, to_status=to.value, reason=reason, at=now))
    job.status = to.value
    job.status_message = reason
    job.updated_at = now
    if to in FINAL_STATUSES:
        job.finished_at = now


def _run_uuid(job_id: str) -> str:
    try:
        return str(uuid.UUID(job_id))
    except ValueError:
        return str(uuid.uuid5(RUN_ID_NAMESPACE, job_id))


def submit_job(
    session: Session,
    *,
    data: JobSubmit,
    submitter: access.Submitter,
    attachments: Sequence[tuple[str, bytes]] = (),
    selector: str = DEFAULT_SELECTOR,
) -> Job:
    """Accept a job of ``submitter`` and resolve it to a cluster and command at once (RESOLVED, or INVALID saying
    why); Forbidden when only clusters or commands closed to the submitter match, InvalidInput when its memory
    exceeds every cluster that would run it, TooManyRequests at the user's active-job limit. ``selector``
    (HEADWATER_JOBS_CLUSTER_SELECTOR) chooses among several matching clusters.

    ``attachments`` (name, content) are stored with it and written into its working directory before it runs.
    """
    _check_attachment_names([name for name, _ in attachments])
    data = data.model_copy(update={"user": submitter.user})
    if data.applications:
        applications.check_names(session, names=data.applications)
    job_id = data.id or str(uuid.uuid4())
    if data.id is not None and session.scalar(select(Job.pk).where(Job.id == job_id)) is not None:
        raise Conflict(f"a job with id {job_id!r} already exists", detail={"field": "id"})
    resolution = resolution_of(session, data, submitter, selector=selector)
    if not isinstance(resolution, str):  # an INVALID job ends at once, so it takes no slot
        access.hold_active_slot(session, submitter)
    now = utcnow()
    job = Job(
        id=job_id,
        run_uuid=_run_uuid(job_id),
        name=data.name,
        user_name=submitter.user,
        version=data.version,
        status=JobStatus.ACCEPTED.value,
        request=data.model_dump(mode="json"),
        timeout_seconds=data.timeout,
        kill_requested=False,
        attempt=1,
        max_attempts=data.max_attempts,
        archive_logs=data.archive_logs,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    try:
        session.flush()  # a concurrent submission of the same id fails here; the edge rolls back
    except IntegrityError as exc:
        raise Conflict(f"a job with id {job_id!r} already exists", detail={"field": "id"}) from exc
    session.add_all(JobTag(job_pk=job.pk, tag=tag) for tag in dict.fromkeys(data.tags))
    session.add_all(
        JobAttachment(job_pk=job.pk, name=name, size=len(content), content=content) for name, content in attachments
    )
    session.add(
        JobTransition(job_pk=job.pk, from_status=None, to_status=JobStatus.ACCEPTED.value, reason="submitted", at=now)
    )
    if isinstance(resolution, str):
        transition(job, JobStatus.INVALID, resolution, session=session, now=now)
    else:
        job.cluster_id, job.cluster_name = resolution.cluster.id, resolution.cluster.name
        job.command_id, job.command_name = resolution.command.id, resolution.command.name
        job.memory_mb = resolution.memory_mb
        transition(job, JobStatus.RESOLVED, resolution.why, session=session, now=now)
        notify_workers(session)
    session.flush()
    return job


# Names a job's own files use in its directory; an attachment may not take them.
RESERVED_NAMES = frozenset({"stdout", "stderr", "applications", "attempts"})


def _check_attachment_names(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if (
            not name
            or len(name) > 255
            or name in {".", ".."}
            or name.startswith(".")
            or any(ch in name for ch in "/\\\x00")
            or any(ord(ch) < 32 for ch in name)
        ):
            raise InvalidInput(
                f"attachment file name {name!r} must be a plain file name (no path, no leading '.')",
                detail={"field": "attachment"},
            )
        if name in RESERVED_NAMES:
            raise InvalidInput(
                f"attachment file name {name!r} is reserved for the job's own files; rename it",
                detail={"field": "attachment"},
            )
        if name in seen:
            raise InvalidInput(f"two attachments are named {name!r}", detail={"field": "attachment"})
        seen.add(name)


def notify_workers(session: Session) -> None:
    """Wake idle workers (PostgreSQL NOTIFY, delivered at commit; elsewhere workers poll)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {JOBS_CHANNEL}"))


# ------------------------------------------------------------------------------ reading jobs


@dataclass(frozen=True)
class JobFilters:
    """Filters of the job list."""

    user: str | None = None
    status: JobStatus | None = None
    tag: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None


def get_job(session: Session, *, job_id: str) -> Job:
    """The job with public id ``job_id``."""
    job = session.scalar(select(Job).where(Job.id == job_id))
    if job is None:
        raise NotFound(f"no job with id {job_id!r}", detail={"field": "id"})
    return job


def list_jobs(session: Session, *, filters: JobFilters, sort: str, cursor: str | None, limit: int) -> PageResult[Job]:
    """One page of jobs matching ``filters``."""
    stmt = select(Job)
    if filters.user:
        stmt = stmt.where(Job.user_name == filters.user)
    if filters.status:
        stmt = stmt.where(Job.status == filters.status.value)
    if filters.tag:
        stmt = stmt.where(Job.pk.in_(select(JobTag.job_pk).where(JobTag.tag == filters.tag)))
    if filters.created_after:
        stmt = stmt.where(Job.created_at >= filters.created_after)
    if filters.created_before:
        stmt = stmt.where(Job.created_at < filters.created_before)
    return paginate(session, stmt, sorts=JOB_SORTS, sort=sort, cursor=cursor, limit=limit)


def job_out(session: Session, jobs: list[Job]) -> list[JobOut]:
    """Response models of ``jobs`` (their tags read with one query)."""
    tags: dict[int, list[str]] = {job.pk: [] for job in jobs}
    if jobs:
        for pk, tag in session.execute(
            select(JobTag.job_pk, JobTag.tag).where(JobTag.job_pk.in_(list(tags))).order_by(JobTag.id)
        ):
            tags[pk].append(tag)
    return [
        JobOut(
            id=job.id,
            run_id=job.run_uuid,
            name=job.name,
            user=job.user_name,
            version=job.version,
            tags=tags[job.pk],
            status=JobStatus(job.status),
            status_message=job.status_message,
            cluster=job.cluster_name,
            command=job.command_name,
            memory_mb=job.memory_mb,
            exit_code=job.exit_code,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )
        for job in jobs
    ]


def transitions_of(session: Session, *, job: Job) -> list[JobTransition]:
    """The job's history, oldest first (a job has at most a handful of transitions)."""
    return list(
        session.scalars(
            select(JobTransition).where(JobTransition.job_pk == job.pk).order_by(JobTransition.id).limit(100)
        )
    )


def attempts_of(session: Session, *, job: Job) -> list[JobAttempt]:
    """The job's runs, first first (at most max_attempts, itself at most 10)."""
    return list(
        session.scalars(select(JobAttempt).where(JobAttempt.job_pk == job.pk).order_by(JobAttempt.attempt).limit(100))
    )


def request_kill(session: Session, *, job_id: str) -> Job:
    """Kill a job: at once when no process runs yet, else flag it for its worker to kill the process group."""
    job = get_job(session, job_id=job_id)
    status = JobStatus(job.status)
    if status in FINAL_STATUSES:
        return job
    if status in (JobStatus.ACCEPTED, JobStatus.RESOLVED):
        transition(job, JobStatus.KILLED, "killed by request before it started", session=session)
    else:
        job.kill_requested = True
        job.updated_at = utcnow()
    session.flush()
    return job
