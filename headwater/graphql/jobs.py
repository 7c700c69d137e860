"""GraphQL over jobs: jobs with their history, attempts and lineage run, clusters and commands, and submitting
and killing jobs. Types derive from the REST answer models (:mod:`headwater.jobs.schemas`); each resolver hands
off to the jobs service the REST route calls."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import strawberry
from pydantic import BaseModel
from sqlalchemy.orm import Session
from strawberry.scalars import JSON

from headwater.auth.actions import Action
from headwater.auth.policy import Resource
from headwater.graphql.arguments import as_filters, page_size, validated
from headwater.graphql.context import Info, Siblings
from headwater.graphql.derive import Page, from_model, input_from, to_graphql
from headwater.graphql.errors import answers_errors, result
from headwater.graphql.lineage import Run, runs_by_id
from headwater.jobs import access
from headwater.jobs import service as jobs
from headwater.jobs.access import job_resource
from headwater.jobs.lookups import attempts_of_jobs, cluster_apps_of_jobs, transitions_of_jobs
from headwater.jobs.models import ClusterStatus, ClusterType, CommandStatus, JobStatus
from headwater.jobs.models import Job as JobRow
from headwater.jobs.schemas import (
    AttemptOut,
    ClusterAppOut,
    ClusterOut,
    CommandOut,
    JobOut,
    JobSubmit,
    TransitionOut,
)
from headwater.lineage.schemas import RunOut
from headwater.pagination import PageResult

__all__ = ["JobsMutation", "JobsQuery"]

for _enum in (JobStatus, ClusterType, ClusterStatus, CommandStatus):
    strawberry.enum(_enum)


@from_model(TransitionOut, name="JobTransition")
class JobTransition:
    """One status change of a job."""


@from_model(AttemptOut, name="JobAttempt")
class JobAttempt:
    """One run of a job's process: where, with which process id, how it ended."""


@from_model(ClusterAppOut, name="JobClusterApp")
class JobClusterApp:
    """The application a job runs on a cluster manager (a Spark driver, a YARN application, a Flink job)."""


def _cluster_apps_of(session: Session, job_pks: list[int]) -> dict[int, Any]:  # ClusterAppOut
    return {key: to_graphql(found) for key, found in cluster_apps_of_jobs(session, job_pks=job_pks).items()}


def _transitions_of(session: Session, job_pks: list[int]) -> dict[int, list[Any]]:  # TransitionOut
    return {key: to_graphql(found) for key, found in transitions_of_jobs(session, job_pks=job_pks).items()}


def _attempts_of(session: Session, job_pks: list[int]) -> dict[int, list[Any]]:  # AttemptOut
    return {key: to_graphql(found) for key, found in attempts_of_jobs(session, job_pks=job_pks).items()}


@from_model(JobOut, name="Job", ids=("id",))
class Job:
    """A job submitted to run on a cluster chosen by tags (Genie's job), and the lineage run it reports."""

    run_id: str = strawberry.field(description="The OpenLineage run id of the job's lineage.")
    pk: strawberry.Private[int]
    siblings: strawberry.Private[Siblings[int]]  # by job pk
    run_siblings: strawberry.Private[Siblings[str]]  # by lineage run id

    @strawberry.field(description="The job's status history, oldest first.")
    def transitions(self) -> list[JobTransition]:
        """Every status change of the job."""
        return self.siblings.load("transitions", self.pk, _transitions_of) or []

    @strawberry.field(description="The runs of the job's process, first first (more than one when retried).")
    def attempts(self) -> list[JobAttempt]:
        """Every attempt of the job."""
        return self.siblings.load("attempts", self.pk, _attempts_of) or []

    @strawberry.field(description="The application it runs on a cluster manager, once submitted (cluster mode).")
    def cluster_app(self) -> JobClusterApp | None:
        """The job's cluster-manager application, or null."""
        found: JobClusterApp | None = self.siblings.load("cluster_apps", self.pk, _cluster_apps_of)
        return found

    @strawberry.field(description="The lineage run the job reported, once it has reported one.")
    def lineage_run(self) -> Run | None:
        """The job's lineage run, or null before its first event."""
        found: RunOut | None = self.run_siblings.load("runs", self.run_id, runs_by_id)
        return found  # type: ignore[return-value]


def jobs_of(session: Session, rows: list[JobRow]) -> list[Job]:
    """GraphQL jobs of rows returned together, from their REST answers (they batch their loads)."""
    outs = jobs.job_out(session, rows)
    siblings = Siblings(session, [r.pk for r in rows])
    run_siblings = Siblings(session, [o.run_id for o in outs])
    return [
        Job(**dict(out), pk=row.pk, siblings=siblings, run_siblings=run_siblings)
        for row, out in zip(rows, outs, strict=True)
    ]


@from_model(ClusterOut, name="Cluster", exclude=("id",))
class Cluster:
    """Where jobs run: a Spark, Flink or shell cluster, chosen for a job by its tags."""


@from_model(CommandOut, name="Command", exclude=("id",))
class Command:
    """What a job runs: a program with its default arguments, the applications it needs, the clusters it runs on."""


JobResult: Any = result("JobResult", Job)


@strawberry.type
class JobPage(Page[Job]):
    """One page of jobs; pass ``nextCursor`` as ``after`` for the next."""


@strawberry.type
class ClusterPage(Page[Cluster]):
    """One page of clusters."""


@strawberry.type
class CommandPage(Page[Command]):
    """One page of commands."""


JobPageResult: Any = result("JobPageResult", JobPage)
ClusterPageResult: Any = result("ClusterPageResult", ClusterPage)
CommandPageResult: Any = result("CommandPageResult", CommandPage)

JobFilter = input_from(jobs.JobFilters, name="JobFilter", description="Job list filters; they combine with AND.")


@strawberry.input
class DatasetRefInput:
    namespace: str
    name: str


@strawberry.input(description="A job request (Genie's): the cluster and command are chosen by tags.")
class JobSubmitInput:
    name: str
    user: str | None = strawberry.field(
        default=None,
        description="Who the job runs as: by default (and without the permission jobs.submit_as, only) the "
        "principal submitting it.",
    )
    cluster_criteria: list[list[str]] = strawberry.field(
        description="Tag sets tried in order: the first set some UP cluster carries all of wins."
    )
    command_criteria: list[str] = strawberry.field(description="Tags the command must carry.")
    id: str | None = strawberry.field(default=None, description="Your own id for the job (idempotent submission).")
    version: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    command_args: list[str] | None = None
    environment: JSON | None = None
    timeout: int | None = strawberry.field(default=None, description="Seconds before the job is killed.")
    memory_mb: int | None = strawberry.field(
        default=None,
        description="Memory (MB) the job needs, counted against its cluster's maxMemoryMb; default: its "
        "command's, else the cluster's defaultJobMemoryMb.",
    )
    applications: list[str] | None = None
    max_attempts: int | None = None
    archive_logs: bool | None = None
    inputs: list[DatasetRefInput] | None = None
    outputs: list[DatasetRefInput] | None = None


def _named_page(
    kind: type,
    lister: Callable[..., PageResult[Any]],
    model: type[BaseModel],
    info: Info,
    arguments: tuple[str, int, str | None],
) -> Page[Any]:
    """A page of clusters or commands (``sort, first, after``), as their REST answers."""
    sort, first, after = arguments
    page = lister(info.context.session, sort=sort, cursor=after, limit=page_size(first, 100))
    items = to_graphql([model.model_validate(row) for row in page.items])
    return kind(items=items, next_cursor=page.next_cursor, total=page.total)


@strawberry.type
class JobsQuery:
    """What tools read of jobs."""

    @strawberry.field(description="The clusters jobs run on, chosen by their tags.")
    @answers_errors(Action.JOBS_READ)
    def clusters(self, info: Info, sort: str = "name", first: int = 50, after: str | None = None) -> ClusterPageResult:
        return _named_page(ClusterPage, jobs.list_clusters, ClusterOut, info, (sort, first, after))

    @strawberry.field(description="The commands jobs run (a program and its default arguments), chosen by tags.")
    @answers_errors(Action.JOBS_READ)
    def commands(self, info: Info, sort: str = "name", first: int = 50, after: str | None = None) -> CommandPageResult:
        return _named_page(CommandPage, jobs.list_commands, CommandOut, info, (sort, first, after))

    @strawberry.field(description="One job by id.")
    @answers_errors(Action.JOBS_READ)
    def job(self, info: Info, id: strawberry.ID) -> JobResult:
        session = info.context.session
        return jobs_of(session, [jobs.get_job(session, job_id=str(id))])[0]

    @strawberry.field(
        description="Jobs, newest first by default (sort: created, name, status; '-' descending); "
        'filter: {user: "me"} lists your own.'
    )
    @answers_errors(Action.JOBS_READ)
    def jobs(
        self,
        info: Info,
        filter: JobFilter | None = None,  # type: ignore[valid-type]
        sort: str = "-created",
        first: int = 50,
        after: str | None = None,
    ) -> JobPageResult:
        session = info.context.session
        filters = as_filters(jobs.JobFilters, filter or JobFilter())
        filters = dataclasses.replace(filters, user=access.user_filter(info.context.principal, filters.user))
        page = jobs.list_jobs(session, filters=filters, sort=sort, cursor=after, limit=page_size(first, 100))
        return JobPage(items=jobs_of(session, page.items), next_cursor=page.next_cursor, total=page.total)


def _job_of(session: Session, arguments: dict[str, Any]) -> Resource:
    """The job a mutation names by ``id``, for the permission check."""
    return job_resource(session, job_id=str(arguments["id"]))


@strawberry.type
class JobsMutation:
    """What tools change in jobs."""

    @strawberry.field(
        description="Submit a job: resolved at once to a cluster and command by tags (or INVALID), "
        "then queued for a worker."
    )
    @answers_errors(Action.JOBS_SUBMIT)
    def submit_job(self, info: Info, input: JobSubmitInput) -> JobResult:
        session = info.context.session
        data = {key: value for key, value in strawberry.asdict(input).items() if value is not None}
        request = validated(JobSubmit, data, "input")
        submitter = access.submitter_of(info.context.principal, request.user, info.context.settings)
        selector = info.context.settings.jobs_cluster_selector
        row = jobs.submit_job(session, data=request, submitter=submitter, selector=selector)
        return jobs_of(session, [row])[0]

    @strawberry.field(description="Kill a job: at once when no process runs yet, else by its worker.")
    @answers_errors(Action.JOBS_KILL, owned_by=_job_of)  # its user may, without the role
    def kill_job(self, info: Info, id: strawberry.ID) -> JobResult:
        session = info.context.session
        return jobs_of(session, [jobs.request_kill(session, job_id=str(id))])[0]
