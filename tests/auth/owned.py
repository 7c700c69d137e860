"""Things the edge tests act on, made through the services: a manual dataset with owners, a queued job."""

from __future__ import annotations

from sqlalchemy import Engine

from headwater.catalog import service as catalog
from headwater.catalog.schemas import DatasetCreate, FieldIn, Owner
from headwater.db import make_sessionmaker
from headwater.jobs import service as jobs
from headwater.jobs.access import trusted_submitter
from headwater.jobs.models import ClusterType
from headwater.jobs.schemas import ClusterCreate, CommandCreate, JobSubmit

__all__ = ["make_dataset", "make_job"]


def make_dataset(engine: Engine, name: str = "shop.orders", *, owners: tuple[str, ...] = ()) -> tuple[int, str]:
    """A manual dataset owned by ``owners``: its id and ETag."""
    with make_sessionmaker(engine).begin() as session:
        data = DatasetCreate(
            name=name,
            fields=[FieldIn(name="id", type="bigint")],
            owners=[Owner(name=owner) for owner in owners],
        )
        dataset = catalog.register_dataset(session, data=data)
        return dataset.id, catalog.etag_of(dataset)


def make_job(engine: Engine, job_id: str, *, user: str) -> str:
    """A job of ``user``, resolved to a shell cluster and queued (no worker runs it): its id."""
    with make_sessionmaker(engine).begin() as session:
        if jobs.list_clusters(session, sort="name", cursor=None, limit=1).items == []:
            jobs.create_cluster(session, data=ClusterCreate(name="local", type=ClusterType.SHELL, tags=["sched:test"]))
            jobs.create_command(session, data=CommandCreate(name="sh", executable=["/bin/sh", "-c"], tags=["type:sh"]))
        request = JobSubmit(
            id=job_id,
            name="edge-test",
            user=user,
            command_args=["sleep 60"],
            cluster_criteria=[["sched:test"]],
            command_criteria=["type:sh"],
        )
        return jobs.submit_job(session, data=request, submitter=trusted_submitter(user)).id
