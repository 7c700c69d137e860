"""The job worker: claims jobs from the database queue, runs each as its own process group in a per-job
directory, heartbeats, enforces timeouts and kill requests on the whole group, records how each job ended,
and fails jobs whose worker stopped heartbeating ("worker lost").

One loop iteration is :meth:`JobWorker.run_once`; each step opens its own short transaction, and jobs
claimed or ended together share one. Between iterations the worker waits for work (:mod:`wakeup`).
Preparing a claimed job is :mod:`preparation`, starting and signalling its processes :mod:`processes`, and the
lineage of a succeeded job :mod:`run_lineage`; this module is the loop and its bookkeeping.

Fencing (docs/adr/0001-job-fencing.md): each claim carries an epoch, every write for a job is conditioned on it,
a job the worker finds reaped is killed at once, and a worker that cannot renew its lease kills its own jobs before
anyone may reap them (:meth:`JobWorker.fence_expiring`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from headwater.db import session_scope, utcnow
from headwater.egress import EgressPolicy
from headwater.jobs import archive, cluster_apps, dispatch, reaper, workspace
from headwater.jobs.exit_status import clear_exit_status, read_exit_status, write_exit_status
from headwater.jobs.files import FileCache, is_remote
from headwater.jobs.isolation import worker_isolation
from headwater.jobs.lease_fence import LeaseFence
from headwater.jobs.models import FINAL_STATUSES, Job, JobStatus
from headwater.jobs.preparation import prepare_claimed
from headwater.jobs.processes import PreparedJob, RunningJob, cancel_outside, kill_group, start_process
from headwater.jobs.relay import FileServer
from headwater.jobs.run_lineage import OUTCOMES, record_run_lineage
from headwater.jobs.wakeup import Wakeup
from headwater.loops import LoopService
from headwater.settings import Settings

__all__ = ["JobWorker", "WorkerThread", "kill_group"]

log = logging.getLogger("headwater.jobs.worker")

FENCED = "worker lost the database; killed before it could be reaped and run twice"
REAPED = "reaped while this worker ran it"


class JobWorker:
    """Runs up to ``slots`` jobs at a time on this host."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        data_dir: Path,
        worker_id: str | None = None,
        slots: int = 4,
        heartbeat_interval: float = 5.0,
        heartbeat_timeout: float = 60.0,
        kill_grace: float = 5.0,
        poll_interval: float = 0.5,
        retention: dt.timedelta | None = None,
        retention_interval: float = 300.0,
        archive_dir: Path | None = None,
        listen: bool = True,
        file_timeout: float = 60.0,
        file_max_bytes: int = 2 * 1024**3,
        run_as: str | None = None,
        pass_env: Sequence[str] = (),
        egress: EgressPolicy | None = None,
        fence_margin: float | None = None,
        shared_work_dirs: bool = False,
        host: str | None = None,
        archive_max_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.factory = factory
        self.jobs_dir = (data_dir / "jobs").resolve()
        self.host = host or socket.gethostname()
        self.archive_max_bytes = archive_max_bytes
        self.worker_id = worker_id or f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.slots = slots
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.kill_grace = kill_grace
        self.poll_interval = poll_interval
        self.retention = retention
        self.retention_interval = retention_interval
        self.archive_dir = (archive_dir or data_dir / "jobs-archive").resolve()
        self.files = FileCache(
            (data_dir / "cache" / "files").resolve(), timeout=file_timeout, max_bytes=file_max_bytes, policy=egress
        )
        self.running: dict[int, RunningJob] = {}
        self._ended: list[tuple[RunningJob, int]] = []  # exited, not yet recorded
        self._apps = cluster_apps.AppWatch()  # what was last recorded of the cluster applications of its jobs
        self._last_heartbeat = 0.0
        self._last_reap = 0.0
        self._last_kill_check = 0.0
        self._last_cleanup = 0.0
        # Fencing: kill a job whose lease is this old (local monotonic clock, from before its last renewal).
        margin = fence_margin if fence_margin is not None else min(10.0, heartbeat_timeout / 5)
        self.fence_after = heartbeat_timeout - margin
        self.shared_work_dirs = shared_work_dirs
        # (pk, attempt) -> (epoch claimed, monotonic time before its last renewal); the attempt tells a re-claim of
        # a reaped job by this same worker from the copy it still has to kill.
        self._leases: dict[tuple[int, int], tuple[int, float]] = {}
        self._db_ok = True  # the last loop iteration reached the database: only then may it reap and claim
        bind = factory.kw.get("bind")
        self.isolation = worker_isolation(data_dir, bind, run_as=run_as, pass_env=pass_env)
        self.listen = listen
        self._wakeup = Wakeup(bind if listen and isinstance(bind, Engine) else None)

    @classmethod
    def from_settings(
        cls, factory: sessionmaker[Session], settings: Settings, *, slots: int | None = None
    ) -> JobWorker:
        """A worker configured by the ``HEADWATER_JOBS_*`` settings."""
        days = settings.jobs_retention_days
        return cls(
            factory,
            data_dir=settings.data_dir,
            slots=slots or settings.jobs_worker_slots,
            heartbeat_interval=settings.jobs_heartbeat_interval,
            heartbeat_timeout=settings.jobs_heartbeat_timeout,
            kill_grace=settings.jobs_kill_grace,
            poll_interval=settings.jobs_poll_interval,
            retention=dt.timedelta(days=days) if days > 0 else None,
            retention_interval=settings.jobs_retention_interval,
            archive_dir=settings.resolved_jobs_archive_dir,
            listen=settings.jobs_listen,
            file_timeout=settings.jobs_file_timeout,
            file_max_bytes=settings.jobs_file_max_bytes,
            run_as=settings.jobs_run_as,
            pass_env=settings.jobs_pass_env,
            egress=EgressPolicy.from_settings(settings),
            fence_margin=settings.jobs_fence_margin,
            shared_work_dirs=settings.jobs_shared_work_dirs,
            host=settings.jobs_host,
            archive_max_bytes=settings.jobs_db_archive_max_bytes,
        )

    # -------------------------------------------------------------------------------- the loop

    def run_once(self) -> None:
        """One iteration: kill jobs whose lease is expiring, heartbeat, reap lost jobs, finish exited ones, act on
        kills and timeouts, claim, and now and then remove expired job directories."""
        self.fence_expiring()
        self._collect_exited()  # no database needed: an exit (and its status file) is noticed in an outage too
        try:
            self._iterate()
        except Exception:
            self._db_ok = False  # no reaping or claiming until a heartbeat gets through again
            raise

    def _iterate(self) -> None:
        now = time.monotonic()
        self._heartbeat()
        # Reaping scans for stale heartbeats, which cannot appear faster than the heartbeat interval.
        if now - self._last_reap >= min(self.heartbeat_interval, self.heartbeat_timeout / 4):
            self._last_reap = now
            self._reap()
        self._collect_exited()
        self._enforce_kills()
        free = self.slots - len(self.running)
        if self._ended or free > 0:
            # Recording ended jobs, claiming and INIT share one transaction (a commit is the dearest step of
            # a short job); the processes start once it has committed.
            with session_scope(self.factory) as session:
                logged = self._record_ends(session)
                claimed = self._claim(session, free)
                prepared = (
                    prepare_claimed(claimed, session=session, jobs_dir=self.jobs_dir, host=self.host) if claimed else []
                )
            self._forget_ended()
            for line in logged:
                log.info("%s", line)
            if prepared:
                self._launch_all(prepared)
        if self.retention is not None and now - self._last_cleanup >= self.retention_interval:
            self._last_cleanup = now
            self.clean_expired()

    def wait_for_work(self, timeout: float) -> None:
        """Sleep until a job is queued (PostgreSQL), one of this worker's processes exits, or ``timeout``."""
        self._wakeup.wait(timeout, [run.pidfd for run in self.running.values() if run.pidfd is not None])

    def serve(self, stop: threading.Event) -> None:
        """Loop in this thread until ``stop`` is set (the CLI worker; the server's is :class:`WorkerThread`)."""
        WorkerThread(self, interval=self.poll_interval, stop=stop).run()

    def clean_expired(self) -> list[str]:
        """Remove this worker's job directories older than the retention period (archiving logs if asked)."""
        if self.retention is None:
            return []
        with session_scope(self.factory) as session:
            cleaned = workspace.clean_expired_jobs(
                session, host=self.host, jobs_dir=self.jobs_dir, retention=self.retention, archive_dir=self.archive_dir
            )
            # Archives expire with the directories, whatever host ran the job (one gone for good cleans nothing).
            dropped = archive.drop_expired_archives(session, before=utcnow() - self.retention)
        if dropped:
            log.info("removed the database archives of %d expired job(s)", dropped)
        if cleaned:
            log.info("removed %d expired job director(ies)", len(cleaned))
        unused = self.files.remove_unused(self.retention.total_seconds())
        if unused:
            log.info("removed %d cached application file(s) no job used within the retention period", unused)
        return cleaned

    def archive_finished(self, limit: int = 5) -> int:
        """Copy the files of up to ``limit`` of this worker's finished jobs into the database; how many."""
        return archive.archive_finished(self, limit=limit)

    def drain(self, timeout: float = 60.0, interval: float = 0.1) -> None:
        """Run the loop until no job is running or queued for this worker (tests, and the CLI's --once)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.run_once()
            if not self.running and not self._queued():
                return
            time.sleep(interval)
        raise TimeoutError(f"jobs still running after {timeout} s: {sorted(r.job_id for r in self.running.values())}")

    def shutdown(self, reason: str = "worker stopped") -> None:
        """Kill this worker's running jobs and record them KILLED."""
        for run in self.running.values():
            run.kill_reason = reason
            cancel_outside(run)
            kill_group(run.process.pid, signal.SIGKILL)
        for run in list(self.running.values()):
            run.process.wait()
        self._finish_exited()
        self._wakeup.close()
        archive.archive_all(self)  # what it ran stays readable once this host is gone

    def _queued(self) -> bool:
        with session_scope(self.factory) as session:
            return dispatch.is_queued(session)

    # -------------------------------------------------------------------------------- fencing

    def _reap(self) -> None:
        """Reap lost jobs, only while this worker's own lease is known good (it heartbeated since it last lost the
        database): a worker that was cut off must not judge others before it has shown it is back."""
        if not self._db_ok:
            return
        with session_scope(self.factory) as session:
            lost = reaper.reap_lost_jobs(
                session, timeout_seconds=self.heartbeat_timeout, host=self.host, shared_work_dirs=self.shared_work_dirs
            )
            # Before the commit makes a re-queued job claimable, so its first try never overlaps a retry.
            reaper.kill_orphans(lost, host=self.host, policy=self.files.policy)

    def _claim(self, session: Session, free: int) -> list[Job]:
        """Claim up to ``free`` jobs, only while the database is reachable; each claim's epoch starts its lease."""
        if free <= 0 or not self._db_ok:
            return []
        live = set(self.running) | {run.pk for run, _ in self._ended}
        for key in [key for key in self._leases if key[0] not in live]:
            del self._leases[key]  # claimed earlier but never started (failed preparation, or expired meanwhile)
        started = time.monotonic()  # before the claim: the lease can only be younger than this says
        claimed = dispatch.claim_jobs(session, worker_id=self.worker_id, slots=free)
        # A job reaped from this worker and re-queued may come back to it before it noticed: end the old copy first.
        self._drop_reaped([self.running[job.pk] for job in claimed if job.pk in self.running])
        self._leases.update({(job.pk, job.attempt): (job.epoch, started) for job in claimed})
        return claimed

    def fence_expiring(self) -> None:
        """Kill, at once, every running job whose lease this worker could not renew for ``fence_after`` seconds: by
        the database's clock it can be reaped ``heartbeat_timeout`` after the last renewal, and must be dead by then."""
        now = time.monotonic()
        fenced = []
        for run in list(self.running.values()):
            lease = self._leases.get((run.pk, run.attempt))
            if lease is None or now - lease[1] <= self.fence_after or run.kill_reason == FENCED:
                continue
            self._kill_now(run, FENCED)
            fenced.append((run.job_id, now - lease[1]))
        for job_id, age in fenced:  # logged after every kill: a log write that blocks must not delay one
            log.error("job %s: no heartbeat got through for %.1f s; killed before it could be reaped", job_id, age)

    def _drop_reaped(self, runs: list[RunningJob]) -> None:
        """Runs whose job was reaped (its epoch moved on): kill this copy at once and forget it; record nothing."""
        for run in runs:
            self._leases.pop((run.pk, run.attempt), None)
            log.error("job %s was reaped while this worker ran it; killing this copy", run.job_id)
            self._kill_now(run, REAPED)
            with suppress(subprocess.TimeoutExpired):
                run.process.wait(timeout=5)  # SIGKILL: the leader is gone at once
            for handle in run.files:
                handle.close()
            if run.pidfd is not None:
                os.close(run.pidfd)
            if self.running.get(run.pk) is run:
                del self.running[run.pk]

    def _kill_now(self, run: RunningJob, reason: str) -> None:
        run.kill_reason = reason
        run.kill_sent_at = time.monotonic()
        cancel_outside(run)
        kill_group(run.process.pid, signal.SIGKILL)

    def _forget_ended(self) -> None:
        """The ends in ``_ended`` are committed (or refused): their leases are over."""
        for run, _ in self._ended:
            self._leases.pop((run.pk, run.attempt), None)
            self._apps.forget(run.pk)
        self._ended.clear()

    def _held(self, session: Session, keys: list[tuple[int, int]]) -> set[int]:
        """Of these (pk, attempt), the jobs still this worker's at the epoch it claimed: their pks, leases renewed
        and rows locked for this transaction."""
        epochs = {pk: self._leases[(pk, attempt)][0] for pk, attempt in keys if (pk, attempt) in self._leases}
        attempts = dict(keys)
        started = time.monotonic()
        held = dispatch.hold_fenced(session, worker_id=self.worker_id, epochs=epochs)
        renewed = {(pk, attempts[pk]): (epochs[pk], started) for pk in held}

        # Only a committed renewal counts: a lease believed renewed by a transaction that failed to commit would let
        # this worker run the job past the time it can be reaped.
        def _committed(_: Session) -> None:
            self._leases.update({key: lease for key, lease in renewed.items() if key in self._leases})

        event.listen(session, "after_commit", _committed, once=True)
        return held

    @staticmethod
    def _keep_exit_status(run: RunningJob, code: int) -> None:
        """Write the job's exit status into its directory, unless its launcher did, so a reaper can record it."""
        if run.kill_reason in {FENCED, REAPED}:
            return  # killed so as not to run twice: not an outcome of the job
        try:
            if read_exit_status(run.work_dir) is None:
                write_exit_status(run.work_dir, code)
        except OSError:
            log.warning("job %s: could not write its exit status into %s", run.job_id, run.work_dir)

    # -------------------------------------------------------------------------------- starting

    def _launch_all(self, prepared: list[PreparedJob]) -> None:
        """Start the prepared jobs' processes, then record them all RUNNING in one transaction."""
        started: list[RunningJob] = []
        failed: dict[int, str] = {}
        for item in prepared:
            lease = self._leases.get((item.pk, item.attempt))
            if lease is None or time.monotonic() - lease[1] > self.fence_after:
                self._leases.pop((item.pk, item.attempt), None)
                continue  # its lease ran out meanwhile (a long download): it may be reaped, so never start it
            clear_exit_status(item.work_dir)  # a retry runs in the same directory
            outcome = self._start(item, [p.pk for p in prepared])
            if isinstance(outcome, str):
                failed[item.pk] = outcome
            else:
                self.running[item.pk] = outcome
                started.append(outcome)
        with session_scope(self.factory) as session:
            now = utcnow()
            pks = [run.pk for run in started] + list(failed)
            held = self._held(session, [(item.pk, item.attempt) for item in prepared if item.pk in pks])
            jobs = dispatch.held_jobs(session, pks=held)
            self._drop_reaped([run for run in started if run.pk not in held])
            for run in started:
                job = jobs.get(run.pk)
                if job is None or job.status != JobStatus.INIT.value:
                    continue
                dispatch.record_start(
                    session, job=job, attempt=run.attempt, worker_id=self.worker_id, host=self.host,
                    pid=run.process.pid, now=now,
                )  # fmt: skip
                if job.kill_requested:
                    run.kill_reason = "killed by request"
            for pk, reason in failed.items():
                if (failed_job := jobs.get(pk)) is not None:
                    dispatch.fail_start(session, job=failed_job, reason=reason, now=now)
        for run in started:
            log.info("job %s started: pid %s", run.job_id, run.process.pid)

    def _enforce_kills(self) -> None:
        if not self.running:
            return
        now = time.monotonic()
        flagged: set[int] = set()
        # Kill requests come from the database; reading them every poll interval bounds how late they act.
        if now - self._last_kill_check >= self.poll_interval:
            self._last_kill_check = now
            with session_scope(self.factory) as session:
                flagged = dispatch.kill_requested(session, pks=self.running)
        for pk, run in self.running.items():
            if run.kill_reason is None and pk in flagged:
                run.kill_reason = "killed by request"
            if run.kill_reason is None and run.deadline is not None and now >= run.deadline:
                run.kill_reason = "timed out"
            if run.kill_reason is None:
                continue
            if run.kill_sent_at is None:
                cancel_outside(run)
                kill_group(run.process.pid, signal.SIGTERM)
                run.kill_sent_at = now
            elif now - run.kill_sent_at >= self.kill_grace:
                kill_group(run.process.pid, signal.SIGKILL)

    def _start(self, item: PreparedJob, starting: list[int]) -> RunningJob | str:
        """Start one prepared job. One that needs files fetched over HTTP(S) is prepared in a thread; meanwhile this
        one keeps heartbeating for every job this worker holds (a large download must not make them look lost) and
        acts on the kills and timeouts of the running ones. The starting job's own kill or timeout is acted on
        once it has started."""
        if not any(is_remote(ref) for app in item.applications for ref in app.files):
            # local files too are checked by the egress policy
            return start_process(item, self.files.fetch, **self._launch_options())
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="job-files") as pool:
            future = pool.submit(start_process, item, self.files.fetch, **self._launch_options())
            while True:
                try:
                    return future.result(timeout=self.heartbeat_interval)
                except FutureTimeout:
                    pass
                except Exception as exc:  # a bug, not the job's fault: fail this job, not the whole batch
                    log.exception("preparing job %s failed", item.job_id)
                    return f"could not prepare the job: {exc}"
                try:
                    self.fence_expiring()
                    self._heartbeat(also=starting)
                    self._collect_exited()
                    self._enforce_kills()
                except Exception:  # a database blip: keep waiting, the download's result must not be lost
                    log.exception("heartbeat while job %s downloads its files failed", item.job_id)

    def _launch_options(self) -> dict[str, Any]:
        """How jobs start: isolated as configured, each run-as uid used by one running job at a time."""
        in_use = {run.uid for run in self.running.values() if run.uid is not None}
        return {"isolation": self.isolation, "in_use": in_use, "grace": self.kill_grace}

    def _heartbeat(self, also: list[int] | None = None) -> None:
        """Renew the leases of the jobs this worker holds (conditioned on their epochs); kill any found reaped.
        After the database was lost this runs at once, and is what lets the worker reap and claim again."""
        now = time.monotonic()
        starting = set(also or []) - set(self.running)
        held = [(run.pk, run.attempt) for run in self.running.values()]
        held += [key for key in self._leases if key[0] in starting]
        runs = [(run.pk, run.work_dir) for run in self.running.values()]
        # Not yet due (a new application id is recorded at once, though: the reaper needs it to kill the application)
        if (
            self._db_ok
            and (not held or now - self._last_heartbeat < self.heartbeat_interval)
            and not self._apps.changed(runs)
        ):
            return
        with session_scope(self.factory) as session:
            kept = self._held(session, held) if held else set()
            self._apps.note(session, [r for r in runs if r[0] in kept])  # fenced: the jobs are held in this transaction
            if not held:
                dispatch.ping(session)  # nothing to renew: only show that the database is back
        self._last_heartbeat = now
        self._db_ok = True
        self._drop_reaped([run for run in self.running.values() if run.pk not in kept])
        for pk, attempt in held:
            if pk in starting and pk not in kept:
                self._leases.pop((pk, attempt), None)  # reaped before it started: it never will here

    def _collect_exited(self) -> None:
        """Move the processes that exited from ``running`` to the ends still to record."""
        for pk, run in list(self.running.items()):
            code = run.process.poll()
            if code is None:
                continue
            # The leader is gone; make sure nothing it started outlives it when the job was killed.
            if run.kill_reason is not None:
                kill_group(run.process.pid, signal.SIGKILL)
            self._keep_exit_status(run, code)
            for handle in run.files:
                handle.close()
            if run.pidfd is not None:
                os.close(run.pidfd)
            del self.running[pk]
            self._ended.append((run, code))

    def _finish_exited(self) -> None:
        """Record the jobs that ended, in a transaction of their own."""
        self._collect_exited()
        if self._ended:
            with session_scope(self.factory) as session:
                logged = self._record_ends(session)
            self._forget_ended()
            for line in logged:
                log.info("%s", line)

    def _record_ends(self, session: Session) -> list[str]:
        """Record every job in ``_ended`` (kept until the transaction commits, so a failed one is retried)."""
        if not self._ended:
            return []
        # A job reaped meanwhile is another's to record: refused here.
        held = self._held(session, [(run.pk, run.attempt) for run, _ in self._ended])
        jobs = dispatch.held_jobs(session, pks=held)
        definitions = dispatch.definitions_of(session, jobs.values())  # held while lineage is recorded
        now = utcnow()
        ends = [end for run, code in self._ended if (end := self._end_of(session, jobs.get(run.pk), run, code))]
        dispatch.end_jobs(session, ends=ends, now=now)
        del definitions
        return [f"job {job.id} ended {status.value} (exit code {job.exit_code})" for job, status, _ in ends]

    def _end_of(
        self, session: Session, job: Job | None, run: RunningJob, code: int
    ) -> tuple[Job, JobStatus, str] | None:
        """How the job ended, or None when it is no longer this worker's to record."""
        if (
            job is None
            or job.status in {s.value for s in FINAL_STATUSES}
            or job.worker_id != self.worker_id
            or job.attempt != run.attempt
        ):
            return None  # reaped meanwhile (this worker was presumed lost), perhaps re-queued and run elsewhere
        job.exit_code = code
        if run.kill_reason == FENCED:
            status, reason = JobStatus.FAILED, FENCED
        elif run.kill_reason == "timed out":
            status, reason = JobStatus.KILLED, f"timed out after {job.timeout_seconds} s"
        elif run.kill_reason is not None:
            status, reason = JobStatus.KILLED, run.kill_reason
        elif code == 0:
            status, reason = JobStatus.SUCCEEDED, "exit code 0"
        else:
            status, reason = JobStatus.FAILED, f"exit code {code}"
        if run.kill_reason != FENCED:  # a job on a cluster manager ended as its application did: say how
            reason = cluster_apps.end_reason(job, run.work_dir, reason, killed=run.kill_reason is not None)
        outcome = OUTCOMES.get(status) if run.kill_reason != FENCED else None  # a fenced run is the reaper's
        if outcome is not None:
            try:
                reason = record_run_lineage(session, job, outcome=outcome, reason=reason) or reason
            except Exception as exc:  # several jobs end in one transaction: one's lineage must not undo the rest
                log.exception("job %s: recording its lineage failed", run.job_id)
                reason = f"{reason}; lineage not recorded: {exc}"
        return job, status, reason


class WorkerThread(LoopService[None]):
    """Runs a :class:`JobWorker`'s loop: in a daemon thread (the server's in-process worker), or in the calling
    thread with :meth:`run` until ``stop`` is set (``headwater worker``). Between iterations the worker waits for work
    (:mod:`wakeup`); after a failed one, one poll interval."""

    log = log

    def __init__(self, worker: JobWorker, *, interval: float, stop: threading.Event | None = None) -> None:
        super().__init__(name="headwater-job-worker", interval=interval, run_first=True, join_timeout=30, stop=stop)
        self.worker = worker

    def run(self) -> None:
        """Loop until stopped, the worker's leases fenced from a thread of their own meanwhile."""
        self.worker.poll_interval = self.interval
        fence = LeaseFence(self.worker)
        fence.start()
        files = FileServer(self.worker, interval=self.interval)
        files.start()
        try:
            super().run()
        finally:
            files.stop()
            fence.stop()

    def run_once(self) -> None:
        """One iteration of the worker (:meth:`JobWorker.run_once`)."""
        self.worker.run_once()

    def on_error(self, exc: Exception) -> None:
        """One bad iteration (a database blip) must not end the worker."""
        log.exception("job worker iteration failed")

    def pause(self, seconds: float) -> None:
        """Until work arrives (or ``seconds``); after a failure, ``seconds`` unless stopped meanwhile."""
        if self.failures:
            self._stop.wait(seconds)
        else:
            self.worker.wait_for_work(seconds)

    def on_stop(self) -> None:
        """Kill the jobs the worker runs."""
        self.worker.shutdown()
