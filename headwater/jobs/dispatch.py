"""The database queue of jobs, and every write a worker makes to it: claiming (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), heartbeats, recording starts and how attempts end. Reaping jobs whose worker stopped heartbeating is
:mod:`headwater.jobs.reaper`, which builds on this module.

Every claim carries an epoch (a fencing token, docs/adr/0001-job-fencing.md): a worker's later writes for a job
are conditioned on (worker, epoch), and lease times are the database's clock, never a worker's.

Functions take ``session`` keyword-only and flush only; the worker's loop owns the transactions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.orm import Session

from headwater.db import utcnow
from headwater.jobs.models import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    Cluster,
    Command,
    Job,
    JobAttempt,
    JobStatus,
    JobTransition,
)
from headwater.jobs.service import notify_workers, transition
from headwater.leases import db_clock

__all__ = [
    "LostJob",
    "claim_jobs",
    "definitions_of",
    "end_attempts",
    "end_jobs",
    "fail_start",
    "heartbeat",
    "held_jobs",
    "hold_fenced",
    "is_queued",
    "kill_requested",
    "ping",
    "record_start",
]


# Clusters one claim looks at (each with up to ``slots`` of its oldest queued jobs), oldest job first.
CLUSTERS_PER_CLAIM = 16


def claim_jobs(session: Session, *, worker_id: str, slots: int, now: dt.datetime | None = None) -> list[Job]:
    """Claim up to ``slots`` RESOLVED jobs for ``worker_id``, oldest first, within each cluster's capacity: its
    ``max_concurrent_jobs`` and, when it declares one, its ``max_memory_mb`` (a job that does not fit waits, and
    so do the later jobs of its cluster, so a large job is not passed over for ever by small ones).

    Candidates are the oldest ``slots`` queued jobs of each cluster, up to CLUSTERS_PER_CLAIM clusters. On
    PostgreSQL they are locked with ``FOR UPDATE SKIP LOCKED`` and each cluster row is locked while
    its running jobs and their memory are counted; on SQLite the transaction already holds the write lock (BEGIN
    IMMEDIATE). Either way the claim itself is one conditional UPDATE, so a job is never claimed twice. The
    statements are per batch and per cluster, not per job: claiming is on every job's path.
    """
    if slots <= 0:
        return []
    now = now or utcnow()
    postgres = session.get_bind().dialect.name == "postgresql"
    # The head of each cluster's queue, not the oldest jobs overall: a full cluster's backlog would otherwise fill
    # the batch and leave the jobs of idle clusters behind it unclaimed.
    # Two statements, the ranking unlocked: PostgreSQL plans a locking read joined to a window subquery as a
    # nested loop when its statistics lag (1.2 s at 5,000 queued jobs, measured).
    queue = Job.status == JobStatus.RESOLVED.value
    place = func.row_number().over(partition_by=Job.cluster_id, order_by=Job.pk).label("place")
    ranked = select(Job.pk, place).where(queue).subquery()
    heads = list(
        session.scalars(
            select(ranked.c.pk).where(ranked.c.place <= slots).order_by(ranked.c.pk).limit(slots * CLUSTERS_PER_CLAIM)
        )
    )
    if not heads:
        return []
    stmt = select(Job.pk, Job.cluster_id, Job.memory_mb).where(queue, Job.pk.in_(heads)).order_by(Job.pk)
    if postgres:
        stmt = stmt.with_for_update(skip_locked=True)
    by_cluster: dict[int, list[tuple[int, int]]] = {}
    orphans: list[int] = []
    for pk, cluster_id, memory in session.execute(stmt):
        if cluster_id is None:
            orphans.append(pk)
        else:
            by_cluster.setdefault(cluster_id, []).append((pk, memory or 0))
    chosen: list[int] = []
    too_big: dict[int, str] = {}
    for cluster_id, queued in by_cluster.items():
        if len(chosen) >= slots:
            break
        capacity_stmt = select(Cluster.name, Cluster.max_concurrent_jobs, Cluster.max_memory_mb)
        capacity_stmt = capacity_stmt.where(Cluster.id == cluster_id)
        capacity = session.execute(capacity_stmt.with_for_update() if postgres else capacity_stmt).one_or_none()
        if capacity is None:
            continue
        name, limit, max_memory = capacity
        running, committed = session.execute(
            select(func.count(), func.coalesce(func.sum(Job.memory_mb), 0)).where(
                Job.cluster_id == cluster_id, Job.status.in_([s.value for s in ACTIVE_STATUSES])
            )
        ).one()
        used = int(committed or 0)
        for pk, memory in queued:
            if len(chosen) >= slots or running >= limit:
                break
            if max_memory is not None and memory > max_memory:  # the cluster shrank after it was resolved
                too_big[pk] = f"it needs {memory} MB; cluster {name!r} now holds at most {max_memory} MB"
                continue
            if max_memory is not None and used + memory > max_memory:
                break  # it waits for memory, and the cluster's later jobs wait behind it
            chosen.append(pk)
            running, used = running + 1, used + memory
    failed = {pk: "its cluster was deleted before it started" for pk in orphans} | too_big
    for job in session.scalars(select(Job).where(Job.pk.in_(list(failed)))) if failed else ():
        transition(job, JobStatus.FAILED, failed[job.pk], session=session, now=now)
    if not chosen:
        session.flush()
        return []
    claimed = list(
        session.scalars(
            update(Job)
            .where(Job.pk.in_(chosen), Job.status == JobStatus.RESOLVED.value)
            .values(
                status=JobStatus.CLAIMED.value,
                worker_id=worker_id,
                epoch=Job.epoch + 1,  # a new fencing token: the previous owner's writes are refused from here on
                heartbeat_at=db_clock(session),
                updated_at=now,
            )
            .returning(Job.pk),
            execution_options={"synchronize_session": False},
        )
    )
    reason = f"claimed by worker {worker_id}"
    session.add_all(
        JobTransition(job_pk=pk, from_status=JobStatus.RESOLVED.value, to_status=JobStatus.CLAIMED.value,
                      reason=reason, at=now)
        for pk in claimed
    )  # fmt: skip
    jobs = list(
        session.scalars(
            select(Job).where(Job.pk.in_(claimed)).order_by(Job.pk).execution_options(populate_existing=True)
        )
    )
    session.flush()
    return jobs


def heartbeat(session: Session, *, worker_id: str, epochs: dict[int, int]) -> set[int]:
    """Renew ``worker_id``'s lease on the jobs it claimed at these epochs (pk -> epoch), by the database's clock;
    the pks still held. A job missing from the answer was reaped: its process must be killed, not recorded."""
    return hold_fenced(session, worker_id=worker_id, epochs=epochs)


def hold_fenced(session: Session, *, worker_id: str, epochs: dict[int, int]) -> set[int]:
    """Renew the lease of, and lock until the transaction ends, each job still held by ``worker_id`` at its epoch;
    the pks held. Every write a worker makes for a job goes through this first, in the same transaction, so a
    reaper (which bumps the epoch) and a late owner never both write: the loser's condition matches 0 rows."""
    if not epochs:
        return set()
    return set(
        session.scalars(
            update(Job)
            .where(
                tuple_(Job.pk, Job.epoch).in_(list(epochs.items())),
                Job.worker_id == worker_id,
                Job.status.in_([s.value for s in ACTIVE_STATUSES]),
            )
            .values(heartbeat_at=db_clock(session))
            .returning(Job.pk),
            execution_options={"synchronize_session": False},
        )
    )


@dataclass(frozen=True)
class LostJob:
    """A job whose worker stopped heartbeating: what became of it, and where its process may still run."""

    id: str
    host: str | None
    pid: int | None
    requeued: bool
    # (manager, application id, config) of the application it ran on a cluster manager, unless recorded ended
    app: tuple[str, str, dict[str, Any]] | None = None


def end_attempts(
    session: Session, *, ends: Sequence[tuple[Job, JobStatus, str | None]], now: dt.datetime | None = None
) -> None:
    """Record how each job's current attempt ended (one read for all of them)."""
    if not ends:
        return
    now = now or utcnow()
    open_attempts = {
        (a.job_pk, a.attempt): a
        for a in session.scalars(
            select(JobAttempt).where(
                JobAttempt.job_pk.in_([job.pk for job, _, _ in ends]), JobAttempt.ended_at.is_(None)
            )
        )
    }
    for job, outcome, reason in ends:
        attempt = open_attempts.get((job.pk, job.attempt))
        if attempt is not None:
            attempt.outcome, attempt.reason, attempt.exit_code, attempt.ended_at = (
                outcome.value,
                reason,
                job.exit_code,
                now,
            )


def end_jobs(session: Session, *, ends: Sequence[tuple[Job, JobStatus, str]], now: dt.datetime) -> None:
    """Record how each job ended (its attempt and its status) and free its cluster slot for waiting workers."""
    end_attempts(session, ends=ends, now=now)
    for job, status, reason in ends:
        transition(job, status, reason, session=session, now=now)
    notify_workers(session)  # a cluster slot is free


def record_start(
    session: Session, *, job: Job, attempt: int, worker_id: str, host: str, pid: int, now: dt.datetime
) -> None:
    """Record that the claimed job's process ``pid`` started on ``host``: its attempt row and RUNNING."""
    job.pid, job.started_at = pid, now
    session.add(JobAttempt(job_pk=job.pk, attempt=attempt, epoch=job.epoch, worker_id=worker_id, host=host, pid=pid,
                           started_at=now))  # fmt: skip
    reason = f"pid {pid} on {host}"
    if job.max_attempts > 1:
        reason += f" (attempt {attempt} of {job.max_attempts})"
    transition(job, JobStatus.RUNNING, reason, session=session, now=now)


def fail_start(session: Session, *, job: Job, reason: str, now: dt.datetime) -> None:
    """Record FAILED a claimed job whose process could not start (unless it already ended)."""
    if job.status not in {s.value for s in FINAL_STATUSES}:
        transition(job, JobStatus.FAILED, reason, session=session, now=now)


def held_jobs(session: Session, *, pks: Iterable[int]) -> dict[int, Job]:
    """The jobs of these pks (the ones :func:`hold_fenced` answered), by pk."""
    return {job.pk: job for job in session.scalars(select(Job).where(Job.pk.in_(list(pks))))}


def definitions_of(session: Session, jobs: Iterable[Job]) -> list[Cluster | Command]:
    """The clusters and commands of ``jobs``, read at once; keep the list while recording their lineage, which then
    finds them in the session's identity map instead of reading each again."""
    jobs = list(jobs)
    clusters = session.scalars(select(Cluster).where(Cluster.id.in_({job.cluster_id for job in jobs})))
    commands = session.scalars(select(Command).where(Command.id.in_({job.command_id for job in jobs})))
    return [*clusters, *commands]


def kill_requested(session: Session, *, pks: Iterable[int]) -> set[int]:
    """Of these jobs, the ones someone asked to kill."""
    return set(session.scalars(select(Job.pk).where(Job.pk.in_(list(pks)), Job.kill_requested.is_(True))))


def is_queued(session: Session) -> bool:
    """Whether any job waits to be claimed."""
    return session.scalar(select(Job.pk).where(Job.status == JobStatus.RESOLVED.value).limit(1)) is not None


def ping(session: Session) -> None:
    """Reach the database (a worker with nothing to renew shows this way that it is back)."""
    session.execute(select(1))
