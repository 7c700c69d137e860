"""The job worker: claims jobs from the database queue, runs each as its own process group in a per-job
directory, heartbeats, enforces timeouts and kill requests on the whole group, records how each job ended,
and fails jobs whose worker stopped heartbeating ("worker lost").

One loop iteration is :meth:`JobWorker.run_once`; each step opens its own short transaction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from headwater.db import session_scope, utcnow
from headwater.errors import HeadwaterError
from headwater.jobs import service
from headwater.jobs.engines import EngineError, JobContext, engine_for
from headwater.jobs.models import Cluster, Command, Job, JobStatus

__all__ = ["JobWorker", "WorkerThread"]

log = logging.getLogger("headwater.jobs.worker")

PRODUCER = "https://github.com/headwater/headwater/jobs"


@dataclass
class _Running:
    pk: int
    job_id: str
    process: subprocess.Popen[bytes]
    files: list[IO[bytes]]
    deadline: float | None
    kill_reason: str | None = None
    kill_sent_at: float | None = None


def kill_group(pgid: int, sig: int) -> None:
    """Signal a whole process group; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


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
    ) -> None:
        self.factory = factory
        self.jobs_dir = (data_dir / "jobs").resolve()
        self.host = socket.gethostname()
        self.worker_id = worker_id or f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.slots = slots
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.kill_grace = kill_grace
        self.running: dict[int, _Running] = {}
        self._last_heartbeat = 0.0

    # -------------------------------------------------------------------------------- the loop

    def run_once(self) -> None:
        """One iteration: reap lost jobs, finish exited ones, act on kills and timeouts, heartbeat, claim."""
        with session_scope(self.factory) as session:
            lost = service.reap_lost_jobs(session, timeout_seconds=self.heartbeat_timeout)
        if lost:
            log.warning("jobs whose worker was lost, now FAILED: %s", ", ".join(lost))
        self._finish_exited()
        self._enforce_kills()
        self._heartbeat()
        free = self.slots - len(self.running)
        if free > 0:
            with session_scope(self.factory) as session:
                claimed = [job.pk for job in service.claim_jobs(session, worker_id=self.worker_id, slots=free)]
            for pk in claimed:
                self._start(pk)

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
            kill_group(run.process.pid, signal.SIGKILL)
        for run in list(self.running.values()):
            run.process.wait()
        self._finish_exited()

    def _queued(self) -> bool:
        with session_scope(self.factory) as session:
            return session.scalar(select(Job.pk).where(Job.status == JobStatus.RESOLVED.value).limit(1)) is not None

    # -------------------------------------------------------------------------------- starting

    def _start(self, pk: int) -> None:
        try:
            with session_scope(self.factory) as session:
                job = session.get(Job, pk)
                assert job is not None
                cluster = session.get(Cluster, job.cluster_id) if job.cluster_id else None
                command = session.get(Command, job.command_id) if job.command_id else None
                if cluster is None or command is None:
                    raise EngineError("its cluster or command was deleted before it started")
                work_dir = self.jobs_dir / _safe_dir_name(job.id)
                job.work_dir = str(work_dir)
                job.host = self.host
                service.transition(job, JobStatus.INIT, f"preparing {work_dir}", session=session)
                context = JobContext(
                    job_id=job.id,
                    job_name=job.name,
                    run_uuid=job.run_uuid,
                    args=list(job.request.get("command_args", [])),
                    command=list(command.executable),
                    cluster_config=dict(cluster.config or {}),
                )
                launch = engine_for(cluster.type).launch(context)
                environment = {str(k): str(v) for k, v in (job.request.get("environment") or {}).items()}
                timeout = job.timeout_seconds
                job_id = job.id
        except (EngineError, HeadwaterError, OSError) as exc:
            self._fail_start(pk, f"could not prepare the job: {exc}")
            return
        work_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **launch.env,
            **environment,
            "HEADWATER_JOB_ID": job_id,
            "HEADWATER_JOB_DIR": str(work_dir),
        }
        stdout = (work_dir / "stdout").open("wb")
        stderr = (work_dir / "stderr").open("wb")
        try:
            process = subprocess.Popen(
                launch.argv,
                cwd=work_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # its own process group: a kill reaches every child
            )
        except OSError as exc:
            stdout.close()
            stderr.close()
            self._fail_start(pk, f"could not start {launch.argv[0]!r}: {exc}")
            return
        deadline = time.monotonic() + timeout if timeout else None
        self.running[pk] = _Running(pk=pk, job_id=job_id, process=process, files=[stdout, stderr], deadline=deadline)
        with session_scope(self.factory) as session:
            job = session.get(Job, pk)
            assert job is not None
            job.pid = process.pid
            job.started_at = utcnow()
            job.heartbeat_at = job.started_at
            service.transition(job, JobStatus.RUNNING, f"pid {process.pid} on {self.host}", session=session)
            if job.kill_requested:
                self.running[pk].kill_reason = "killed by request"
        log.info("job %s started: pid %s", job_id, process.pid)

    def _fail_start(self, pk: int, reason: str) -> None:
        with session_scope(self.factory) as session:
            job = session.get(Job, pk)
            if job is not None and job.status not in {s.value for s in service.FINAL_STATUSES}:
                service.transition(job, JobStatus.FAILED, reason, session=session)

    # -------------------------------------------------------------------------------- running

    def _enforce_kills(self) -> None:
        if not self.running:
            return
        with session_scope(self.factory) as session:
            flagged = set(
                session.scalars(select(Job.pk).where(Job.pk.in_(list(self.running)), Job.kill_requested.is_(True)))
            )
        now = time.monotonic()
        for pk, run in self.running.items():
            if run.kill_reason is None and pk in flagged:
                run.kill_reason = "killed by request"
            if run.kill_reason is None and run.deadline is not None and now >= run.deadline:
                run.kill_reason = "timed out"
            if run.kill_reason is None:
                continue
            if run.kill_sent_at is None:
                kill_group(run.process.pid, signal.SIGTERM)
                run.kill_sent_at = now
            elif now - run.kill_sent_at >= self.kill_grace:
                kill_group(run.process.pid, signal.SIGKILL)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if not self.running or now - self._last_heartbeat < self.heartbeat_interval:
            return
        with session_scope(self.factory) as session:
            service.heartbeat(session, worker_id=self.worker_id, job_pks=list(self.running))
        self._last_heartbeat = now

    def _finish_exited(self) -> None:
        for pk, run in list(self.running.items()):
            code = run.process.poll()
            if code is None:
                continue
            # The leader is gone; make sure nothing it started outlives it when the job was killed.
            if run.kill_reason is not None:
                kill_group(run.process.pid, signal.SIGKILL)
            for handle in run.files:
                handle.close()
            del self.running[pk]
            self._record_end(pk, run, code)

    def _record_end(self, pk: int, run: _Running, code: int) -> None:
        with session_scope(self.factory) as session:
            job = session.get(Job, pk)
            if job is None or job.status in {s.value for s in service.FINAL_STATUSES}:
                return  # reaped meanwhile (this worker was presumed lost)
            job.exit_code = code
            if run.kill_reason == "timed out":
                status, reason = JobStatus.KILLED, f"timed out after {job.timeout_seconds} s"
            elif run.kill_reason is not None:
                status, reason = JobStatus.KILLED, run.kill_reason
            elif code == 0:
                status, reason = JobStatus.SUCCEEDED, "exit code 0"
            else:
                status, reason = JobStatus.FAILED, f"exit code {code}"
            if status is JobStatus.SUCCEEDED:
                reason = _record_lineage(session, job) or reason
            service.transition(job, status, reason, session=session)
        log.info("job %s ended %s (exit code %s)", run.job_id, status.value, code)


def _record_lineage(session: Session, job: Job) -> str | None:
    """Declared inputs and outputs become lineage of the job's run; a problem is reported, not fatal."""
    inputs, outputs = job.request.get("inputs") or [], job.request.get("outputs") or []
    if not inputs and not outputs:
        return None
    from headwater.lineage.ingest import ingest_events

    now = utcnow()
    started = job.started_at or now
    base = {
        "producer": PRODUCER,
        "run": {"runId": job.run_uuid},
        "job": {"namespace": "headwater", "name": job.name},
    }
    events = [
        {**base, "eventType": "START", "eventTime": started.isoformat()},
        {**base, "eventType": "COMPLETE", "eventTime": now.isoformat(), "inputs": inputs, "outputs": outputs},
    ]
    try:
        with session.begin_nested():
            result = ingest_events(session, documents=events)
    except HeadwaterError as exc:
        return f"exit code 0; declared lineage not recorded: {exc.message}"
    if result.warnings:
        return "exit code 0; lineage warnings: " + "; ".join(result.warnings)[:2000]
    return None


def _safe_dir_name(job_id: str) -> str:
    # Job ids are validated to [A-Za-z0-9._-]; this guards against "." and ".." all the same.
    return job_id if job_id not in {".", ".."} else f"_{job_id}"


class WorkerThread:
    """Runs a :class:`JobWorker` loop in a daemon thread (the server's in-process worker)."""

    def __init__(self, worker: JobWorker, *, interval: float) -> None:
        self.worker = worker
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the loop."""
        self._thread = threading.Thread(target=self._loop, name="headwater-job-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and kill the jobs it runs."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.worker.shutdown()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.worker.run_once()
            except Exception:  # one bad iteration must not end the worker
                log.exception("job worker iteration failed")
            self._stop.wait(self.interval)
