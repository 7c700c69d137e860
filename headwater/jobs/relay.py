"""A job's files served on demand through the database, for an API process that cannot read the job's directory.

Genie 4's agent streams a file to the server when the server asks for it, over a connection the agent keeps open.
Headwater relays the same questions through the one thing every process already reaches, the database, so no
connection from the server to a worker host is needed: the API inserts a :class:`JobFileRequest` (a listing of
the job's directory, or at most 1 MiB of one file from an offset) for the job's host and wakes the workers there
(``NOTIFY headwater_job_files`` on PostgreSQL; on SQLite they poll every HEADWATER_JOBS_POLL_INTERVAL); the worker
whose jobs directory holds the job writes the answer into the same row, checking the path stays inside the job's
directory as the API does
(:func:`headwater.jobs.workspace.read_range`); the API, polling the row between short transactions (no connection
held while it waits), reads the answer and deletes the row. A request that gets no answer within
``HEADWATER_JOBS_REMOTE_FILES_TIMEOUT`` is withdrawn; rows an asker left behind (a process killed meanwhile) are
swept by the workers after :data:`REQUEST_TTL` seconds.

:class:`FileServer` is the worker's side: a loop beside every worker (``headwater worker`` and the server's
in-process one) that answers its host's requests and archives its finished jobs' files (:mod:`archive`).
Why through the database: docs/adr/0016-job-files-through-the-database.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

import anyio
import anyio.to_thread
import orjson
from sqlalchemy import Engine, delete, select, text
from sqlalchemy.orm import Session, sessionmaker

from headwater.db import session_scope, utcnow
from headwater.errors import HeadwaterError
from headwater.jobs.models import Job, JobFileRequest
from headwater.jobs.wakeup import Wakeup
from headwater.jobs.workspace import MAX_LOG_CHUNK, MissingFile, list_directory, read_range
from headwater.loops import LoopService

if TYPE_CHECKING:
    from headwater.jobs.worker import JobWorker

__all__ = [
    "FILES_CHANNEL",
    "REQUEST_TTL",
    "Answer",
    "FileServer",
    "NoAnswer",
    "answer_pending",
    "ask",
    "sweep_requests",
]

log = logging.getLogger("headwater.jobs.relay")

T = TypeVar("T")

FILES_CHANNEL = "headwater_job_files"
ANSWERS_CHANNEL = "headwater_job_file_answers"
REQUEST_TTL = 300.0
ANSWERS_PER_PASS = 8  # each answer holds up to 1 MiB: a pass's transaction stays small


@dataclass(frozen=True)
class Answer:
    """A worker's answer: the bytes (a range, or a listing as JSON) and the file's size, or an error."""

    data: bytes
    size: int | None
    error_status: int | None = None
    error: str | None = None


class NoAnswer(Exception):
    """No worker answered within the timeout (its host is down, or no worker there holds the directory)."""


# ------------------------------------------------------------------------------------------- asking


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _AnswerListener:
    """One per process and PostgreSQL database: a thread LISTENing for answers, waking the askers waiting on them
    (an asyncio future each), so an answer is read as soon as it is committed rather than at the next poll."""

    _instances: ClassVar[dict[str, _AnswerListener]] = {}
    _lock = threading.Lock()

    def __init__(self, url: str) -> None:
        self.url = url
        self.waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = {}
        self.ready = threading.Event()  # LISTEN is in place: an answer committed from now on is seen
        threading.Thread(target=self._run, name="headwater-job-file-answers", daemon=True).start()

    @classmethod
    def for_engine(cls, engine: Engine) -> _AnswerListener | None:
        """The listener of ``engine``'s database (started on first use); None where there is no LISTEN."""
        if engine.dialect.name != "postgresql":
            return None
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with cls._lock:
            if url not in cls._instances:
                cls._instances[url] = cls(url)
            return cls._instances[url]

    def wait_for(self, request_id: int) -> asyncio.Future[None]:
        """A future set when the answer to ``request_id`` is committed (call :meth:`forget` once done)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self.waiting[request_id] = (loop, future)
        return future

    def forget(self, request_id: int) -> None:
        """Stop waiting for ``request_id``."""
        self.waiting.pop(request_id, None)

    def _run(self) -> None:
        import psycopg

        while True:
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {ANSWERS_CHANNEL}")
                    self.ready.set()
                    for notice in connection.notifies():
                        self._wake(notice.payload)
            except Exception as exc:  # the database restarted: the askers poll meanwhile
                self.ready.clear()
                if not self.waiting:  # nobody waits: end; the next asker starts a listener again
                    with self._lock:
                        self._instances.pop(self.url, None)
                    log.info("the LISTEN for job file answers ended: %s", exc)
                    return
                log.warning("lost the LISTEN for job file answers (polling meanwhile): %s", exc)
                time.sleep(5)

    def _wake(self, payload: str) -> None:
        waiter = self.waiting.get(int(payload)) if payload.isdigit() else None
        if waiter is not None:
            loop, future = waiter
            with contextlib.suppress(RuntimeError):  # its event loop closed meanwhile: nobody to wake
                loop.call_soon_threadsafe(_settle, future)


def _post(session: Session, *, job_pk: int, host: str, kind: str, path: str | None, offset: int, length: int) -> int:
    request = JobFileRequest(
        job_pk=job_pk, host=host, kind=kind, path=path, offset=offset, length=min(length, MAX_LOG_CHUNK)
    )
    session.add(request)
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :host)"), {"channel": FILES_CHANNEL, "host": host})
    return request.id


def _collect(session: Session, request_id: int) -> Answer | None:
    row = session.get(JobFileRequest, request_id)
    if row is None or row.answered_at is None:
        return None
    answer = Answer(bytes(row.data or b""), row.size, row.error_status, row.error)
    session.delete(row)
    return answer


def _withdraw(session: Session, request_id: int) -> None:
    session.execute(delete(JobFileRequest).where(JobFileRequest.id == request_id))


async def ask(
    factory: sessionmaker[Session],
    *,
    job_pk: int,
    host: str,
    kind: str,
    path: str | None = None,
    offset: int = 0,
    length: int = 0,
    timeout: float,
    listen: bool = True,
) -> Answer:
    """Ask the worker on ``host`` for a listing (``kind="list"``) or a byte range (``"read"``) of the job's
    directory and wait up to ``timeout`` seconds for its answer (woken by NOTIFY when ``listen``, on PostgreSQL);
    NoAnswer when none came."""

    async def run(fn: Callable[[Session], T]) -> T:
        def step() -> T:
            with session_scope(factory) as session:
                return fn(session)

        return await anyio.to_thread.run_sync(step)

    bind = factory.kw.get("bind")
    listener = _AnswerListener.for_engine(bind) if listen and isinstance(bind, Engine) else None
    request_id = await run(
        lambda s: _post(s, job_pk=job_pk, host=host, kind=kind, path=path, offset=offset, length=length)
    )
    woken = listener.wait_for(request_id) if listener is not None and listener.ready.is_set() else None
    deadline = time.monotonic() + timeout
    # Polled between waits: often at first, less as time passes; with a listener, its wake-up comes first and the
    # polls only cover a notification lost with a dropped connection.
    pause = 0.01 if woken is None else 0.05  # an answer committed before the future was registered: found soon
    answered = False
    try:
        while True:
            with anyio.move_on_after(min(pause, max(0.0, deadline - time.monotonic()))):
                if woken is not None and not woken.done():
                    await asyncio.shield(woken)  # a timeout cancels the wait, never the future
                else:
                    await anyio.sleep(pause)
            pause = 0.25 if woken is not None and not woken.done() else min(pause * 1.5, 0.1)
            answer = await run(lambda s: _collect(s, request_id))
            if answer is not None:
                answered = True
                return answer
            if time.monotonic() >= deadline:
                raise NoAnswer(f"no answer from host {host} within {timeout:g} s")
    finally:
        if listener is not None:
            listener.forget(request_id)
        if not answered:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await run(lambda s: _withdraw(s, request_id))


# ------------------------------------------------------------------------------------------ answering


def answer_pending(session: Session, *, host: str, jobs_dir: Path, limit: int = ANSWERS_PER_PASS) -> int:
    """Answer the oldest requests for ``host`` whose job directory is under ``jobs_dir``; how many were answered."""
    stmt = (
        select(JobFileRequest, Job.work_dir)
        .join(Job, Job.pk == JobFileRequest.job_pk)
        .where(JobFileRequest.host == host, JobFileRequest.answered_at.is_(None))
        .order_by(JobFileRequest.id)
        .limit(limit * 4)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=JobFileRequest, skip_locked=True)
    root_of_jobs = jobs_dir.resolve()
    answered = 0
    for request, work_dir in session.execute(stmt):
        root = Path(work_dir).resolve() if work_dir else None
        if root is None or root == root_of_jobs or not root.is_relative_to(root_of_jobs):
            continue  # another worker's directory (several workers may share a host): that worker answers
        _answer(request, root)
        if session.get_bind().dialect.name == "postgresql":  # delivered at commit, to the asker's listener
            session.execute(
                text("SELECT pg_notify(:channel, :id)"), {"channel": ANSWERS_CHANNEL, "id": str(request.id)}
            )
        answered += 1
        if answered >= limit:
            break
    session.flush()
    return answered


def _answer(request: JobFileRequest, root: Path) -> None:
    try:
        if request.kind == "list":
            entries = list_directory(root)
            request.data = orjson.dumps([entry.model_dump() for entry in entries])
        else:
            data, size = read_range(root, request.path or "", offset=request.offset, length=request.length)
            request.data, request.size = data, size
    except MissingFile:
        pass  # answered with no bytes and no size: the asker tells "not there (yet)" from an error
    except HeadwaterError as exc:
        request.error_status, request.error = exc.status_code, exc.message
    except OSError as exc:  # a disk error, a file removed mid-read: the asker gets the reason, not a hang
        request.error_status, request.error = 404, f"could not read {request.path or 'the directory'}: {exc.strerror}"
    request.answered_at = utcnow()


def sweep_requests(session: Session, *, older_than: float = REQUEST_TTL) -> int:
    """Delete requests older than ``older_than`` seconds (their askers gave up or died); how many."""
    cutoff = utcnow() - dt.timedelta(seconds=older_than)
    result = session.execute(delete(JobFileRequest).where(JobFileRequest.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


class FileServer(LoopService[int]):
    """The worker's side of the relay: answers requests for its jobs' directories, archives finished jobs' files
    into the database, and sweeps requests nobody collected. Woken by NOTIFY on PostgreSQL; elsewhere it polls
    every ``interval`` seconds (the worker's poll interval)."""

    log = log

    def __init__(self, worker: JobWorker, *, interval: float = 0.5) -> None:
        bind = worker.factory.kw.get("bind")
        engine = bind if isinstance(bind, Engine) and worker.listen else None
        listening = engine is not None and engine.dialect.name == "postgresql"
        # With LISTEN a request wakes it at once: the interval only bounds archiving's delay and a lost NOTIFY.
        super().__init__(name="headwater-job-files", interval=1.0 if listening else interval, run_first=True)
        self.worker = worker
        self._wakeup = Wakeup(engine if listening else None, channel=FILES_CHANNEL)
        self._last_sweep = 0.0
        self._busy = False

    def run_once(self) -> int:
        """Answer pending requests, archive finished jobs, and now and then sweep abandoned requests."""
        worker = self.worker
        with session_scope(worker.factory) as session:
            answered = answer_pending(session, host=worker.host, jobs_dir=worker.jobs_dir)
        self._busy = answered >= ANSWERS_PER_PASS  # more may wait: no pause before the next pass
        worker.archive_finished()
        if time.monotonic() - self._last_sweep >= 60:
            self._last_sweep = time.monotonic()
            with session_scope(worker.factory) as session:
                sweep_requests(session)
        return answered

    def pause(self, seconds: float) -> None:
        """Until a request is posted for any host (PostgreSQL), or ``seconds``."""
        if not self.stopping and not self._busy:
            self._wakeup.wait(seconds)

    def on_stop(self) -> None:
        """Close the LISTEN connection."""
        self._wakeup.close()
