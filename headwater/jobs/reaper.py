"""Reaping jobs whose worker stopped heartbeating, judged by the database's clock (docs/adr/0001-job-fencing.md).

A job is lost when its lease (``heartbeat_at``, written with the database's ``now()``) is older than the heartbeat
timeout by the database's clock. Taking it bumps its epoch in the same statement that checks the lease again, so
its old owner's later writes match no row, and the old owner kills its copy. A lost job whose process already ended
(its exit status is in its directory, when this host can read that directory) is recorded from that status;
any other is re-queued when it has attempts left, else FAILED "worker lost" (KILLED when a kill was asked for).

Workers reap in their loop; the server also runs :class:`ReaperThread`, so lost jobs end with no worker alive.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import socket
from pathlib import Path

from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session, sessionmaker

from headwater.db import session_scope, utcnow
from headwater.egress import EgressPolicy
from headwater.jobs.cluster_apps import app_of, kill_apps
from headwater.jobs.dispatch import LostJob, end_attempts
from headwater.jobs.exit_status import read_exit_status
from headwater.jobs.models import ACTIVE_STATUSES, Job, JobStatus
from headwater.jobs.processes import kill_group, runs_job
from headwater.jobs.run_lineage import OUTCOMES, Outcome, record_run_lineage
from headwater.jobs.service import notify_workers, transition
from headwater.leases import renewed_before
from headwater.loops import LoopService

__all__ = ["ReaperThread", "kill_orphans", "reap_lost_jobs"]

log = logging.getLogger("headwater.jobs.reaper")


def reap_lost_jobs(
    session: Session,
    *,
    timeout_seconds: float,
    now: dt.datetime | None = None,
    host: str | None = None,
    shared_work_dirs: bool = False,
) -> list[LostJob]:
    """Take the held jobs whose lease expired ``timeout_seconds`` ago by the database's clock (at most 100).

    ``host`` is where this runs: a lost job's directory is read for its exit status when it was on this host, or
    on any host when ``shared_work_dirs``.
    """
    now = now or utcnow()
    active = Job.status.in_([s.value for s in ACTIVE_STATUSES])
    expired = renewed_before(session, Job.heartbeat_at, timeout_seconds)
    stmt = select(Job.pk, Job.epoch).where(active, expired).order_by(Job.pk).limit(100)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    seen = {pk: epoch for pk, epoch in session.execute(stmt)}
    if not seen:
        return []
    # The epoch moves on in the statement that judges the lease, so a heartbeat that got in first wins.
    taken = list(
        session.scalars(
            update(Job)
            .where(tuple_(Job.pk, Job.epoch).in_(list(seen.items())), active, expired)
            .values(epoch=Job.epoch + 1, updated_at=now)
            .returning(Job.pk),
            execution_options={"synchronize_session": False},
        )
    )
    if not taken:
        return []
    jobs = list(
        session.scalars(select(Job).where(Job.pk.in_(taken)).order_by(Job.pk).execution_options(populate_existing=True))
    )
    exits = {job.pk: _exit_status(job, host=host, shared_work_dirs=shared_work_dirs) for job in jobs}
    ends: list[tuple[Job, JobStatus, str]] = []
    for job in jobs:
        code = exits[job.pk]
        if code is not None:
            job.exit_code = code
            if job.kill_requested:
                ends.append((job, JobStatus.KILLED, f"killed by request; exit code {code}"))
            elif code == 0:
                ends.append((job, JobStatus.SUCCEEDED, "exit code 0"))
            else:
                ends.append((job, JobStatus.FAILED, f"exit code {code}"))
        else:
            ends.append((job, JobStatus.KILLED if job.kill_requested else JobStatus.FAILED, "worker lost"))
    end_attempts(session, ends=ends, now=now)
    lost: list[LostJob] = []
    for job, outcome, reason in ends:
        requeued = False
        app = app_of(job)  # whatever became of the job, its application must not run on unwatched
        if exits[job.pk] is not None:
            note = f"{reason} (recorded from its exit status: its worker was lost)"
            note = _lineage_of(session, job, OUTCOMES[outcome], note) or note
            transition(job, outcome, note, session=session, now=now)
        elif job.kill_requested:
            note = "worker lost while the job was being killed"
            transition(
                job, JobStatus.KILLED, _lineage_of(session, job, "ABORT", note) or note, session=session, now=now
            )
        elif job.attempt < job.max_attempts:
            pid = job.pid
            job.attempt += 1
            job.worker_id = job.pid = job.heartbeat_at = job.exit_code = None
            job.external_manager = job.external_id = job.external_state = job.external_raw_state = None
            job.external_config = None
            reason = f"worker lost; re-queued for attempt {job.attempt} of {job.max_attempts}"
            transition(job, JobStatus.RESOLVED, reason, session=session, now=now)
            lost.append(LostJob(id=job.id, host=job.host, pid=pid, requeued=True, app=app))
            continue
        else:
            note = _lineage_of(session, job, "FAIL", "worker lost") or "worker lost"
            transition(job, JobStatus.FAILED, note, session=session, now=now)
        lost.append(LostJob(id=job.id, host=job.host, pid=job.pid, requeued=requeued, app=app))
    notify_workers(session)  # a cluster slot is free, and perhaps a job is queued again
    session.flush()
    return lost


def _exit_status(job: Job, *, host: str | None, shared_work_dirs: bool) -> int | None:
    # Only a started job has a status of its own: a CLAIMED or INIT one may hold an earlier attempt's file.
    if job.status != JobStatus.RUNNING.value or not job.work_dir:
        return None
    if not shared_work_dirs and (host is None or job.host != host):
        return None
    return read_exit_status(Path(job.work_dir))


_OUTCOMES: dict[JobStatus, Outcome] = {
    JobStatus.SUCCEEDED: "COMPLETE",
    JobStatus.FAILED: "FAIL",
    JobStatus.KILLED: "ABORT",
}


def _lineage_of(session: Session, job: Job, outcome: Outcome, reason: str) -> str | None:
    try:
        return record_run_lineage(session, job, outcome=outcome, reason=reason)
    except Exception:  # the job's outcome must be recorded all the same
        log.exception("job %s: recording its lineage failed", job.id)
        return None


def kill_orphans(lost: list[LostJob], *, host: str, policy: EgressPolicy | None = None) -> None:
    """End the process groups of reaped jobs that run on ``host`` (a worker killed with SIGKILL leaves them
    running), so a re-queued job never runs beside its earlier attempt; a reused pid is never signalled. The
    applications they ran on cluster managers are killed through the managers, from any host (requests under the
    egress ``policy``, default this process's)."""
    kill_apps([(job.id, job.app) for job in lost if job.app is not None], policy=policy)
    for job in lost:
        log.warning("job %s lost its worker; %s", job.id, "re-queued" if job.requeued else "now final")
        if job.host == host and job.pid and runs_job(job.pid, job.id):
            kill_group(job.pid, signal.SIGKILL)


class ReaperThread(LoopService[list[LostJob]]):
    """The server's reaper: every ``interval`` seconds, reaps lost jobs (so they end even with no worker alive)."""

    log = log

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        interval: float,
        timeout_seconds: float,
        shared_work_dirs: bool = False,
        host: str | None = None,
    ) -> None:
        super().__init__(name="headwater-job-reaper", interval=interval, join_timeout=30)
        self.factory = factory
        self.timeout_seconds = timeout_seconds
        self.shared_work_dirs = shared_work_dirs
        self.host = host or socket.gethostname()

    def run_once(self) -> list[LostJob]:
        """One pass: reap, and end the orphaned processes of reaped jobs on this host before they can run again."""
        with session_scope(self.factory) as session:
            lost = reap_lost_jobs(
                session, timeout_seconds=self.timeout_seconds, host=self.host, shared_work_dirs=self.shared_work_dirs
            )
            kill_orphans(lost, host=self.host)  # before the commit makes a re-queued job claimable
        return lost
