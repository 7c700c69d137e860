"""The job worker: claims jobs from the database queue, runs each as its own process group in a per-job
directory, heartbeats, enforces timeouts and kill requests on the whole group, records how each job ended,
and fails jobs whose worker stopped heartbeating ("worker lost").

One loop iteration is :meth:`JobWorker.run_once`; each step opens its own short transaction, and jobs
claimed or ended together share one. Between iterations the worker waits for work (:mod:`wakeup`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
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

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from headwater.db import session_scope, utcnow
from headwater.errors import HeadwaterError
from headwater.jobs import applications, dispatch, service, workspace
from headwater.jobs.applications import AppSetup
from headwater.jobs.engines import EngineError, JobContext, engine_for
from headwater.jobs.models import Cluster, Command, Job, JobAttempt, JobStatus
from headwater.jobs.wakeup import Wakeup, open_pidfd
from headwater.settings import Settings

__all__ = ["JobWorker", "WorkerThread"]

log = logging.getLogger("headwater.jobs.worker")

PRODUCER = "https://github.com/headwater/headwater/jobs"


@dataclass
class _Running:
    pk: int
    job_id: str
    attempt: int
    process: subprocess.Popen[bytes]
    files: list[IO[bytes]]
    deadline: float | None
    pidfd: int | None = None
    kill_reason: str | None = None
    kill_sent_at: float | None = None


@dataclass
class _Prepared:
    pk: int
    job_id: str
    attempt: int
    argv: list[str]
    env: dict[str, str]
    work_dir: Path
    timeout: int | None
    job_env: dict[str, str]
    attachments: list[tuple[str, bytes]]
    applications: list[AppSetup]


def kill_group(pgid: int, sig: int) -> None:
    """Signal a whole process group; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _runs_job(pid: int, job_id: str) -> bool:
    """Whether process ``pid`` is still the leader of job ``job_id`` (its environment names the job), so a
    reused pid is never killed."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"HEADWATER_JOB_ID={job_id}".encode() in environ.split(b"\x00")


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
    ) -> None:
        self.factory = factory
        self.jobs_dir = (data_dir / "jobs").resolve()
        self.host = socket.gethostname()
        self.worker_id = worker_id or f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.slots = slots
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.kill_grace = kill_grace
        self.poll_interval = poll_interval
        self.retention = retention
        self.retention_interval = retention_interval
        self.archive_dir = (archive_dir or data_dir / "jobs-archive").resolve()
        self.running: dict[int, _Running] = {}
        self._ended: list[tuple[_Running, int]] = []  # exited, not yet recorded
        self._last_heartbeat = 0.0
        self._last_reap = 0.0
        self._last_kill_check = 0.0
        self._last_cleanup = 0.0
        bind = factory.kw.get("bind")
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
        )

    # -------------------------------------------------------------------------------- the loop

    def run_once(self) -> None:
        """One iteration: reap lost jobs, finish exited ones, act on kills and timeouts, heartbeat, claim,
        and now and then remove expired job directories."""
        now = time.monotonic()
        # Reaping scans for stale heartbeats, which cannot appear faster than the heartbeat interval.
        if now - self._last_reap >= min(self.heartbeat_interval, self.heartbeat_timeout / 4):
            self._last_reap = now
            with session_scope(self.factory) as session:
                lost = dispatch.reap_lost_jobs(session, timeout_seconds=self.heartbeat_timeout)
                # Before the commit makes a re-queued job claimable, so its first try never overlaps a retry.
                self._kill_orphans(lost)
        self._collect_exited()
        self._enforce_kills()
        self._heartbeat()
        free = self.slots - len(self.running)
        if self._ended or free > 0:
            # Recording ended jobs, claiming and INIT share one transaction (a commit is the dearest step of
            # a short job); the processes start once it has committed.
            with session_scope(self.factory) as session:
                logged = self._record_ends(session)
                claimed = dispatch.claim_jobs(session, worker_id=self.worker_id, slots=free) if free > 0 else []
                prepared = self._start(claimed, session) if claimed else []
            self._ended.clear()
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
        """Loop until ``stop`` is set (the CLI worker and the server's in-process worker)."""
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # one bad iteration (a database blip) must not end the worker
                log.exception("job worker iteration failed")
                stop.wait(self.poll_interval)
                continue
            self.wait_for_work(self.poll_interval)

    def clean_expired(self) -> list[str]:
        """Remove this worker's job directories older than the retention period (archiving logs if asked)."""
        if self.retention is None:
            return []
        with session_scope(self.factory) as session:
            cleaned = workspace.clean_expired_jobs(
                session, host=self.host, jobs_dir=self.jobs_dir, retention=self.retention, archive_dir=self.archive_dir
            )
        if cleaned:
            log.info("removed %d expired job director(ies)", len(cleaned))
        return cleaned

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
        self._wakeup.close()

    def _queued(self) -> bool:
        with session_scope(self.factory) as session:
            return session.scalar(select(Job.pk).where(Job.status == JobStatus.RESOLVED.value).limit(1)) is not None

    def _kill_orphans(self, lost: list[dispatch.LostJob]) -> None:
        # A worker killed with SIGKILL leaves its jobs' process groups running; on this host, end them so a
        # re-queued job never runs twice at once.
        for job in lost:
            log.warning("job %s lost its worker; %s", job.id, "re-queued" if job.requeued else "now final")
            owned = any(run.job_id == job.id for run in self.running.values())
            if job.host == self.host and job.pid and not owned and _runs_job(job.pid, job.id):
                kill_group(job.pid, signal.SIGKILL)

    # -------------------------------------------------------------------------------- starting

    def _start(self, jobs: list[Job], session: Session) -> list[_Prepared]:
        """Move jobs claimed in ``session`` to INIT (same transaction); what to launch once it commits."""
        attachments = workspace.attachments_of_jobs(session, job_pks=[job.pk for job in jobs])
        # Held here so each job's session.get finds them in the identity map (it only keeps weak references).
        clusters = list(session.scalars(select(Cluster).where(Cluster.id.in_({j.cluster_id for j in jobs}))))
        commands = list(session.scalars(select(Command).where(Command.id.in_({j.command_id for j in jobs}))))
        setups: dict[int, list[AppSetup] | str] = {}
        prepared: list[_Prepared] = []
        for job in jobs:
            item = self._prepare(session, job, setups, attachments.get(job.pk, []))
            if isinstance(item, str):
                service.transition(job, JobStatus.FAILED, f"could not prepare the job: {item}", session=session)
            else:
                prepared.append(item)
        del clusters, commands
        return prepared

    def _prepare(
        self,
        session: Session,
        job: Job,
        setups: dict[int, list[AppSetup] | str],
        attachments: list[tuple[str, bytes]],
    ) -> _Prepared | str:
        """Everything needed to launch ``job``, or why it cannot be; nothing is written before it is known."""
        cluster = session.get(Cluster, job.cluster_id) if job.cluster_id else None
        command = session.get(Command, job.command_id) if job.command_id else None
        if cluster is None or command is None:
            return "its cluster or command was deleted before it started"
        chosen: list[str] | None = job.request.get("applications")
        if chosen is not None:  # the job named its own applications (Genie's override)
            try:
                setup: list[AppSetup] | str = applications.setup_of_names(session, names=chosen)
            except HeadwaterError as exc:
                setup = exc.message
        else:
            if command.id not in setups:  # one read per command of the batch
                try:
                    setups[command.id] = applications.setup_of_command(session, command_id=command.id)
                except HeadwaterError as exc:
                    setups[command.id] = exc.message
            setup = setups[command.id]
        if isinstance(setup, str):
            return setup
        work_dir = self.jobs_dir / _safe_dir_name(job.id)
        context = JobContext(
            job_id=job.id,
            job_name=job.name,
            run_uuid=job.run_uuid,
            args=list(job.request.get("command_args", [])),
            command=list(command.executable),
            cluster_config=dict(cluster.config or {}),
        )
        try:
            launch = engine_for(cluster.type).launch(context)
        except (EngineError, OSError) as exc:
            return str(exc)
        job.work_dir = str(work_dir)
        job.host = self.host
        service.transition(job, JobStatus.INIT, f"preparing {work_dir}", session=session)
        return _Prepared(
            pk=job.pk,
            job_id=job.id,
            attempt=job.attempt,
            argv=launch.argv,
            env={
                **launch.env,
                "HEADWATER_JOB_ID": job.id,
                "HEADWATER_JOB_DIR": str(work_dir),
                "HEADWATER_JOB_ATTEMPT": str(job.attempt),
            },
            work_dir=work_dir,
            timeout=job.timeout_seconds,
            job_env={str(k): str(v) for k, v in (job.request.get("environment") or {}).items()},
            attachments=attachments,
            applications=setup,
        )

    def _launch_all(self, prepared: list[_Prepared]) -> None:
        """Start the prepared jobs' processes, then record them all RUNNING in one transaction."""
        started: list[_Running] = []
        failed: dict[int, str] = {}
        for item in prepared:
            outcome = self._launch(item)
            if isinstance(outcome, str):
                failed[item.pk] = outcome
            else:
                started.append(outcome)
        with session_scope(self.factory) as session:
            now = utcnow()
            pks = [run.pk for run in started] + list(failed)
            jobs = {job.pk: job for job in session.scalars(select(Job).where(Job.pk.in_(pks)))}
            for run in started:
                job = jobs.get(run.pk)
                if job is None or job.worker_id != self.worker_id or job.status != JobStatus.INIT.value:
                    run.kill_reason = "claimed by another worker meanwhile"
                    continue
                job.pid = run.process.pid
                job.started_at = now
                job.heartbeat_at = now
                session.add(
                    JobAttempt(
                        job_pk=job.pk,
                        attempt=run.attempt,
                        worker_id=self.worker_id,
                        host=self.host,
                        pid=run.process.pid,
                        started_at=now,
                    )
                )
                reason = f"pid {run.process.pid} on {self.host}"
                if job.max_attempts > 1:
                    reason += f" (attempt {run.attempt} of {job.max_attempts})"
                service.transition(job, JobStatus.RUNNING, reason, session=session, now=now)
                if job.kill_requested:
                    run.kill_reason = "killed by request"
            for pk, reason in failed.items():
                failed_job = jobs.get(pk)
                if failed_job is not None and failed_job.status not in {s.value for s in service.FINAL_STATUSES}:
                    service.transition(failed_job, JobStatus.FAILED, reason, session=session, now=now)
        for run in started:
            log.info("job %s started: pid %s", run.job_id, run.process.pid)

    def _launch(self, item: _Prepared) -> _Running | str:
        """Prepare the directory and start the process group; a string says why it could not start."""
        try:
            prepared = workspace.prepare_workspace(
                item.work_dir, attempt=item.attempt, attachments=item.attachments, applications=item.applications
            )
        except workspace.WorkspaceError as exc:
            return f"could not prepare the job: {exc}"
        # The job's own environment wins over its applications', which win over the engine's.
        env = {**os.environ, **item.env, **prepared.environment, **item.job_env}
        env.update({k: v for k, v in item.env.items() if k.startswith("HEADWATER_JOB_")})
        files: list[IO[bytes]] = []
        try:
            stdout = (item.work_dir / "stdout").open("wb")
            files.append(stdout)
            stderr = (item.work_dir / "stderr").open("wb")
            files.append(stderr)
        except OSError as exc:
            for handle in files:
                handle.close()
            return f"could not open its logs: {exc}"
        try:
            process = subprocess.Popen(
                item.argv,
                cwd=item.work_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # its own process group: a kill reaches every child
            )
        except OSError as exc:
            stdout.close()
            stderr.close()
            return f"could not start {item.argv[0]!r}: {exc}"
        deadline = time.monotonic() + item.timeout if item.timeout else None
        run = _Running(
            pk=item.pk,
            job_id=item.job_id,
            attempt=item.attempt,
            process=process,
            files=[stdout, stderr],
            deadline=deadline,
            pidfd=open_pidfd(process.pid),
        )
        self.running[item.pk] = run
        return run

    # -------------------------------------------------------------------------------- running

    def _enforce_kills(self) -> None:
        if not self.running:
            return
        now = time.monotonic()
        flagged: set[int] = set()
        # Kill requests come from the database; reading them every poll interval bounds how late they act.
        if now - self._last_kill_check >= self.poll_interval:
            self._last_kill_check = now
            with session_scope(self.factory) as session:
                flagged = set(
                    session.scalars(select(Job.pk).where(Job.pk.in_(list(self.running)), Job.kill_requested.is_(True)))
                )
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
            dispatch.heartbeat(session, worker_id=self.worker_id, job_pks=list(self.running))
        self._last_heartbeat = now

    def _collect_exited(self) -> None:
        """Move the processes that exited from ``running`` to the ends still to record."""
        for pk, run in list(self.running.items()):
            code = run.process.poll()
            if code is None:
                continue
            # The leader is gone; make sure nothing it started outlives it when the job was killed.
            if run.kill_reason is not None:
                kill_group(run.process.pid, signal.SIGKILL)
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
            self._ended.clear()
            for line in logged:
                log.info("%s", line)

    def _record_ends(self, session: Session) -> list[str]:
        """Record every job in ``_ended`` (kept until the transaction commits, so a failed one is retried)."""
        if not self._ended:
            return []
        pks = [run.pk for run, _ in self._ended]
        jobs = {job.pk: job for job in session.scalars(select(Job).where(Job.pk.in_(pks)))}
        # Held here so lineage recording finds them in the identity map instead of reading each again.
        clusters = list(session.scalars(select(Cluster).where(Cluster.id.in_({j.cluster_id for j in jobs.values()}))))
        commands = list(session.scalars(select(Command).where(Command.id.in_({j.command_id for j in jobs.values()}))))
        now = utcnow()
        ends = [end for run, code in self._ended if (end := self._end_of(session, jobs.get(run.pk), run, code))]
        dispatch.end_attempts(session, ends=ends, now=now)
        for job, status, reason in ends:
            service.transition(job, status, reason, session=session, now=now)
        service.notify_workers(session)  # a cluster slot is free
        del clusters, commands
        return [f"job {job.id} ended {status.value} (exit code {job.exit_code})" for job, status, _ in ends]

    def _end_of(self, session: Session, job: Job | None, run: _Running, code: int) -> tuple[Job, JobStatus, str] | None:
        """How the job ended, or None when it is no longer this worker's to record."""
        if (
            job is None
            or job.status in {s.value for s in service.FINAL_STATUSES}
            or job.worker_id != self.worker_id
            or job.attempt != run.attempt
        ):
            return None  # reaped meanwhile (this worker was presumed lost), perhaps re-queued and run elsewhere
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
            try:
                reason = _record_lineage(session, job) or reason
            except Exception as exc:  # several jobs end in one transaction: one's lineage must not undo the rest
                log.exception("job %s: recording its lineage failed", run.job_id)
                reason = f"exit code 0; lineage not recorded: {exc}"
        return job, status, reason


def _record_lineage(session: Session, job: Job) -> str | None:
    """Declared datasets, and a SQL job's tables and column lineage, become lineage of the run; problems are noted."""
    from headwater.jobs.sql_lineage import JobSqlError, find_job_sql, sql_job_lineage
    from headwater.lineage.ingest import ingest_events

    inputs: list[dict[str, str]] = list(job.request.get("inputs") or [])
    outputs: list[dict[str, str]] = list(job.request.get("outputs") or [])
    notes: list[str] = []
    job_facets: dict[str, object] = {}
    cluster = session.get(Cluster, job.cluster_id) if job.cluster_id else None
    command = session.get(Command, job.command_id) if job.command_id else None
    if cluster is not None and command is not None:
        try:
            job_sql = find_job_sql(
                cluster_type=cluster.type,
                command=list(command.executable),
                args=list(job.request.get("command_args") or []),
                work_dir=Path(job.work_dir) if job.work_dir else None,
            )
        except JobSqlError as exc:
            job_sql = None
            notes.append(str(exc))
        if job_sql is not None:
            namespace = (cluster.config or {}).get("lineage_namespace")
            declared = [(d["namespace"], d["name"]) for d in [*inputs, *outputs]]
            found = sql_job_lineage(
                session, job_sql=job_sql, namespace=namespace if isinstance(namespace, str) else None, declared=declared
            )
            notes += found.warnings
            known = set(declared)
            inputs += [{"namespace": ns, "name": name} for ns, name in found.inputs if (ns, name) not in known]
            outputs += [{"namespace": ns, "name": name} for ns, name in found.outputs if (ns, name) not in known]
            if found.query:
                job_facets["sql"] = {
                    "_producer": PRODUCER,
                    "_schemaURL": "https://openlineage.io/spec/facets/1-1-0/SQLJobFacet.json",
                    "query": found.query,
                    "dialect": job_sql.dialect,
                }
    if not inputs and not outputs:
        return ("exit code 0; " + "; ".join(notes)[:2000]) if notes else None
    now = utcnow()
    started = job.started_at or now
    base: dict[str, object] = {"producer": PRODUCER, "run": {"runId": job.run_uuid}}
    identity: dict[str, object] = {"namespace": "headwater", "name": job.name}
    events = [
        {**base, "job": identity, "eventType": "START", "eventTime": started.isoformat()},
        {
            **base,
            "job": {**identity, "facets": job_facets},
            "eventType": "COMPLETE",
            "eventTime": now.isoformat(),
            "inputs": inputs,
            "outputs": outputs,
        },
    ]
    try:
        with session.begin_nested():
            result = ingest_events(session, documents=events)
    except HeadwaterError as exc:
        return f"exit code 0; lineage not recorded: {exc.message}"
    notes += result.warnings
    if notes:
        return "exit code 0; lineage warnings: " + "; ".join(notes)[:2000]
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
        self.worker.poll_interval = self.interval
        self.worker.serve(self._stop)
