"""A job's processes on the worker's host: starting one as its own process group in its directory with its logs,
and signalling the whole group (kills, timeouts, orphans of a lost worker).

Nothing here touches the database: the worker records what these functions did.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from headwater.jobs import workspace
from headwater.jobs.applications import AppSetup
from headwater.jobs.wakeup import open_pidfd

__all__ = ["PreparedJob", "RunningJob", "cancel_outside", "kill_group", "runs_job", "safe_dir_name", "start_process"]

log = logging.getLogger("headwater.jobs.processes")


@dataclass
class PreparedJob:
    """Everything needed to start one claimed job, known before anything is written."""

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
    cancel: Callable[[Path], object] | None = None


@dataclass
class RunningJob:
    """A started job: its process (the leader of its group), open log files, deadline and kill state."""

    pk: int
    job_id: str
    attempt: int
    process: subprocess.Popen[bytes]
    files: list[IO[bytes]]
    deadline: float | None
    work_dir: Path
    cancel: Callable[[Path], object] | None = None
    pidfd: int | None = None
    kill_reason: str | None = None
    kill_sent_at: float | None = None


def kill_group(pgid: int, sig: int) -> None:
    """Signal a whole process group; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def runs_job(pid: int, job_id: str) -> bool:
    """Whether process ``pid`` is still the leader of job ``job_id`` (its environment names the job), so a
    reused pid is never killed."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"HEADWATER_JOB_ID={job_id}".encode() in environ.split(b"\x00")


def cancel_outside(run: RunningJob) -> None:
    """End what a job being killed started outside its process group (its engine's ``cancel``), at most once."""
    cancel, run.cancel = run.cancel, None
    if cancel is None:
        return
    try:
        cancel(run.work_dir)
    except Exception:  # the kill of the process group must happen all the same
        log.exception("job %s: cancelling what it started outside its processes failed", run.job_id)


def safe_dir_name(job_id: str) -> str:
    """The name of a job's directory under the jobs directory."""
    # Job ids are validated to [A-Za-z0-9._-]; this guards against "." and ".." all the same.
    return job_id if job_id not in {".", ".."} else f"_{job_id}"


def start_process(item: PreparedJob, fetch: Callable[[str], Path] | None = None) -> RunningJob | str:
    """Prepare the directory (``fetch`` gives the local copy of an application file named by URL) and start the
    process group; a string says why it could not start."""
    try:
        prepared = workspace.prepare_workspace(
            item.work_dir,
            attempt=item.attempt,
            attachments=item.attachments,
            applications=item.applications,
            fetch=fetch,
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
    return RunningJob(
        pk=item.pk,
        job_id=item.job_id,
        attempt=item.attempt,
        process=process,
        files=[stdout, stderr],
        deadline=deadline,
        work_dir=item.work_dir,
        cancel=item.cancel,
        pidfd=open_pidfd(process.pid),
    )
