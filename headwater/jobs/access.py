"""What the permission checks need of a job: its user, who may kill it and read its logs and output without a
role granting that for everyone's jobs."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import Path
from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.api.auth import ResourceLoader
from headwater.auth.policy import Resource
from headwater.errors import NotFound
from headwater.jobs.models import Job

__all__ = ["job_owner", "job_resource"]


def job_resource(session: Session, *, job_id: str) -> Resource:
    """The job ``job_id`` as a decision sees it: owned by its user; 404 when there is no such job."""
    user = session.scalar(select(Job.user_name).where(Job.id == job_id))
    if user is None:
        raise NotFound(f"no job with id {job_id!r}", detail={"field": "id"})
    return Resource(kind="job", name=job_id, owners=(user,))


def job_owner(job_id: Annotated[str, Path(min_length=1, max_length=255)]) -> ResourceLoader:
    """The ``owned_by`` of a route on ``/api/v1/jobs/{job_id}``."""
    return partial(job_resource, job_id=job_id)
