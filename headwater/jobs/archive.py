"""A finished job's files kept in the database, so they stay readable when its worker host goes away.

When a job ends, the worker that ran it copies its logs (``stdout``, ``stderr``, a ``driver/`` folder, earlier
attempts' logs) and then its other files, in path order, into ``job_archived_files`` and ``job_archive_chunks``:
each file zlib-compressed in chunks of at most 1 MiB, up to ``HEADWATER_JOBS_DB_ARCHIVE_MAX_BYTES`` (uncompressed)
per job. A file that does not fit the rest of the allowance is left out whole (counted in
``jobs.files_not_archived``), never cut. ``applications/`` (copies of the command's files) is never archived.
The archive is removed with the job's directory, ``HEADWATER_JOBS_RETENTION_DAYS`` after it finished (by any
worker's housekeeping, whatever host the job ran on), or with the job.

Database functions take ``session`` keyword-only and flush only.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from headwater.db import session_scope, utcnow
from headwater.jobs.models import FINAL_STATUSES, Job, JobArchiveChunk, JobArchivedFile
from headwater.jobs.schemas import OutputEntry
from headwater.jobs.workspace import LOG_STREAMS, MAX_OUTPUT_ENTRIES, NotRegularFile, open_job_file

if TYPE_CHECKING:
    from headwater.jobs.worker import JobWorker

__all__ = [
    "CHUNK_BYTES",
    "archive_all",
    "archive_finished",
    "archive_job_files",
    "archived_file",
    "archived_listing",
    "drop_expired_archives",
    "jobs_to_archive",
    "lock_unarchived",
    "read_archived",
]

log = logging.getLogger("headwater.jobs.archive")

CHUNK_BYTES = 1024 * 1024
# Never archived: the command's application files are copies of files kept elsewhere.
_SKIPPED_DIRS = ("applications",)
_MAX_WALKED = 10 * MAX_OUTPUT_ENTRIES  # a job that wrote a million files is not walked whole at its end


def jobs_to_archive(
    session: Session, *, host: str, jobs_dir: Path, finished_after: dt.datetime | None = None, limit: int = 10
) -> list[Job]:
    """This host's finished jobs whose files are not archived yet, under ``jobs_dir`` (oldest first), that
    finished after ``finished_after`` (older ones' archives expired, or would at once)."""
    stmt = (
        select(Job)
        .where(
            Job.host == host,
            Job.status.in_([s.value for s in FINAL_STATUSES]),
            Job.files_archived_at.is_(None),
            Job.cleaned_at.is_(None),
            Job.work_dir.is_not(None),
            Job.finished_at.is_not(None) if finished_after is None else Job.finished_at > finished_after,
        )
        .order_by(Job.finished_at, Job.pk)
        .limit(limit * 4)
    )
    root = jobs_dir.resolve()
    found = [job for job in session.scalars(stmt) if job.work_dir and Path(job.work_dir).resolve().is_relative_to(root)]
    return found[:limit]


def archive_finished(worker: JobWorker, *, limit: int = 5) -> int:
    """Archive up to ``limit`` of the worker's finished jobs (on its host, under its jobs directory, within its
    retention period), a transaction each; how many."""
    if worker.archive_max_bytes <= 0:
        return 0
    after = utcnow() - worker.retention if worker.retention is not None else None
    with session_scope(worker.factory) as session:
        jobs = jobs_to_archive(session, host=worker.host, jobs_dir=worker.jobs_dir, finished_after=after, limit=limit)
        pks = [job.pk for job in jobs]
    done = 0
    for pk in pks:
        with session_scope(worker.factory) as session:
            job = lock_unarchived(session, pk=pk)
            if job is None:
                continue  # another worker sharing this data directory archived it meanwhile
            size = archive_job_files(session, job=job, max_bytes=worker.archive_max_bytes)
            job_id, left_out = job.id, job.files_not_archived
        done += 1
        log.info("job %s: %d bytes of its files archived in the database (%s left out)", job_id, size, left_out)
    return done


def archive_all(worker: JobWorker) -> None:
    """Archive every finished job the worker still has to (as it stops); a failure is logged, never raised."""
    try:
        while archive_finished(worker):
            pass
    except Exception:
        log.exception("archiving finished jobs' files while stopping failed")


def lock_unarchived(session: Session, *, pk: int) -> Job | None:
    """The job, locked for archiving (PostgreSQL), if its files are still to archive."""
    stmt = select(Job).where(Job.pk == pk).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    job = session.scalar(stmt)
    return job if job is not None and job.files_archived_at is None and job.cleaned_at is None else None


def _candidates(root: Path) -> list[tuple[str, Path]]:
    """The job directory's files and folders, logs first, then the rest in path order: links never, and at most
    _MAX_WALKED entries looked at (the top level first, so its logs always are)."""
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):  # links to folders are listed, never followed
        here = Path(folder)
        if here == root:
            dirs[:] = [name for name in dirs if name not in _SKIPPED_DIRS]
        dirs.sort()
        for name in sorted(dirs + files):
            path = here / name
            if not path.is_symlink():
                found.append((path.relative_to(root).as_posix(), path))
        if len(found) >= _MAX_WALKED:
            break
    found.sort()

    def is_log(name: str) -> bool:
        parts = name.split("/")
        return name in LOG_STREAMS or parts[0] == "driver" or (parts[0] == "attempts" and parts[-1] in LOG_STREAMS)

    return [item for item in found if is_log(item[0])] + [item for item in found if not is_log(item[0])]


def archive_job_files(session: Session, *, job: Job, max_bytes: int, now: dt.datetime | None = None) -> int:
    """Copy the job's files into the database, logs first, up to ``max_bytes``; the bytes archived."""
    session.execute(
        delete(JobArchiveChunk).where(
            JobArchiveChunk.file_id.in_(select(JobArchivedFile.id).where(JobArchivedFile.job_pk == job.pk))
        )
    )
    session.execute(delete(JobArchivedFile).where(JobArchivedFile.job_pk == job.pk))
    root = Path(job.work_dir or "").resolve()
    used, left_out, rows = 0, 0, 0
    for name, path in _candidates(root) if max_bytes > 0 and root.is_dir() else []:
        if rows >= MAX_OUTPUT_ENTRIES:
            left_out += 1
            continue
        if path.is_dir():
            session.add(JobArchivedFile(job_pk=job.pk, path=name, size=None))
            rows += 1
            continue
        try:
            handle = open_job_file(path)
        except (NotRegularFile, OSError):
            continue  # a FIFO, a device, a link swapped in: never read, as the API never serves it
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if used + size > max_bytes:
                left_out += 1
                continue
            archived = JobArchivedFile(job_pk=job.pk, path=name, size=size)
            session.add(archived)
            session.flush()
            read = _store_chunks(session, archived.id, handle, size)
            archived.size = read  # a file cut short meanwhile: what was read
            used += size
            rows += 1
    job.files_archived_at = now or utcnow()
    job.files_not_archived = left_out
    session.flush()
    return used


def _store_chunks(session: Session, file_id: int, handle: IO[bytes], size: int) -> int:
    """Write the file's chunks (one insert each: none stays in the session's memory); the bytes read."""
    read = seq = 0
    while read < size:
        data = handle.read(min(CHUNK_BYTES, size - read))
        if not data:
            break
        session.execute(insert(JobArchiveChunk).values(file_id=file_id, seq=seq, data=zlib.compress(data, 6)))
        read += len(data)
        seq += 1
    return read


def archived_listing(session: Session, *, job_pk: int) -> list[OutputEntry]:
    """The archived files and folders of a job, in path order (at most MAX_OUTPUT_ENTRIES)."""
    rows = session.execute(
        select(JobArchivedFile.path, JobArchivedFile.size)
        .where(JobArchivedFile.job_pk == job_pk)
        .order_by(JobArchivedFile.path)
        .limit(MAX_OUTPUT_ENTRIES)
    )
    return [OutputEntry(path=path, type="directory" if size is None else "file", size=size) for path, size in rows]


def archived_file(session: Session, *, job_pk: int, path: str) -> JobArchivedFile | None:
    """The archived file ``path`` of a job (None when it is not archived, or is a folder)."""
    row = session.scalar(select(JobArchivedFile).where(JobArchivedFile.job_pk == job_pk, JobArchivedFile.path == path))
    return row if row is not None and row.size is not None else None


def read_archived(session: Session, *, file: JobArchivedFile, offset: int, length: int) -> bytes:
    """Up to ``length`` bytes of an archived file from ``offset`` (only the chunks that hold them are read)."""
    size = file.size or 0
    end = min(size, offset + max(0, length))
    if offset >= end:
        return b""
    first, last = offset // CHUNK_BYTES, (end - 1) // CHUNK_BYTES
    chunks = session.execute(
        select(JobArchiveChunk.seq, JobArchiveChunk.data)
        .where(JobArchiveChunk.file_id == file.id, JobArchiveChunk.seq.between(first, last))
        .order_by(JobArchiveChunk.seq)
    )
    data = b"".join(zlib.decompress(bytes(blob)) for _, blob in chunks)
    start = offset - first * CHUNK_BYTES
    return data[start : start + (end - offset)]


def drop_expired_archives(session: Session, *, before: dt.datetime, limit: int = 100) -> int:
    """Remove the archives of jobs that finished before ``before``, on any host; how many jobs' archives."""
    pks = list(
        session.scalars(
            select(JobArchivedFile.job_pk)
            .join(Job, Job.pk == JobArchivedFile.job_pk)
            .where(Job.finished_at < before)
            .group_by(JobArchivedFile.job_pk)
            .limit(limit)
        )
    )
    if not pks:
        return 0
    files = select(JobArchivedFile.id).where(JobArchivedFile.job_pk.in_(pks))
    session.execute(delete(JobArchiveChunk).where(JobArchiveChunk.file_id.in_(files)))
    session.execute(delete(JobArchivedFile).where(JobArchivedFile.job_pk.in_(pks)))
    # No archive any more: the API says so instead of taking the missing rows for files the job never had.
    session.execute(
        update(Job).where(Job.pk.in_(pks)).values(files_archived_at=None),
        execution_options={"synchronize_session": False},
    )
    session.flush()
    return len(pks)
