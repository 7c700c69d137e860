"""The jobs REST routes under ``/api/v1``: clusters, commands and jobs (shaped after Genie's /api/v3)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import FileResponse

from headwater.api import SessionDep
from headwater.catalog.schemas import Page
from headwater.jobs import service
from headwater.jobs.models import JobStatus
from headwater.jobs.schemas import (
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
)
from headwater.pagination import MAX_PAGE_SIZE

__all__ = ["clusters_router", "commands_router", "jobs_router"]

clusters_router = APIRouter(prefix="/api/v1/clusters", tags=["jobs"])
commands_router = APIRouter(prefix="/api/v1/commands", tags=["jobs"])
jobs_router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

Cursor = Annotated[str | None, Query(max_length=2048, description="`next_cursor` of the previous page.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")]
NamePath = Annotated[str, Path(min_length=1, max_length=255)]
JobId = Annotated[str, Path(min_length=1, max_length=255)]


# ------------------------------------------------------------------------------------- clusters


@clusters_router.post("", status_code=201, response_model=ClusterOut)
def create_cluster(body: ClusterCreate, session: SessionDep, response: Response) -> ClusterOut:
    """Register a cluster (409 when the name is taken)."""
    cluster = service.create_cluster(session, data=body)
    response.headers["Location"] = f"/api/v1/clusters/{cluster.name}"
    return ClusterOut.model_validate(cluster)


@clusters_router.get("", response_model=Page[ClusterOut])
def list_clusters(
    session: SessionDep,
    sort: Annotated[str, Query(max_length=32)] = "name",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[ClusterOut]:
    """Clusters, one page at a time."""
    page = service.list_clusters(session, sort=sort, cursor=cursor, limit=limit)
    items = [ClusterOut.model_validate(c) for c in page.items]
    return Page[ClusterOut](items=items, next_cursor=page.next_cursor, total=page.total)


@clusters_router.get("/{name}", response_model=ClusterOut)
def get_cluster(name: NamePath, session: SessionDep) -> ClusterOut:
    """One cluster."""
    return ClusterOut.model_validate(service.get_cluster(session, name=name))


@clusters_router.patch("/{name}", response_model=ClusterOut)
def update_cluster(name: NamePath, body: ClusterUpdate, session: SessionDep) -> ClusterOut:
    """Change a cluster's status, tags, config, limit or description."""
    return ClusterOut.model_validate(service.update_cluster(session, name=name, data=body))


@clusters_router.delete("/{name}", status_code=204)
def delete_cluster(name: NamePath, session: SessionDep) -> Response:
    """Remove a cluster (409 while jobs run on it)."""
    service.delete_cluster(session, name=name)
    return Response(status_code=204)


# ------------------------------------------------------------------------------------- commands


@commands_router.post("", status_code=201, response_model=CommandOut)
def create_command(body: CommandCreate, session: SessionDep, response: Response) -> CommandOut:
    """Register a command (409 when the name is taken)."""
    command = service.create_command(session, data=body)
    response.headers["Location"] = f"/api/v1/commands/{command.name}"
    return CommandOut.model_validate(command)


@commands_router.get("", response_model=Page[CommandOut])
def list_commands(
    session: SessionDep,
    sort: Annotated[str, Query(max_length=32)] = "name",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[CommandOut]:
    """Commands, one page at a time."""
    page = service.list_commands(session, sort=sort, cursor=cursor, limit=limit)
    items = [CommandOut.model_validate(c) for c in page.items]
    return Page[CommandOut](items=items, next_cursor=page.next_cursor, total=page.total)


@commands_router.get("/{name}", response_model=CommandOut)
def get_command(name: NamePath, session: SessionDep) -> CommandOut:
    """One command."""
    return CommandOut.model_validate(service.get_command(session, name=name))


@commands_router.patch("/{name}", response_model=CommandOut)
def update_command(name: NamePath, body: CommandUpdate, session: SessionDep) -> CommandOut:
    """Change a command's executable, status, tags, cluster criteria or description."""
    return CommandOut.model_validate(service.update_command(session, name=name, data=body))


@commands_router.delete("/{name}", status_code=204)
def delete_command(name: NamePath, session: SessionDep) -> Response:
    """Remove a command (409 while jobs run it)."""
    service.delete_command(session, name=name)
    return Response(status_code=204)


# ----------------------------------------------------------------------------------------- jobs


@jobs_router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut)
def submit_job(body: JobSubmit, session: SessionDep, response: Response) -> JobOut:
    """Submit a job; it is resolved at once (RESOLVED, or INVALID with the reason) and queued."""
    job = service.submit_job(session, data=body)
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return service.job_out(session, [job])[0]


@jobs_router.get("", response_model=Page[JobOut])
def list_jobs(
    session: SessionDep,
    user: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    job_status: Annotated[JobStatus | None, Query(alias="status")] = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    created_after: dt.datetime | None = None,
    created_before: dt.datetime | None = None,
    sort: Annotated[str, Query(max_length=32)] = "-created",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[JobOut]:
    """Jobs, filtered by user, status, tag and creation time, newest first by default."""
    filters = service.JobFilters(
        user=user, status=job_status, tag=tag, created_after=created_after, created_before=created_before
    )
    page = service.list_jobs(session, filters=filters, sort=sort, cursor=cursor, limit=limit)
    return Page[JobOut](items=service.job_out(session, page.items), next_cursor=page.next_cursor, total=page.total)


@jobs_router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: JobId, session: SessionDep) -> JobOut:
    """One job."""
    return service.job_out(session, [service.get_job(session, job_id=job_id)])[0]


@jobs_router.get("/{job_id}/status", response_model=JobStatusOut)
def get_job_status(job_id: JobId, session: SessionDep) -> JobStatusOut:
    """The job's status and every transition, with its time and reason."""
    job = service.get_job(session, job_id=job_id)
    transitions = [TransitionOut.model_validate(t) for t in service.transitions_of(session, job=job)]
    return JobStatusOut(
        id=job.id, status=JobStatus(job.status), status_message=job.status_message, transitions=transitions
    )


@jobs_router.get("/{job_id}/request")
def get_job_request(job_id: JobId, session: SessionDep) -> JobSubmit:
    """The request as submitted."""
    job = service.get_job(session, job_id=job_id)
    return JobSubmit.model_validate({**job.request, "id": job.id})


@jobs_router.get("/{job_id}/execution", response_model=JobExecutionOut)
def get_job_execution(job_id: JobId, session: SessionDep) -> JobExecutionOut:
    """Where and how the job ran: host, pid, exit code."""
    job = service.get_job(session, job_id=job_id)
    return JobExecutionOut(
        id=job.id,
        host=job.host,
        pid=job.pid,
        worker_id=job.worker_id,
        exit_code=job.exit_code,
        work_dir=job.work_dir,
        started_at=job.started_at,
        finished_at=job.finished_at,
        heartbeat_at=job.heartbeat_at,
    )


@jobs_router.get("/{job_id}/output", response_model=list[OutputEntry])
def list_job_output(job_id: JobId, session: SessionDep) -> list[OutputEntry]:
    """The files and directories of the job's working directory."""
    return service.list_output(session, job_id=job_id)


@jobs_router.get("/{job_id}/output/{path:path}")
def get_job_output_file(job_id: JobId, path: str, session: SessionDep) -> FileResponse:
    """Download one file of the job's working directory (HTTP Range supported)."""
    target = service.output_file(session, job_id=job_id, path=path)
    return FileResponse(target, media_type="application/octet-stream", filename=target.name)


@jobs_router.delete("/{job_id}", status_code=202, response_model=JobOut)
def kill_job(job_id: JobId, session: SessionDep) -> JobOut:
    """Kill the job: its whole process group is signalled by its worker; the job ends KILLED."""
    job = service.request_kill(session, job_id=job_id)
    return service.job_out(session, [job])[0]
