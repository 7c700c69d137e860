"""The database queue of jobs: claiming (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), heartbeats, recording how
attempts end. Reaping jobs whose worker stopped heartbeating is :mod:`headwater.jobs.reaper`.

Every claim carries an epoch (a fencing token, docs/adr/0001-job-fencing.md): a worker's later writes for a job
are conditioned on (worker, epoch), and lease times are the database's clock, never a worker's.

Functions take ``session`` keyword-only and flush only; the worker's loop owns the transactions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, literal, select, tuple_, type_coerce, update
from sqlalchemy.orm import Session

from headwater.db import UTCDateTime, utcnow
from headwater.jobs.models import ACTIVE_STATUSES, Cluster, Job, JobAttempt, JobStatus, JobTransition
from headwater.jobs.service import transition

__all__ = [
    "LostJob",
    "claim_jobs",
    "db_clock",
    "db_clock_minus",
    "end_attempts",
    "heartbeat",
    "hold_fenced",
    "reap_lost_jobs",
]


def db_clock(session: Session) -> ColumnElement[dt.datetime]:
    """The database's current time as an SQL expression (``now()``; SQLite's own clock in UTC, to the microsecond
    format SQLAlchemy stores), so every lease is judged by one clock, not by each worker's."""
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(func.now(), UTCDateTime)
    # %f is "SS.SSS": three more digits make the microseconds SQLAlchemy writes and reads on SQLite.
    return type_coerce(func.strftime("%Y-%m-%d %H:%M:%f000", "now"), UTCDateTime)


def db_clock_minus(session: Session, seconds: float) -> ColumnElement[dt.datetime]:
    """The database's time ``seconds`` ago, as an SQL expression."""
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(func.now() - literal(dt.timedelta(seconds=seconds)), UTCDateTime)
    return type_coerce(func.strftime("%Y-%m-%d %H:%M:%f000", "now", f"-{seconds:.6f} seconds"), UTCDateTime)


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
    """Reap held jobs whose worker has not heartbeated for ``timeout_seconds`` (see :mod:`headwater.jobs.reaper`)."""
    from headwater.jobs.reaper import reap_lost_jobs as reap  # the reaper builds on this module

    return reap(session, timeout_seconds=timeout_seconds, now=now)
