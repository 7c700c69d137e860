"""A job's working directory: preparing it (attachments, application files), reading it (output listing,
downloads, live log tails) and removing it after the retention period (archiving its logs when asked).

Database functions take ``session`` keyword-only and flush only; the file-system steps are idempotent so a
pass interrupted half-way is finished by the next one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import logging
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.db import utcnow
from headwater.egress import EgressRefused, default_policy
from headwater.errors import InvalidInput, NotFound
from headwater.jobs.applications import AppSetup
from headwater.jobs.drivers.base import APP_RECORD, DRIVER_LOGS_DIR
from headwater.jobs.files import FileFetchError, file_name, is_remote
from headwater.jobs.lineage_hook import EVENTS_FILE
from headwater.jobs.models import FINAL_STATUSES, Job, JobAttachment, JobStatus
from headwater.jobs.schemas import OutputEntry
from headwater.jobs.service import get_job

__all__ = [
    "LOG_STREAMS",
    "archive_file",
    "LogChunk",
    "MissingFile",
    "PreparedWorkspace",
    "WorkspaceError",
    "attachments_of_jobs",
    "check_relative",
    "clean_expired_jobs",
    "inside",
    "list_directory",
    "list_output",
    "read_range",
    "output_file",
    "prepare_workspace",
    "read_log",
]

log = logging.getLogger("headwater.jobs.workspace")

MAX_OUTPUT_ENTRIES = 1000
LOG_STREAMS = ("stdout", "stderr")
MAX_LOG_CHUNK = 1024 * 1024


class WorkspaceError(Exception):
    """The job directory could not be prepared (an application file missing, a disk error)."""


# ------------------------------------------------------------------------------------- reading


def _job_dir(job: Job) -> Path:
    if job.cleaned_at is not None:
        archived = f"; its logs were archived to {job.archive_path}" if job.archive_path else ""
        raise NotFound(f"job {job.id!r}'s directory was removed after the retention period{archived}")
    if not job.work_dir:
        raise NotFound(f"job {job.id!r} has no working directory yet (status {job.status})")
    return Path(job.work_dir).resolve()


def list_output(session: Session, *, job_id: str) -> list[OutputEntry]:
    """Files and directories under the job's working directory (at most MAX_OUTPUT_ENTRIES)."""
    return list_directory(_job_dir(get_job(session, job_id=job_id)))


def list_directory(root: Path) -> list[OutputEntry]:
    """Files and directories under a job directory ``root`` (at most MAX_OUTPUT_ENTRIES), links left out."""
    entries: list[OutputEntry] = []
    if not root.is_dir():
        return entries
    for path in sorted(root.rglob("*")):
        if len(entries) >= MAX_OUTPUT_ENTRIES:
            break
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            continue  # a job's symlinks may point anywhere; they are not served
        if path.is_dir():
            entries.append(OutputEntry(path=relative, type="directory", size=None))
        elif path.is_file():
            entries.append(OutputEntry(path=relative, type="file", size=path.stat().st_size))
    return entries


def check_relative(path: str) -> str:
    """``path`` if it names something inside a job directory (relative, no ``..``, no NUL or backslash); else
    InvalidInput."""
    if not path or path.startswith("/") or "\x00" in path or ".." in Path(path).parts or "\\" in path:
        raise InvalidInput(
            f"path {path!r} must be relative to the job directory, without '..'", detail={"field": "path"}
        )
    return path


def inside(root: Path, path: str) -> Path:
    """The resolved ``root / path``, refused (InvalidInput) when a link or ``..`` takes it out of ``root``."""
    target = (root / check_relative(path)).resolve()
    if not target.is_relative_to(root):
        raise InvalidInput(f"path {path!r} leaves the job directory", detail={"field": "path"})
    return target


def output_file(session: Session, *, job_id: str, path: str) -> Path:
    """The file ``path`` inside the job's working directory; anything that would leave it is refused."""
    target = inside(_job_dir(get_job(session, job_id=job_id)), path)
    if not target.is_file():
        raise NotFound(f"job {job_id!r} has no file {path!r}", detail={"field": "path"})
    return target


def _opened_inside(handle: IO[bytes], root: Path) -> bool:
    """Whether the file behind ``handle`` is inside ``root`` (Linux tells the path it opened; elsewhere, trusted)."""
    try:
        opened = Path(os.readlink(f"/proc/self/fd/{handle.fileno()}"))
    except OSError:
        return True
    return opened.is_relative_to(root)


class MissingFile(NotFound):
    """A job directory has no file at that path (yet: a log appears when its job starts)."""


def read_range(root: Path, path: str, *, offset: int, length: int) -> tuple[bytes, int]:
    """Up to ``length`` (at most MAX_LOG_CHUNK) bytes of the regular file ``path`` of job directory ``root`` from
    ``offset``, and the file's size; NotFound when it is missing or not served (a link, a FIFO), InvalidInput when
    the path leaves ``root`` or ``offset`` is past the end."""
    target = inside(root, path)
    try:
        handle = open_job_file(target)
    except FileNotFoundError:
        raise MissingFile(f"the job has no file {path!r}", detail={"field": "path"}) from None
    except NotRegularFile:
        raise NotFound(f"{path!r} is not a regular file, which is not served", detail={"field": "path"}) from None
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        raise NotFound(f"{path!r} is a symbolic link, which is not served", detail={"field": "path"}) from None
    with handle:
        if not _opened_inside(handle, root):  # a folder on the way swapped for a link after the check above
            raise InvalidInput(f"path {path!r} leaves the job directory", detail={"field": "path"})
        size = os.fstat(handle.fileno()).st_size
        if offset > size:
            raise InvalidInput(f"offset {offset} is past the end of {path} ({size} bytes)", detail={"field": "offset"})
        handle.seek(offset)
        return handle.read(max(0, min(length, MAX_LOG_CHUNK, size - offset))), size


@dataclass(frozen=True)
class LogChunk:
    """Bytes of a job's log from an offset, where to continue, and whether more can ever come."""

    data: bytes
    offset: int
    next_offset: int
    size: int
    status: JobStatus
    finished: bool


def read_log(session: Session, *, job_id: str, stream: str, offset: int, limit: int = MAX_LOG_CHUNK) -> LogChunk:
    """Up to ``limit`` bytes of the job's ``stream`` from ``offset``: the live tail while it runs.

    ``finished`` is true once the job is final: its worker closed the file before recording the end, so
    nothing is written after that and a client that reached ``size`` has everything.
    """
    if stream not in LOG_STREAMS:
        raise NotFound(f"no log {stream!r}; the logs are {', '.join(LOG_STREAMS)}", detail={"field": "stream"})
    if offset < 0:
        raise InvalidInput(f"offset {offset} must be 0 or more", detail={"field": "offset"})
    job = get_job(session, job_id=job_id)
    status = JobStatus(job.status)
    finished = status in FINAL_STATUSES
    if job.work_dir is None and job.cleaned_at is None:
        return LogChunk(data=b"", offset=offset, next_offset=offset, size=0, status=status, finished=finished)
    path = _job_dir(job) / stream
    data, size = b"", 0
    with contextlib.suppress(FileNotFoundError), _open_log(path, job_id, stream) as handle:
        size = os.fstat(handle.fileno()).st_size
        handle.seek(min(offset, size))
        data = handle.read(max(0, min(limit, MAX_LOG_CHUNK, size - offset)))
    if offset > size:
        raise InvalidInput(f"offset {offset} is past the end of {stream} ({size} bytes)", detail={"field": "offset"})
    return LogChunk(
        data=data, offset=offset, next_offset=offset + len(data), size=size, status=status, finished=finished
    )


class NotRegularFile(OSError):
    """A file of a job's directory that is a FIFO, a device or a directory: never read."""


def open_job_file(path: Path) -> IO[bytes]:
    """A file of a job's directory, opened for reading only if it is a regular file reached without following a link:
    a job owns its directory (run as another user) and could swap a file for a link to one the server can read, or a
    FIFO that would block the reader. A link raises OSError (ELOOP), anything else not regular NotRegularFile."""
    handle = open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb")  # noqa: SIM115
    if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
        handle.close()
        raise NotRegularFile(f"{path.name} is not a regular file")
    return handle


def _open_log(path: Path, job_id: str, stream: str) -> IO[bytes]:
    """The log file, if it is a regular file (:func:`open_job_file`); else NotFound saying why it is not served."""
    try:
        return open_job_file(path)
    except NotRegularFile:
        raise NotFound(f"job {job_id!r}'s {stream} is not a regular file, which is not served") from None
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise NotFound(f"job {job_id!r}'s {stream} is a symbolic link, which is not served") from None


def archive_file(session: Session, *, job_id: str) -> Path:
    """The tarball a job's logs were archived to."""
    job = get_job(session, job_id=job_id)
    if job.archive_path is None or not Path(job.archive_path).is_file():
        raise NotFound(
            f"job {job_id!r} has no log archive: it is made when retention removes the directory of a job "
            "submitted with archive_logs=true"
        )
    return Path(job.archive_path)


# ------------------------------------------------------------------------------------ preparing


def attachments_of_jobs(session: Session, *, job_pks: list[int]) -> dict[int, list[tuple[str, bytes]]]:
    """The files submitted with each job, by job (one read; bounded by the submission limits)."""
    found: dict[int, list[tuple[str, bytes]]] = {}
    if not job_pks:
        return found
    rows = session.execute(
        select(JobAttachment.job_pk, JobAttachment.name, JobAttachment.content)
        .where(JobAttachment.job_pk.in_(job_pks))
        .order_by(JobAttachment.id)
        .limit(len(job_pks) * 1000)
    )
    for pk, name, content in rows:
        found.setdefault(pk, []).append((name, bytes(content)))
    return found


@dataclass(frozen=True)
class PreparedWorkspace:
    """The directory made ready for one attempt, and the environment its applications set."""

    path: Path
    environment: dict[str, str]


def prepare_workspace(
    work_dir: Path,
    *,
    attempt: int,
    attachments: Sequence[tuple[str, bytes]],
    applications: Sequence[AppSetup],
    fetch: Callable[[str], Path] | None = None,
) -> PreparedWorkspace:
    """Create the job directory: earlier attempts' logs moved aside, attachments written, application
    files copied to ``applications/<name>/`` (``fetch`` gives the local copy of an http(s) URL, and the checked
    path of a local file; without it local files are checked by the process's egress policy) and their
    environment resolved (``{app_dir}`` substituted).
    """
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        if attempt > 1:
            _keep_previous_logs(work_dir, attempt - 1)
        for name, content in attachments:
            target = work_dir / name
            target.unlink(missing_ok=True)  # never write through a link an earlier attempt left there
            target.write_bytes(content)
        environment: dict[str, str] = {}
        if applications:
            environment["HEADWATER_APPLICATIONS_DIR"] = str(work_dir / "applications")
        for app in applications:
            app_dir = work_dir / "applications" / app.name
            app_dir.mkdir(parents=True, exist_ok=True)
            for ref in app.files:
                if is_remote(ref):
                    if fetch is None:
                        raise WorkspaceError(f"application {app.name!r} needs {ref}, and this worker fetches no URLs")
                    _link_in(_fetched(fetch, ref, app.name), app_dir)
                else:
                    # A local file is read only from a directory the egress policy allows (the resolved path).
                    _copy_in(_fetched(fetch or _local_file, ref, app.name), app_dir, app.name, file_name(ref))
            for key, value in app.environment.items():
                environment[key] = value.replace("{app_dir}", str(app_dir))
    except OSError as exc:
        raise WorkspaceError(f"could not prepare {work_dir}: {exc}") from exc
    return PreparedWorkspace(path=work_dir, environment=environment)


def _keep_previous_logs(work_dir: Path, previous: int) -> None:
    # The same host ran the earlier attempt: keep its logs (and its lineage hook's events, already recorded on
    # its run; its cluster application's record and driver logs, which must not pass for the new attempt's)
    # beside the new ones rather than overwrite them or read them again.
    names = (*LOG_STREAMS, EVENTS_FILE, APP_RECORD, DRIVER_LOGS_DIR)
    present = [work_dir / name for name in names if (work_dir / name).exists() or (work_dir / name).is_symlink()]
    if not present:
        return
    target = work_dir / "attempts" / str(previous)
    target.mkdir(parents=True, exist_ok=True)
    for path in present:
        path.replace(target / path.name)


def _fetched(fetch: Callable[[str], Path], url: str, app_name: str) -> Path:
    try:
        return fetch(url)
    except FileFetchError as exc:
        raise WorkspaceError(f"application {app_name!r}: {exc}") from exc


def _local_file(ref: str) -> Path:
    try:
        return default_policy().check_file(ref)
    except EgressRefused as exc:
        raise FileFetchError(exc.message) from None


def _link_in(cached: Path, app_dir: Path) -> None:
    # A hard link to the host's cached copy costs no space; a copy when the cache is on another file system.
    target = app_dir / cached.name
    target.unlink(missing_ok=True)  # a retry on the same host: take the copy just revalidated
    try:
        os.link(cached, target)
    except OSError:
        shutil.copy2(cached, target)


def _copy_in(source: Path, app_dir: Path, app_name: str, name: str) -> None:
    target = app_dir / name
    if target.exists():
        return  # a retry on the same host already copied it
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True)
    elif source.is_file():
        shutil.copy2(source, target)
    else:
        raise WorkspaceError(f"application {app_name!r} needs {str(source)!r}, which does not exist on this host")


# ------------------------------------------------------------------------------------ retention


def clean_expired_jobs(
    session: Session,
    *,
    host: str,
    jobs_dir: Path,
    retention: dt.timedelta,
    archive_dir: Path,
    now: dt.datetime | None = None,
    limit: int = 100,
) -> list[str]:
    """Remove the directories of finished jobs older than ``retention`` that ran on this host under
    ``jobs_dir``, archiving their logs first when the job asked for it; the ids of the jobs cleaned.
    """
    now = now or utcnow()
    stmt = (
        select(Job)
        .where(
            Job.host == host,
            Job.finished_at < now - retention,
            Job.cleaned_at.is_(None),
            Job.work_dir.is_not(None),
            Job.status.in_([s.value for s in FINAL_STATUSES]),
        )
        .order_by(Job.finished_at, Job.pk)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    root = jobs_dir.resolve()
    cleaned: list[str] = []
    for job in session.scalars(stmt):
        assert job.work_dir is not None
        work_dir = Path(job.work_dir).resolve()
        if not work_dir.is_relative_to(root) or work_dir == root:
            continue  # another worker's directory on this host: that worker cleans it
        if job.archive_logs and work_dir.is_dir():
            job.archive_path = str(_archive_logs(job.id, work_dir, archive_dir))
        shutil.rmtree(work_dir, ignore_errors=True)
        job.cleaned_at = now
        cleaned.append(job.id)
    session.flush()
    return cleaned


def _archive_logs(job_id: str, work_dir: Path, archive_dir: Path) -> Path:
    """stdout, stderr, the driver's logs of a job on a cluster manager, and earlier attempts' logs as
    ``<archive_dir>/<job id>.tar.gz`` (written atomically); nothing reached through a symbolic link."""
    archive_dir.mkdir(parents=True, exist_ok=True)
    target = archive_dir / f"{job_id}.tar.gz"
    partial = target.with_name(target.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        for name in LOG_STREAMS:
            if (work_dir / name).is_file():
                tar.add(work_dir / name, arcname=f"{job_id}/{name}")
        for path in _driver_logs(work_dir):
            tar.add(path, arcname=f"{job_id}/{path.relative_to(work_dir).as_posix()}")
        attempts = work_dir / "attempts"
        if attempts.is_dir() and not attempts.is_symlink():
            for path in sorted(attempts.glob("*/*")):
                if path.is_file() and not path.is_symlink() and path.name in LOG_STREAMS:
                    tar.add(path, arcname=f"{job_id}/attempts/{path.relative_to(attempts).as_posix()}")
                if path.name == DRIVER_LOGS_DIR and not path.parent.is_symlink():
                    for log in _driver_logs(path.parent):
                        tar.add(log, arcname=f"{job_id}/attempts/{log.relative_to(attempts).as_posix()}")
    partial.replace(target)
    return target


def _driver_logs(work_dir: Path) -> list[Path]:
    """The driver logs fetched into ``work_dir`` (regular files in a real directory: the job may have made links)."""
    folder = work_dir / DRIVER_LOGS_DIR
    if folder.is_symlink() or not folder.is_dir():
        return []
    return [folder / name for name in LOG_STREAMS if (folder / name).is_file() and not (folder / name).is_symlink()]
