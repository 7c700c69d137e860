"""Batch reads of jobs for many jobs at once: what GraphQL's batch loading calls (one query per chunk of ids,
never one per job)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.db import in_chunks
from headwater.jobs.models import Job, JobAttempt, JobTransition
from headwater.jobs.schemas import AttemptOut, ClusterAppOut, TransitionOut

__all__ = ["attempts_of_jobs", "cluster_apps_of_jobs", "transitions_of_jobs"]


def transitions_of_jobs(session: Session, *, job_pks: Sequence[int]) -> dict[int, list[TransitionOut]]:
    """The status changes of each job (by primary key), oldest first."""
    found: dict[int, list[TransitionOut]] = {pk: [] for pk in job_pks}
    for chunk in in_chunks(list(job_pks)):
        rows = session.scalars(select(JobTransition).where(JobTransition.job_pk.in_(chunk)).order_by(JobTransition.id))
        for row in rows:
            found[row.job_pk].append(TransitionOut.model_validate(row, from_attributes=True))
    return found


def attempts_of_jobs(session: Session, *, job_pks: Sequence[int]) -> dict[int, list[AttemptOut]]:
    """The attempts of each job (by primary key), first first."""
    found: dict[int, list[AttemptOut]] = {pk: [] for pk in job_pks}
    for chunk in in_chunks(list(job_pks)):
        rows = session.scalars(
            select(JobAttempt).where(JobAttempt.job_pk.in_(chunk)).order_by(JobAttempt.job_pk, JobAttempt.attempt)
        )
        for row in rows:
            found[row.job_pk].append(AttemptOut.model_validate(row, from_attributes=True))
    return found


def cluster_apps_of_jobs(session: Session, *, job_pks: Sequence[int]) -> dict[int, ClusterAppOut]:
    """The cluster-manager application of each job (by primary key) that has one."""
    found: dict[int, ClusterAppOut] = {}
    columns = (Job.pk, Job.external_manager, Job.external_id, Job.external_state, Job.external_raw_state)
    for chunk in in_chunks(list(job_pks)):
        for row in session.execute(select(*columns).where(Job.pk.in_(chunk), Job.external_id.is_not(None))):
            app = ClusterAppOut.of(row)
            if app is not None:
                found[row.pk] = app
    return found
