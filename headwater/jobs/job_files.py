"""Reading a job's files wherever they are: its directory when this host can read it, else the worker on the job's
host asked through the database (:mod:`relay`), else the copy in the database (:mod:`archive`).

What the output listing, download and log routes call (docs/concepts/jobs.md#where-a-jobs-files-live). Every
database step is a short transaction in a worker thread; no connection is held while a worker is awaited.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread
import orjson
from sqlalchemy.orm import Session, sessionmaker

from headwater.db import session_scope
from headwater.errors import HeadwaterError, InvalidInput, JobFilesUnavailable, NotFound
from headwater.jobs import archive, relay, workspace
from headwater.jobs.models import FINAL_STATUSES, JobStatus
from headwater.jobs.schemas import OutputEntry
from headwater.jobs.service import get_job
from headwater.jobs.workspace import LOG_STREAMS, MAX_LOG_CHUNK, LogChunk
from headwater.settings import Settings

__all__ = ["FileAccess", "RemoteFile", "follow_log", "list_output", "output_file", "read_log"]

log = logging.getLogger("headwater.jobs.job_files")

T = TypeVar("T")


@dataclass(frozen=True)
class FileAccess:
    """Where this process stands: its host name, whether every host's job directories are visible here, and how
    long it waits for another host's worker."""

    host: str
    shared_work_dirs: bool = False
    timeout: float = 10.0
    listen: bool = True  # wait for answers with LISTEN (not behind a transaction-pooling proxy)

    @classmethod
    def from_settings(cls, settings: Settings) -> FileAccess:
        """As the ``HEADWATER_JOBS_*`` settings say."""
        return cls(
            host=settings.jobs_host or socket.gethostname(),
            shared_work_dirs=settings.jobs_shared_work_dirs,
            timeout=settings.jobs_remote_files_timeout,
            listen=settings.jobs_listen,
        )


@dataclass(frozen=True)
class _Job:
    """What deciding where a job's files are read from needs, read in one short transaction."""

    id: str
    pk: int
    host: str | None
    status: JobStatus
    local: bool  # its directory is readable here (or it has none, or retention removed it: the local rules apply)
    archived_at: dt.datetime | None
    not_archived: int | None

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES


async def _in_thread(factory: sessionmaker[Session], fn: Callable[[Session], T]) -> T:
    def step() -> T:
        with session_scope(factory) as session:
            return fn(session)

    return await anyio.to_thread.run_sync(step)


def _load(session: Session, job_id: str, access: FileAccess) -> _Job:
    job = get_job(session, job_id=job_id)
    local = job.work_dir is None or job.cleaned_at is not None
    if not local and (job.host in (None, access.host) or access.shared_work_dirs):
        local = Path(job.work_dir or "").is_dir()
    return _Job(
        id=job.id,
        pk=job.pk,
        host=job.host,
        status=JobStatus(job.status),
        local=local,
        archived_at=job.files_archived_at,
        not_archived=job.files_not_archived,
    )


def _unavailable(job: _Job, access: FileAccess, what: str) -> JobFilesUnavailable:
    if job.archived_at is not None:
        kept = (
            f"its files were archived in the database when it ended ({job.not_archived or 0} left out over "
            f"HEADWATER_JOBS_DB_ARCHIVE_MAX_BYTES), and {what} is not among them"
        )
    elif job.finished:
        kept = (
            "no archive of its files is in the database (its worker stopped before making one, or retention removed it)"
        )
    else:
        kept = "its files are archived in the database once it ends"
    return JobFilesUnavailable(
        f"the worker on host {job.host} that holds job {job.id!r}'s files did not answer within {access.timeout:g} s; "
        f"it may be down. {kept[0].upper()}{kept[1:]}.",
        detail={"host": job.host, "job_id": job.id},
    )


def _raise_for(answer: relay.Answer) -> None:
    if answer.error_status is None:
        return
    error = InvalidInput if answer.error_status == 400 else NotFound
    raise error(answer.error or "the worker could not read the file", detail={"field": "path"})


async def list_output(factory: sessionmaker[Session], access: FileAccess, *, job_id: str) -> list[OutputEntry]:
    """The files and folders of the job's directory (at most 1000), from wherever they can be read."""
    job = await _in_thread(factory, lambda s: _load(s, job_id, access))
    if job.local:
        return await _in_thread(factory, lambda s: workspace.list_output(s, job_id=job_id))
    if job.finished and job.archived_at is not None and not job.not_archived:
        return await _in_thread(factory, lambda s: archive.archived_listing(s, job_pk=job.pk))
    try:
        answer = await relay.ask(
            factory, job_pk=job.pk, host=job.host or "", kind="list", timeout=access.timeout, listen=access.listen
        )
    except relay.NoAnswer:
        if job.archived_at is not None:  # what the archive holds; the files over its cap stay on the host
            return await _in_thread(factory, lambda s: archive.archived_listing(s, job_pk=job.pk))
        raise _unavailable(job, access, "the listing") from None
    _raise_for(answer)
    return [OutputEntry.model_validate(entry) for entry in orjson.loads(answer.data or b"[]")]


async def _read(
    factory: sessionmaker[Session], access: FileAccess, job: _Job, path: str, offset: int, length: int
) -> tuple[bytes, int] | None:
    """Bytes of a file of a job whose directory this host cannot read, and its size; None when it has no such file
    (yet). The archive first for a finished job (it cannot change), else the worker, else the archive."""

    def from_archive(session: Session) -> tuple[bytes, int] | None:
        found = archive.archived_file(session, job_pk=job.pk, path=path)
        if found is None:
            return None
        size = found.size or 0
        if offset > size:
            raise InvalidInput(f"offset {offset} is past the end of {path} ({size} bytes)", detail={"field": "offset"})
        return archive.read_archived(session, file=found, offset=offset, length=min(length, MAX_LOG_CHUNK)), size

    if job.finished and job.archived_at is not None:
        archived = await _in_thread(factory, from_archive)
        if archived is not None or not job.not_archived:
            return archived  # the archive holds every file it had (but applications/), so None is "no such file"
    try:
        answer = await relay.ask(
            factory, job_pk=job.pk, host=job.host or "", kind="read", path=path, offset=offset, length=length,
            timeout=access.timeout, listen=access.listen,
        )  # fmt: skip
    except relay.NoAnswer:
        archived = await _in_thread(factory, from_archive) if job.archived_at is not None else None
        if archived is None:
            raise _unavailable(job, access, repr(path)) from None
        return archived
    _raise_for(answer)
    return None if answer.size is None else (answer.data, answer.size)


@dataclass(frozen=True)
class RemoteFile:
    """A file of a job directory on another host (or in the archive): its size, and how to read a range of it."""

    name: str
    size: int
    read: Callable[[int, int], Awaitable[bytes]]


async def output_file(
    factory: sessionmaker[Session], access: FileAccess, *, job_id: str, path: str
) -> Path | RemoteFile:
    """The file ``path`` of the job's directory: its local path when this host can read it, else a RemoteFile."""
    workspace.check_relative(path)
    job = await _in_thread(factory, lambda s: _load(s, job_id, access))
    if job.local:
        return await _in_thread(factory, lambda s: workspace.output_file(s, job_id=job_id, path=path))
    first = await _read(factory, access, job, path, 0, 1)
    if first is None:
        raise NotFound(f"job {job_id!r} has no file {path!r}", detail={"field": "path"})

    async def read(offset: int, length: int) -> bytes:
        found = await _read(factory, access, job, path, offset, length)
        if found is None:
            raise NotFound(f"job {job_id!r}'s file {path!r} was removed while it was read")
        return found[0]

    return RemoteFile(name=Path(path).name, size=first[1], read=read)


async def read_log(
    factory: sessionmaker[Session],
    access: FileAccess,
    *,
    job_id: str,
    stream: str,
    offset: int,
    limit: int = MAX_LOG_CHUNK,
) -> LogChunk:
    """Up to ``limit`` bytes of the job's ``stream`` from ``offset`` (:func:`workspace.read_log`), wherever it is."""
    if stream not in LOG_STREAMS:
        raise NotFound(f"no log {stream!r}; the logs are {', '.join(LOG_STREAMS)}", detail={"field": "stream"})
    if offset < 0:
        raise InvalidInput(f"offset {offset} must be 0 or more", detail={"field": "offset"})
    job = await _in_thread(factory, lambda s: _load(s, job_id, access))
    if job.local:
        return await _in_thread(
            factory, lambda s: workspace.read_log(s, job_id=job_id, stream=stream, offset=offset, limit=limit)
        )
    found = await _read(factory, access, job, stream, offset, limit)
    data, size = found if found is not None else (b"", 0)
    if offset > size:
        raise InvalidInput(f"offset {offset} is past the end of {stream} ({size} bytes)", detail={"field": "offset"})
    return LogChunk(
        data=data, offset=offset, next_offset=offset + len(data), size=size, status=job.status, finished=job.finished
    )


async def follow_log(
    factory: sessionmaker[Session],
    access: FileAccess,
    *,
    job_id: str,
    stream: str,
    offset: int,
    poll_seconds: float = 0.25,
    max_seconds: float = 3600.0,
) -> AsyncIterator[bytes]:
    """The log's bytes from ``offset`` as they are written, until the job is final (or ``max_seconds`` pass: the
    client then continues from the offset it reached), wherever the log is."""
    deadline = time.monotonic() + max_seconds
    while True:
        try:
            chunk = await read_log(factory, access, job_id=job_id, stream=stream, offset=offset)
        except HeadwaterError as exc:  # retention removed it, its host stopped answering: end the body cleanly
            log.info("log stream of job %s ended: %s", job_id, exc.message)
            return
        if chunk.data:
            offset = chunk.next_offset
            yield chunk.data
            continue  # drain what is there before sleeping
        if chunk.finished or time.monotonic() >= deadline:
            return
        await anyio.sleep(poll_seconds)
