"""The jobs REST routes under ``/api/v1``: applications, clusters, commands and jobs (shaped after Genie's
/api/v3): submission as JSON or multipart with attachments, status, output, live log tails, kill."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path as PathType
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from headwater.api.auth import Guard, allow, principal_of
from headwater.api.deps import SessionDep
from headwater.api.pagination import Cursor, Limit, Page, Sort
from headwater.api.resources import NamedResource, named_resource_router
from headwater.auth.actions import Action
from headwater.errors import InvalidInput
from headwater.jobs import access, applications, job_files, service, workspace
from headwater.jobs.access import job_owner
from headwater.jobs.models import JobStatus
from headwater.jobs.schemas import (
    ApplicationCreate,
    ApplicationOut,
    ApplicationUpdate,
    AttemptOut,
    ClusterAppOut,
    ClusterCreate,
    ClusterOut,
    ClusterUpdate,
    CommandCreate,
    CommandOut,
    CommandUpdate,
    JobExecutionOut,
    JobOut,
    JobStatusOut,
    JobSubmit,
    OutputEntry,
    TransitionOut,
    redact_environment,
)

__all__ = ["applications_router", "clusters_router", "commands_router", "jobs_router"]

# Each resource's operations documented in order: create, list, get, change, delete.
_APPLICATION_DOCS = """Register an application (409 when the name is taken; 422 for a file the egress policy refuses).
Applications, one page at a time.
One application.
Change an application's files, environment, status, tags, version or description.
Remove an application (409 while a command needs it)."""
_CLUSTER_DOCS = """Register a cluster (409 when the name is taken).
Clusters, one page at a time.
One cluster.
Change a cluster's status, tags, config, limit or description.
Remove a cluster (409 while jobs run on it)."""
_COMMAND_DOCS = """Register a command (409 when the name is taken).
Commands, one page at a time.
One command.
Change a command's executable, status, tags, cluster criteria or description.
Remove a command (409 while jobs run it)."""

# Anyone who reads jobs reads what they run on; registering and changing it is a jobs admin's.
SETUP = Guard(read=Action.JOBS_READ, write=Action.JOBS_ADMIN)
_APPLICATION_MODELS = (ApplicationCreate, ApplicationUpdate, ApplicationOut)
applications_router = named_resource_router(
    NamedResource.of(
        applications, "application", _APPLICATION_MODELS, _APPLICATION_DOCS, tag="jobs", guard=SETUP, egress=True
    )
)
clusters_router = named_resource_router(
    NamedResource.of(
        service, "cluster", (ClusterCreate, ClusterUpdate, ClusterOut), _CLUSTER_DOCS, tag="jobs", guard=SETUP
    )
)
commands_router = named_resource_router(
    NamedResource.of(
        service, "command", (CommandCreate, CommandUpdate, CommandOut), _COMMAND_DOCS, tag="jobs", guard=SETUP
    )
)
jobs_router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

JobId = Annotated[str, Path(min_length=1, max_length=255)]
# A job's user reads it, its logs and its output, and kills it, without a role granting that for everyone's jobs.
READ_JOB = [allow(Action.JOBS_READ, owned_by=job_owner)]
READ_LOGS = [allow(Action.JOBS_LOGS, owned_by=job_owner)]


# ----------------------------------------------------------------------------------------- jobs


@dataclass
class Submission:
    """A parsed job submission: the request and its attachments (name, content)."""

    request: JobSubmit
    attachments: list[tuple[str, bytes]] = field(default_factory=list)


def _parse_request(raw: str | bytes) -> JobSubmit:
    try:
        return JobSubmit.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


async def parse_submission(request: Request) -> Submission:
    """A JSON job request, or (as Genie takes it) multipart: a ``request`` JSON part and ``attachment`` files."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("", "application/json"):
        return Submission(request=_parse_request(await request.body()))
    if content_type != "multipart/form-data":
        raise StarletteHTTPException(
            415, detail=f"Content-Type {content_type!r}: send application/json, or multipart/form-data"
        )
    settings = request.app.state.settings
    max_count, max_bytes = settings.jobs_attachments_max_count, settings.jobs_attachments_max_bytes
    form = await request.form(max_files=max(max_count, 1) * 2, max_fields=10)
    unknown = sorted(set(form.keys()) - {"request", "attachment"})
    if unknown:
        raise InvalidInput(
            f"multipart part(s) {unknown} are not known: send a 'request' JSON part and 'attachment' files",
            detail={"field": unknown[0]},
        )
    parts = form.getlist("request")
    if len(parts) != 1:
        raise InvalidInput(
            "send exactly one 'request' part holding the job request as JSON", detail={"field": "request"}
        )
    raw = await parts[0].read() if isinstance(parts[0], UploadFile) else parts[0]
    files = form.getlist("attachment")
    if len(files) > max_count:
        raise InvalidInput(
            f"{len(files)} attachments sent; at most {max_count} are accepted (HEADWATER_JOBS_ATTACHMENTS_MAX_COUNT)",
            detail={"field": "attachment"},
        )
    attachments: list[tuple[str, bytes]] = []
    total = 0
    for item in files:
        if not isinstance(item, UploadFile):
            raise InvalidInput(
                "each 'attachment' part must be a file (with a filename)", detail={"field": "attachment"}
            )
        content = await item.read(max_bytes - total + 1)
        total += len(content)
        if total > max_bytes:
            raise InvalidInput(
                f"attachments exceed {max_bytes} bytes in total (HEADWATER_JOBS_ATTACHMENTS_MAX_BYTES)",
                detail={"field": "attachment"},
            )
        attachments.append((item.filename or "", content))
    return Submission(request=_parse_request(raw), attachments=attachments)


_SUBMIT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/JobSubmit"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["request"],
                    "properties": {
                        "request": {"type": "string", "description": "The job request (JobSubmit) as JSON."},
                        "attachment": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "Files placed in the job's working directory.",
                        },
                    },
                }
            },
        },
    }
}


@jobs_router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    openapi_extra=_SUBMIT_BODY,
    dependencies=[allow(Action.JOBS_SUBMIT)],
)
def submit_job(
    submission: Annotated[Submission, Depends(parse_submission)],
    request: Request,
    session: SessionDep,
    response: Response,
) -> JobOut:
    """Submit a job (JSON, or multipart with attachments) that runs as the principal submitting it; it is resolved
    at once (RESOLVED, or INVALID with the reason) and queued. 403 when its tags match only clusters or commands
    closed to the principal (naming their groups) or when ``user`` names someone else without jobs.submit_as; 429
    with Retry-After at the user's active-job limit."""
    submitter = access.submitter_of(principal_of(request), submission.request.user, request.app.state.settings)
    job = service.submit_job(
        session,
        data=submission.request,
        submitter=submitter,
        attachments=submission.attachments,
        selector=request.app.state.settings.jobs_cluster_selector,
    )
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return service.job_out(session, [job])[0]


@jobs_router.get("", response_model=Page[JobOut], dependencies=[allow(Action.JOBS_READ)])
def list_jobs(
    request: Request,
    session: SessionDep,
    user: Annotated[
        str | None, Query(min_length=1, max_length=255, description="A user's jobs; `me`: the caller's own.")
    ] = None,
    mine: Annotated[bool, Query(description="Only the caller's own jobs (as user=me).")] = False,
    job_status: Annotated[JobStatus | None, Query(alias="status")] = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    created_after: dt.datetime | None = None,
    created_before: dt.datetime | None = None,
    sort: Sort = "-created",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[JobOut]:
    """Jobs, filtered by user (``me``, or ``mine=true``: the caller's), status, tag and creation time, newest
    first by default."""
    filters = service.JobFilters(
        user=access.user_filter(principal_of(request), user, mine=mine),
        status=job_status,
        tag=tag,
        created_after=created_after,
        created_before=created_before,
    )
    page = service.list_jobs(session, filters=filters, sort=sort, cursor=cursor, limit=limit)
    return Page[JobOut](items=service.job_out(session, page.items), next_cursor=page.next_cursor, total=page.total)


@jobs_router.get("/{job_id}", response_model=JobOut, dependencies=READ_JOB)
def get_job(job_id: JobId, session: SessionDep) -> JobOut:
    """One job."""
    return service.job_out(session, [service.get_job(session, job_id=job_id)])[0]


@jobs_router.get("/{job_id}/status", response_model=JobStatusOut, dependencies=READ_JOB)
def get_job_status(job_id: JobId, session: SessionDep) -> JobStatusOut:
    """The job's status and every transition, with its time and reason."""
    job = service.get_job(session, job_id=job_id)
    transitions = [TransitionOut.model_validate(t) for t in service.transitions_of(session, job=job)]
    return JobStatusOut(
        id=job.id, status=JobStatus(job.status), status_message=job.status_message, transitions=transitions
    )


@jobs_router.get("/{job_id}/request", dependencies=READ_JOB)
def get_job_request(job_id: JobId, session: SessionDep) -> JobSubmit:
    """The request as submitted, its environment's values redacted (they may be secrets)."""
    job = service.get_job(session, job_id=job_id)
    request = {**job.request, "id": job.id}
    request["environment"] = redact_environment(request.get("environment") or {})
    return JobSubmit.model_validate(request)


@jobs_router.get("/{job_id}/execution", response_model=JobExecutionOut, dependencies=READ_JOB)
def get_job_execution(job_id: JobId, session: SessionDep) -> JobExecutionOut:
    """Where and how the job ran: host, pid, exit code."""
    job = service.get_job(session, job_id=job_id)
    attempts = [AttemptOut.model_validate(a) for a in service.attempts_of(session, job=job)]
    where = {
        name: getattr(job, name) for name in JobExecutionOut.model_fields if name not in {"attempts", "cluster_app"}
    }
    return JobExecutionOut(**where, cluster_app=ClusterAppOut.of(job), attempts=attempts)


def _files(request: Request) -> tuple[Any, job_files.FileAccess]:
    return request.app.state.sessionmaker, job_files.FileAccess.from_settings(request.app.state.settings)


@jobs_router.get("/{job_id}/output", response_model=list[OutputEntry], dependencies=READ_LOGS)
async def list_job_output(job_id: JobId, request: Request) -> list[OutputEntry]:
    """The files and directories of the job's working directory, from whichever host holds it or the database
    archive (503 when its host does not answer and nothing is archived): for its user, and whoever holds
    jobs.logs."""
    return await job_files.list_output(*_files(request), job_id=job_id)


@jobs_router.get(
    "/{job_id}/output/{path:path}",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file."},
        206: {"description": "The range asked for with Range."},
        503: {"description": "The job's host did not answer and the file is not in the database archive."},
    },
    dependencies=READ_LOGS,
)
async def get_job_output_file(job_id: JobId, path: str, request: Request) -> Response:
    """Download one file of the job's working directory (HTTP Range supported), wherever it is: for its user, and
    whoever holds jobs.logs."""
    found = await job_files.output_file(*_files(request), job_id=job_id, path=path)
    if isinstance(found, PathType):
        return FileResponse(found, media_type="application/octet-stream", filename=found.name)
    return _remote_response(found, request.headers.get("range"))


CHUNK = workspace.MAX_LOG_CHUNK


def _remote_response(found: job_files.RemoteFile, range_header: str | None) -> Response:
    """A file relayed from its host (or the archive) in chunks, with a single byte range when asked for."""
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'attachment; filename="{found.name}"',
    }
    start, end, status_code = 0, found.size, 200
    if range_header:
        parsed = _parse_range(range_header, found.size)
        if parsed is None:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{found.size}"})
        start, end = parsed
        status_code = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{found.size}"
    headers["Content-Length"] = str(end - start)

    async def body() -> AsyncIterator[bytes]:
        # The next 1 MiB is asked for while this one is sent: each is a round trip through the database.
        def ask(at: int) -> asyncio.Task[bytes] | None:
            return asyncio.ensure_future(found.read(at, min(CHUNK, end - at))) if at < end else None

        at, pending = start, ask(start)
        try:
            while pending is not None:
                data = await pending
                at += len(data)
                pending = ask(at) if data else None
                yield data
        finally:
            if pending is not None:
                pending.cancel()

    return StreamingResponse(body(), status_code=status_code, media_type="application/octet-stream", headers=headers)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b``, ``a-`` or ``-n`` range as (start, end exclusive); None when unsatisfiable or several."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            count = int(last)
            return (max(0, size - count), size) if count > 0 and size > 0 else None
        begin = int(first)
        stop = min(size, int(last) + 1) if last else size
    except ValueError:
        return None
    return (begin, stop) if 0 <= begin < stop else None


@jobs_router.get(
    "/{job_id}/logs/{stream}",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "Log bytes from `offset`."},
        503: {"description": "The job's host did not answer and the log is not in the database archive."},
    },
    dependencies=READ_LOGS,
)
async def get_job_log(
    job_id: JobId,
    stream: Annotated[str, Path(max_length=16, description="stdout or stderr")],
    request: Request,
    offset: Annotated[
        int, Query(ge=0, description="Byte offset to read from (X-Log-Next-Offset of the last read).")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=workspace.MAX_LOG_CHUNK, description="Most bytes to return.")] = 65_536,
    follow: Annotated[bool, Query(description="Stream the log as it grows until the job ends.")] = False,
) -> Response:
    """The live tail of a job's stdout or stderr, wherever the job runs: bytes from ``offset``, with
    ``X-Log-Next-Offset`` to poll from next and ``X-Job-Finished: true`` once nothing more will be written;
    ``follow=true`` streams instead. For the job's user, and whoever holds jobs.logs."""
    factory, access = _files(request)
    chunk = await job_files.read_log(factory, access, job_id=job_id, stream=stream, offset=offset, limit=limit)
    headers = {
        "X-Log-Offset": str(chunk.offset),
        "X-Log-Next-Offset": str(chunk.next_offset),
        "X-Log-Size": str(chunk.size),
        "X-Job-Status": chunk.status.value,
        "X-Job-Finished": "true" if chunk.finished else "false",
        "Cache-Control": "no-store",
    }
    if follow:
        body = job_files.follow_log(factory, access, job_id=job_id, stream=stream, offset=offset)
        streamed = {"X-Log-Offset": str(offset), "Cache-Control": "no-store"}
        return StreamingResponse(body, media_type="application/octet-stream", headers=streamed)
    return Response(chunk.data, media_type="application/octet-stream", headers=headers)


@jobs_router.get("/{job_id}/logs-archive", dependencies=READ_LOGS)
def get_job_log_archive(job_id: JobId, session: SessionDep) -> FileResponse:
    """The gzip tarball of a job's logs, made when retention removed a job that asked for archiving: for its
    user, and whoever holds jobs.logs."""
    target = workspace.archive_file(session, job_id=job_id)
    return FileResponse(target, media_type="application/gzip", filename=target.name)


@jobs_router.delete(
    "/{job_id}", status_code=202, response_model=JobOut, dependencies=[allow(Action.JOBS_KILL, owned_by=job_owner)]
)
def kill_job(job_id: JobId, session: SessionDep) -> JobOut:
    """Kill the job: its whole process group is signalled by its worker; the job ends KILLED. Its user may;
    anyone else needs jobs.kill."""
    job = service.request_kill(session, job_id=job_id)
    return service.job_out(session, [job])[0]
