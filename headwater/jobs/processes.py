"""A job's processes on the worker's host: starting one (through :mod:`launcher`, as its own process group, in its
private directory, with its logs and its allowlisted environment: :mod:`isolation`), and signalling the whole
group and every descendant of its leader (kills, timeouts, orphans of a lost worker).

Nothing here touches the database: the worker records what these functions did.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

import headwater
from headwater.jobs import workspace
from headwater.jobs.applications import AppSetup
from headwater.jobs.isolation import Identity, JobIsolation, RunAsError, secure_work_dir
from headwater.jobs.wakeup import open_pidfd

__all__ = [
    "PreparedJob",
    "RunningJob",
    "cancel_outside",
    "kill_group",
    "runs_job",
    "safe_dir_name",
    "start_process",
]

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
    uid: int | None = None  # the run-as uid its processes have, when it is not the worker's


# The launcher's own import path: the headwater package this worker runs (a source checkout, or site-packages).
_PACKAGE_ROOT = str(Path(headwater.__file__).resolve().parents[1])


def kill_group(pgid: int, sig: int) -> None:
    """Signal a job: its whole process group and every descendant of its leader ``pgid`` (those that left the
    group with ``setsid`` too; the launcher keeps them its descendants). A group already gone is fine."""
    try:
        descendants = psutil.Process(pgid).children(recursive=True)
    except psutil.Error:
        descendants = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for process in descendants:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)  # psutil checks the pid still names the process found


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


def start_process(
    item: PreparedJob,
    fetch: Callable[[str], Path] | None = None,
    *,
    isolation: JobIsolation | None = None,
    in_use: Collection[int] = (),
    grace: float = 5.0,
) -> RunningJob | str:
    """Prepare the directory (``fetch`` gives the local copy of an application file named by URL), make it private
    and start the job's launcher as a process group (as a run-as identity not in ``in_use`` when ``isolation`` has
    one; ``grace``: seconds between SIGTERM and SIGKILL for what the job leaves behind); a string says why it
    could not start."""
    isolation = isolation or JobIsolation()
    try:
        _drop_links(item.work_dir)
        prepared = workspace.prepare_workspace(
            item.work_dir,
            attempt=item.attempt,
            attachments=item.attachments,
            applications=item.applications,
            fetch=fetch,
        )
        identity = isolation.identity(in_use)
    except workspace.WorkspaceError as exc:
        return f"could not prepare the job: {exc}"
    except RunAsError as exc:
        return f"could not start the job: {exc}"
    except OSError as exc:
        return f"could not prepare the job: {exc}"
    # The job's own environment wins over its applications', which win over the engine's.
    declared = {**item.env, **prepared.environment, **item.job_env}
    declared.update({k: v for k, v in item.env.items() if k.startswith("HEADWATER_JOB_")})
    env = isolation.environment(declared, work_dir=item.work_dir, identity=identity)
    missing = _missing_program(item.argv[0], item.work_dir, env.get("PATH", os.defpath))
    if missing:
        return missing
    files: list[IO[bytes]] = []
    try:
        stdout = (item.work_dir / "stdout").open("wb")
        files.append(stdout)
        stderr = (item.work_dir / "stderr").open("wb")
        files.append(stderr)
        secure_work_dir(item.work_dir, identity)
    except OSError as exc:
        for handle in files:
            handle.close()
        return f"could not open its logs: {exc}"
    try:
        process = _launch(item, env, identity, grace, stdout, stderr)
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
        uid=identity.uid if identity is not None else None,
    )


def _drop_links(work_dir: Path) -> None:
    """Remove the symbolic links an earlier attempt left where preparing writes (its logs, attachments,
    ``applications/<name>``, ``attempts/<n>/``): the worker must never write through a link a job made."""
    if not work_dir.is_dir() or work_dir.is_symlink():
        return
    for pattern in ("*", "applications/*", "attempts/*", "attempts/*/*"):
        for path in work_dir.glob(pattern):
            if path.is_symlink():
                path.unlink()


def _missing_program(program: str, work_dir: Path, path: str) -> str | None:
    """Why ``program`` cannot be started, when it is not an executable file (the launcher would only exit 127)."""
    if "/" in program:
        target = work_dir / program
        found = target.is_file() and os.access(target, os.X_OK)
    else:
        found = shutil.which(program, path=path) is not None
    if found:
        return None
    where = "" if "/" in program else f" on PATH ({path})"
    return f"could not start {program!r}: no such executable file{where}"


def _launch(
    item: PreparedJob,
    env: dict[str, str],
    identity: Identity | None,
    grace: float,
    stdout: IO[bytes],
    stderr: IO[bytes],
) -> subprocess.Popen[bytes]:
    """Start :mod:`headwater.jobs.launcher` for the job, its environment on stdin (never in the launcher's own)."""
    argv = [sys.executable, "-s", "-P", "-m", "headwater.jobs.launcher", "--work-dir", str(item.work_dir)]
    argv += ["--grace", str(grace)]
    if identity is not None:
        argv += ["--uid", str(identity.uid), "--gid", str(identity.gid)]
    # Only what finds the launcher's code and marks the leader as the job's (runs_job reads it).
    launcher_env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "PYTHONPATH": _PACKAGE_ROOT,
        **{k: v for k, v in env.items() if k.startswith("HEADWATER_JOB_")},
    }
    with tempfile.TemporaryFile() as environment:
        environment.write(json.dumps(env).encode())
        environment.seek(0)
        return subprocess.Popen(
            [*argv, "--", *item.argv],
            cwd="/",  # never the job's directory: nothing the job put there is on the launcher's import path
            env=launcher_env,
            stdin=environment,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group: a kill reaches every child
        )
