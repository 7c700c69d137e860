"""The database queue of jobs: claiming (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), heartbeats, recording how
attempts end, and reaping jobs whose worker stopped heartbeating (re-queued when they asked for retries).

Functions take ``session`` keyword-only and flush only; the worker's loop owns the transactions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from headwater.db import utcnow
from headwater.jobs.models import ACTIVE_STATUSES, Cluster, Job, JobAttempt, JobStatus, JobTransition
from headwater.jobs.service import notify_workers, transition

__all__ = ["LostJob", "claim_jobs", "end_attempts", "heartbeat", "reap_lost_jobs"]


def claim_jobs(session: Session, *, worker_id: str, slots: int, now: dt.datetime | None = None) -> list[Job]:
    """Claim up to ``slots`` RESOLVED jobs for ``worker_id``, oldest first, within each cluster's limit.

    On PostgreSQL candidates are locked with ``FOR UPDATE SKIP LOCKED`` and each cluster row is locked while
    its running jobs are counted; on SQLite the transaction already holds the write lock (BEGIN IMMEDIATE).
    Either way the claim itself is one conditional UPDATE, so a job is never claimed twice. The statements
    are per batch and per cluster, not per job: claiming is on every job's path.
    """
    if slots <= 0:
        return []
    now = now or utcnow()
    postgres = session.get_bind().dialect.name == "postgresql"
    stmt = select(Job.pk, Job.cluster_id).where(Job.status == JobStatus.RESOLVED.value).order_by(Job.pk)
    stmt = stmt.limit(slots * 4)
    if postgres:
        stmt = stmt.with_for_update(skip_locked=True)
    by_cluster: dict[int, list[int]] = {}
    orphans: list[int] = []
    for pk, cluster_id in session.execute(stmt):
        if cluster_id is None:
            orphans.append(pk)
        else:
            by_cluster.setdefault(cluster_id, []).append(pk)
    chosen: list[int] = []
    for cluster_id, pks in by_cluster.items():
        if len(chosen) >= slots:
            break
        limit_stmt = select(Cluster.max_concurrent_jobs).where(Cluster.id == cluster_id)
        limit = session.scalar(limit_stmt.with_for_update() if postgres else limit_stmt)
        if limit is None:
            continue
        running = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.cluster_id == cluster_id, Job.status.in_([s.value for s in ACTIVE_STATUSES]))
        )
        room = min(limit - (running or 0), slots - len(chosen))
        chosen += pks[: max(room, 0)]
    for job in session.scalars(select(Job).where(Job.pk.in_(orphans))) if orphans else ():
        transition(job, JobStatus.FAILED, "its cluster was deleted before it started", session=session, now=now)
    if not chosen:
        session.flush()
        return []
    claimed = list(
        session.scalars(
            update(Job)
            .where(Job.pk.in_(chosen), Job.status == JobStatus.RESOLVED.value)
            .values(status=JobStatus.CLAIMED.value, worker_id=worker_id, heartbeat_at=now, updated_at=now)
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


def heartbeat(session: Session, *, worker_id: str, job_pks: list[int], now: dt.datetime | None = None) -> None:
    """Record that ``worker_id`` still holds these jobs."""
    if job_pks:
        session.execute(
            update(Job)
            .where(Job.pk.in_(job_pks), Job.worker_id == worker_id)
            .values(heartbeat_at=now or utcnow())
            .execution_options(synchronize_session=False)
        )


@dataclass(frozen=True)
class LostJob:
    """A job whose worker stopped heartbeating: what became of it, and where its process may still run."""

    id: str
    host: str | None
    pid: int | None
    requeued: bool


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


def reap_lost_jobs(session: Session, *, timeout_seconds: float, now: dt.datetime | None = None) -> list[LostJob]:
    """Deal with held jobs whose worker has not heartbeated for ``timeout_seconds``.

    A job with attempts left is re-queued (RESOLVED, attempt + 1); any other is FAILED "worker lost"
    (KILLED when a kill was already asked for).
    """
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=timeout_seconds)
    stmt = (
        select(Job)
        .where(Job.status.in_([s.value for s in ACTIVE_STATUSES]), Job.heartbeat_at < cutoff)
        .order_by(Job.pk)
        .limit(100)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    jobs = list(session.scalars(stmt))
    if not jobs:
        return []
    end_attempts(
        session,
        ends=[(job, JobStatus.KILLED if job.kill_requested else JobStatus.FAILED, "worker lost") for job in jobs],
        now=now,
    )
    lost: list[LostJob] = []
    for job in jobs:
        lost.append(LostJob(id=job.id, host=job.host, pid=job.pid, requeued=False))
        if job.kill_requested:
            transition(job, JobStatus.KILLED, "worker lost while the job was being killed", session=session, now=now)
        elif job.attempt < job.max_attempts:
            job.attempt += 1
            job.worker_id = job.pid = job.heartbeat_at = job.exit_code = None
            reason = f"worker lost; re-queued for attempt {job.attempt} of {job.max_attempts}"
            transition(job, JobStatus.RESOLVED, reason, session=session, now=now)
            lost[-1] = LostJob(id=job.id, host=job.host, pid=lost[-1].pid, requeued=True)
        else:
            transition(job, JobStatus.FAILED, "worker lost", session=session, now=now)
    if any(job.requeued for job in lost):
        notify_workers(session)
    session.flush()
    return lost
