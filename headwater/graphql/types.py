"""The GraphQL object types: each is built from what a domain function returns (an ORM row or the REST answer
model), so GraphQL and REST show the same facts under the same names (camelCase here).

Ids are ``ID`` (strings of digits for catalog and lineage ids): GraphQL's ``Int`` is 32-bit, database ids are
not. Errors are results, not exceptions (``DatasetResult = Dataset | NotFoundError``, ...): every error type
implements ``Error`` with a ``message`` a person can act on, a ``code`` and the ``field`` at fault.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any

import strawberry
from sqlalchemy import select
from sqlalchemy.orm import Session
from strawberry.scalars import JSON

from headwater.catalog.models import ChangeKind, DatasetKind, Field, SourceKind, SourceStatus
from headwater.catalog.models import Dataset as DatasetRow
from headwater.catalog.schemas import ChangeEventOut, SchemaVersionOut
from headwater.catalog.service import FIELD_VIEW_COLUMNS, datasets_by_id, list_schema_versions
from headwater.db import in_chunks
from headwater.errors import Conflict, HeadwaterError, InvalidInput, NotFound, PreconditionFailed
from headwater.graphql.context import Siblings
from headwater.jobs.models import ClusterStatus, ClusterType, CommandStatus, JobAttempt, JobStatus, JobTransition
from headwater.jobs.models import Job as JobRow
from headwater.jobs.schemas import AttemptOut, ClusterOut, CommandOut, JobOut
from headwater.jobs.service import job_out
from headwater.lineage.models import EdgeOrigin
from headwater.lineage.schemas import (
    EdgeOut,
    GraphOut,
    ImpactOut,
    ManualEdgeOut,
    NodeOut,
    PathOut,
    RunOut,
    SqlLineageOut,
)
from headwater.search.base import DocumentType, MatchTier, SearchHit, SearchPage

__all__ = [
    "ConflictError",
    "Dataset",
    "Error",
    "Impact",
    "InvalidInputError",
    "Job",
    "LineageGraph",
    "LineagePath",
    "NotFoundError",
    "PreconditionFailedError",
    "Run",
    "SearchResults",
    "UnavailableError",
    "error_of",
]

for _enum in (
    DatasetKind,
    SourceKind,
    SourceStatus,
    JobStatus,
    ClusterType,
    ClusterStatus,
    CommandStatus,
    DocumentType,
    MatchTier,
    EdgeOrigin,
):
    strawberry.enum(_enum)


@strawberry.enum
class NodeKind(enum.Enum):
    """What a lineage node is."""

    DATASET = "dataset"
    COLUMN = "column"
    JOB = "job"


@strawberry.enum
class TransformationType(enum.Enum):
    """OpenLineage's column-lineage transformation types."""

    DIRECT = "DIRECT"
    INDIRECT = "INDIRECT"


# ---------------------------------------------------------------------------------------------- errors


@strawberry.interface
class Error:
    """Why a field could not be answered: ``message`` says what to change; ``field`` names the argument at fault."""

    message: str
    code: str
    field: str | None


@strawberry.type
class NotFoundError(Error):
    """The named dataset, column, job or run does not exist."""


@strawberry.type
class InvalidInputError(Error):
    """An argument is invalid: out of range, malformed, or contradicting another."""


@strawberry.type
class ConflictError(Error):
    """The request contradicts current state (a duplicate job id, a job that has already ended, ...)."""


@strawberry.type
class PreconditionFailedError(Error):
    """``expectedRevision`` is stale: someone else changed the dataset first; read it again."""


@strawberry.type
class UnavailableError(Error):
    """A backend (the search index, the database) cannot answer now; try again shortly."""


def error_of(exc: HeadwaterError) -> Error:
    """The typed GraphQL result of a domain error."""
    kind: type[Error] = UnavailableError
    if isinstance(exc, NotFound):
        kind = NotFoundError
    elif isinstance(exc, InvalidInput):
        kind = InvalidInputError
    elif isinstance(exc, Conflict):
        kind = ConflictError
    elif isinstance(exc, PreconditionFailed):
        kind = PreconditionFailedError
    where = exc.detail.get("field") if isinstance(exc.detail, dict) else None
    return kind(message=exc.message, code=exc.code, field=str(where) if where is not None else None)


def to_id(value: int | None) -> strawberry.ID | None:
    """A database id as GraphQL's ID."""
    return None if value is None else strawberry.ID(str(value))


# --------------------------------------------------------------------------------------------- catalog


@strawberry.type
class Owner:
    """Who owns a dataset, in which role."""

    name: str
    role: str


@strawberry.type(name="Field")
class DatasetField:
    """One field (column) of a dataset's current schema; nested fields have a dotted ``path``."""

    id: strawberry.ID = strawberry.field(description="The catalog's id of the column: what lineage queries take.")
    path: str
    name: str
    parent_path: str | None
    position: int
    type: str
    normalized_type: str
    nullable: bool
    source_field_id: int | None = strawberry.field(description="The source's own field id (Iceberg), if it has one.")
    source_description: str | None
    description: str | None
    tags: list[str]


def _fields_of(session: Session, dataset_ids: list[int]) -> dict[int, list[DatasetField]]:
    found: dict[int, list[DatasetField]] = {i: [] for i in dataset_ids}
    for chunk in in_chunks(dataset_ids):
        rows = session.execute(
            select(Field.dataset_id, Field.id, *FIELD_VIEW_COLUMNS)
            .where(Field.dataset_id.in_(chunk))
            .order_by(Field.dataset_id, Field.position)
        )
        for row in rows:
            found[row.dataset_id].append(
                DatasetField(
                    id=strawberry.ID(str(row.id)),
                    path=row.path,
                    name=row.name,
                    parent_path=row.parent_path,
                    position=row.position,
                    type=row.type,
                    normalized_type=row.normalized_type,
                    nullable=row.nullable,
                    source_field_id=row.field_id,
                    source_description=row.source_description,
                    description=row.user_description,
                    tags=list(row.tags or []),
                )
            )
    return found


@strawberry.type
class Dataset:
    """A table, view, topic or file of a federated source, with its current schema and what people say of it."""

    id: strawberry.ID
    namespace: str
    name: str
    kind: DatasetKind
    source: str
    source_kind: SourceKind
    format: str | None
    location: str | None
    source_description: str | None
    description: str | None
    tags: list[str]
    owners: list[Owner]
    schema_version: int | None
    field_count: int
    revision: int = strawberry.field(description="Pass it back as expectedRevision to guard an update.")
    partitioning: list[dict[str, Any]] = strawberry.field(graphql_type=JSON)
    properties: dict[str, str] = strawberry.field(graphql_type=JSON)
    source_properties: dict[str, str] = strawberry.field(graphql_type=JSON)
    created_at: dt.datetime
    updated_at: dt.datetime
    deleted_at: dt.datetime | None
    delete_reason: str | None
    siblings: strawberry.Private[Siblings[int]]

    @strawberry.field(description="The current schema's fields, in order (loaded for every dataset of a page at once).")
    def fields(self) -> list[DatasetField]:
        """The fields of the current schema."""
        return self.siblings.load("fields", int(self.id), _fields_of) or []

    @strawberry.field(
        description="Schema versions, newest first, each with its diff from the one before (one "
        "query per dataset asked)."
    )
    def schema_history(
        self, info: strawberry.Info, first: int = 20, after: str | None = None
    ) -> SchemaVersionPage | None:  # null, with an error naming the argument, when an argument is bad
        """A page of the dataset's schema history."""
        if not 1 <= first <= 100:
            raise InvalidInput(f"first must be between 1 and 100, got {first}", detail={"field": "first"})
        page = list_schema_versions(info.context.session, dataset_id=int(self.id), cursor=after, limit=first)
        return SchemaVersionPage(
            items=[SchemaVersion.of(SchemaVersionOut.model_validate(v)) for v in page.items],
            next_cursor=page.next_cursor,
            total=page.total,
        )

    @classmethod
    def of(cls, row: DatasetRow, siblings: Siblings[int]) -> Dataset:
        """The GraphQL dataset of an ORM row whose tags and owners are loaded."""
        return cls(
            id=strawberry.ID(str(row.id)),
            namespace=row.namespace,
            name=row.name,
            kind=DatasetKind(row.kind),
            source=row.source.name,
            source_kind=SourceKind(row.source.kind),
            format=row.format,
            location=row.location,
            source_description=row.source_description,
            description=row.user_description,
            tags=[t.tag for t in row.tags],
            owners=[Owner(name=o.owner, role=o.role) for o in row.owners],
            schema_version=row.current_schema_version,
            field_count=row.field_count,
            revision=row.revision,
            partitioning=row.partitioning,
            properties=row.user_properties,
            source_properties=row.source_properties,
            created_at=row.created_at,
            updated_at=row.updated_at,
            deleted_at=row.deleted_at,
            delete_reason=row.delete_reason,
            siblings=siblings,
        )

    @classmethod
    def page(cls, session: Session, rows: list[DatasetRow]) -> list[Dataset]:
        """GraphQL datasets of rows returned together (they batch their loads)."""
        siblings = Siblings(session, [r.id for r in rows])
        return [cls.of(r, siblings) for r in rows]


@strawberry.type
class FieldRename:
    """A field that kept its identity (source field id) under a new path."""

    field_id: int | None
    old_path: str
    new_path: str


@strawberry.type
class FieldRetype:
    """A field whose type or nullability changed."""

    path: str
    old_type: str
    new_type: str
    old_nullable: bool
    new_nullable: bool


@strawberry.type
class SchemaDiff:
    """What changed from the version before: paths added and removed, fields renamed and retyped."""

    added: list[str]
    removed: list[str]
    renamed: list[FieldRename]
    retyped: list[FieldRetype]


@strawberry.type
class SchemaVersion:
    """One immutable schema version of a dataset."""

    version: int
    fingerprint: str
    source_schema_id: str | None
    created_at: dt.datetime
    diff: SchemaDiff
    fields: list[dict[str, Any]] = strawberry.field(graphql_type=JSON)

    @classmethod
    def of(cls, version: SchemaVersionOut) -> SchemaVersion:
        """The GraphQL form of a schema version."""
        diff = version.diff
        return cls(
            version=version.version,
            fingerprint=version.fingerprint,
            source_schema_id=version.source_schema_id,
            created_at=version.created_at,
            diff=SchemaDiff(
                added=diff.added,
                removed=diff.removed,
                renamed=[FieldRename(**r.model_dump()) for r in diff.renamed],
                retyped=[FieldRetype(**r.model_dump()) for r in diff.retyped],
            ),
            fields=version.fields,
        )


@strawberry.type
class SchemaVersionPage:
    """One page of schema history; pass ``nextCursor`` as ``after`` for older versions."""

    items: list[SchemaVersion]
    next_cursor: str | None
    total: int


def _datasets_by_id(session: Session, dataset_ids: list[int]) -> dict[int, Dataset]:
    rows = datasets_by_id(session, dataset_ids=dataset_ids)
    return {int(d.id): d for d in Dataset.page(session, rows)}


@strawberry.type
class DatasetPage:
    """One page of datasets; pass ``nextCursor`` as ``after`` for the next."""

    items: list[Dataset]
    next_cursor: str | None
    total: int


strawberry.enum(ChangeKind)


@strawberry.type
class ChangeEvent:
    """One entry of the catalog's change feed (created, schema_changed, metadata_updated, deleted, restored)."""

    id: strawberry.ID
    kind: ChangeKind
    entity_type: str
    entity_id: strawberry.ID
    namespace: str | None
    name: str | None
    payload: dict[str, Any] = strawberry.field(graphql_type=JSON)
    created_at: dt.datetime

    @classmethod
    def of(cls, event: ChangeEventOut) -> ChangeEvent:
        """The GraphQL form of a change event."""
        data = event.model_dump()
        return cls(**{**data, "id": strawberry.ID(str(event.id)), "entity_id": strawberry.ID(str(event.entity_id))})


@strawberry.type
class ChangeFeed:
    """Change events after a position, oldest first; pass ``nextAfter`` back as ``after`` to follow the feed."""

    items: list[ChangeEvent]
    next_after: strawberry.ID


@strawberry.type
class Source:
    """A federated system (Iceberg catalog, Hive Metastore, Kafka cluster, database) or the manual source."""

    name: str
    kind: SourceKind
    namespace: str
    description: str | None
    status: SourceStatus
    status_message: str | None
    last_sync_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


@strawberry.type
class SourceList:
    """The federated sources (a platform has tens, not thousands: one list, no pages)."""

    items: list[Source]


# ---------------------------------------------------------------------------------------------- search


@strawberry.type
class FacetValue:
    """How many hits carry one value of a facet."""

    value: str
    count: int


@strawberry.type
class Facet:
    """The counts of one facet (source, kind, namespace, tag, owner, format) over every hit."""

    name: str
    values: list[FacetValue]


@strawberry.type
class Correction:
    """A query word the search widened for typos, and what it also matched."""

    word: str
    suggestions: list[str]


@strawberry.type
class SearchHitResult:
    """One hit: a dataset or a column, why it matched (``match``) and what matched (``highlights``)."""

    key: str
    type: DocumentType
    dataset_id: strawberry.ID
    name: str
    dataset_name: str
    namespace: str
    source: str
    kind: str
    format: str | None
    description: str | None
    tags: list[str]
    owners: list[str]
    updated_at: dt.datetime
    match: MatchTier | None
    score: float | None
    highlights: dict[str, list[str]] = strawberry.field(graphql_type=JSON)
    siblings: strawberry.Private[Siblings[int]]

    @strawberry.field(description="The catalog dataset of the hit (loaded for every hit of the page at once).")
    def dataset(self) -> Dataset | None:
        """The hit's dataset, or null when it was deleted since it was indexed."""
        return self.siblings.load("datasets", int(self.dataset_id), _datasets_by_id)


@strawberry.type(name="SearchPage")
class SearchResults:
    """A page of hits with facet counts; ``totalApproximate`` when a broad query was ranked over a capped set."""

    items: list[SearchHitResult]
    next_cursor: str | None
    total: int
    total_approximate: bool
    facets: list[Facet]
    facets_approximate: bool
    corrections: list[Correction]

    @classmethod
    def of(cls, session: Session, page: SearchPage) -> SearchResults:
        """The GraphQL page of a search backend's answer."""
        siblings = Siblings(session, [hit.dataset_id for hit in page.items])
        return cls(
            items=[_hit(hit, siblings) for hit in page.items],
            next_cursor=page.next_cursor,
            total=page.total,
            total_approximate=page.total_approximate,
            facets=[
                Facet(name=name, values=[FacetValue(value=c.value, count=c.count) for c in counts])
                for name, counts in page.facets.items()
            ],
            facets_approximate=page.facets_approximate,
            corrections=[Correction(word=w, suggestions=list(s)) for w, s in page.corrections.items()],
        )


def _hit(hit: SearchHit, siblings: Siblings[int]) -> SearchHitResult:
    return SearchHitResult(
        key=hit.key,
        type=hit.type,
        dataset_id=strawberry.ID(str(hit.dataset_id)),
        name=hit.name,
        dataset_name=hit.dataset_name,
        namespace=hit.namespace,
        source=hit.source,
        kind=hit.kind,
        format=hit.format,
        description=hit.description,
        tags=list(hit.tags),
        owners=list(hit.owners),
        updated_at=hit.updated_at,
        match=hit.match,
        score=hit.score,
        highlights=hit.highlights,
        siblings=siblings,
    )


@strawberry.type
class Suggestions:
    """Autocomplete answers, best first."""

    items: list[Suggestion]


@strawberry.type
class Suggestion:
    """One autocomplete answer."""

    text: str
    type: DocumentType
    dataset_id: strawberry.ID
    namespace: str
    kind: str


# --------------------------------------------------------------------------------------------- lineage


@strawberry.type
class LineageNode:
    """A dataset, a column or a job of a lineage answer; ``path`` is one shortest path to it from the root."""

    kind: NodeKind
    id: strawberry.ID
    namespace: str
    name: str
    field: str | None
    dataset_id: strawberry.ID | None
    distance: int | None
    path: list[str] | None

    @classmethod
    def of(cls, node: NodeOut) -> LineageNode:
        """The GraphQL node of a lineage answer's node."""
        return cls(
            kind=NodeKind(node.kind),
            id=strawberry.ID(str(node.id)),
            namespace=node.namespace,
            name=node.name,
            field=node.field,
            dataset_id=to_id(node.dataset_id),
            distance=node.distance,
            path=node.path,
        )


@strawberry.type
class LineageEdge:
    """An edge with its provenance: how it is known, by whom, when first and last seen, the run that last
    confirmed it, and when it was retired (no longer stated)."""

    source: str
    target: str
    job: str | None
    transformation_type: str | None
    subtype: str | None
    origin: str
    producer: str | None
    first_seen: dt.datetime
    last_seen: dt.datetime
    retired_at: dt.datetime | None
    last_run_id: str | None

    @classmethod
    def of(cls, edge: EdgeOut) -> LineageEdge:
        """The GraphQL edge of a lineage answer's edge."""
        return cls(**edge.model_dump())


@strawberry.type
class LineageGraph:
    """A bounded piece of the lineage graph around one node; ``isPartial`` when a bound cut it."""

    root: str
    direction: str
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    is_partial: bool

    @classmethod
    def of(cls, answer: GraphOut) -> LineageGraph:
        """The GraphQL form of ``graph_around``'s answer."""
        return cls(
            root=answer.root,
            direction=answer.direction,
            nodes=[LineageNode.of(n) for n in answer.nodes],
            edges=[LineageEdge.of(e) for e in answer.edges],
            is_partial=answer.isPartial,
        )


@strawberry.type
class ImpactOwner:
    """An owner of affected datasets, at the distance of the nearest one."""

    owner: str
    role: str
    distance: int
    datasets: list[str]


@strawberry.type
class Impact:
    """Everything downstream of a column or dataset: what breaks if it changes."""

    root: str
    total: int
    is_partial: bool
    partial_reason: str | None
    columns: list[LineageNode]
    datasets: list[LineageNode]
    jobs: list[LineageNode]
    owners: list[ImpactOwner]
    elapsed_ms: float

    @classmethod
    def of(cls, answer: ImpactOut) -> Impact:
        """The GraphQL form of ``impact``'s answer."""
        return cls(
            root=answer.root,
            total=answer.total,
            is_partial=answer.isPartial,
            partial_reason=answer.partial_reason,
            columns=[LineageNode.of(n) for n in answer.columns],
            datasets=[LineageNode.of(n) for n in answer.datasets],
            jobs=[LineageNode.of(n) for n in answer.jobs],
            owners=[ImpactOwner(**o.model_dump()) for o in answer.owners],
            elapsed_ms=answer.elapsed_ms,
        )


@strawberry.type
class LineagePath:
    """A shortest downstream path between two nodes (``found`` false and empty when none within the bound)."""

    source: str
    target: str
    found: bool
    path: list[str]
    is_partial: bool

    @classmethod
    def of(cls, answer: PathOut) -> LineagePath:
        """The GraphQL form of ``path_between``'s answer."""
        return cls(
            source=answer.source,
            target=answer.target,
            found=answer.found,
            path=answer.path,
            is_partial=answer.isPartial,
        )


@strawberry.type
class ManualEdge(LineageEdge):
    """An edge declared by hand: its id and level (to withdraw it) and whether the declaration created it
    (false: it was known already, and its provenance was refreshed)."""

    id: strawberry.ID
    level: str
    created: bool

    @classmethod
    def of_manual(cls, edge: ManualEdgeOut) -> ManualEdge:
        """The GraphQL form of a declared edge."""
        return cls(**{**edge.model_dump(), "id": strawberry.ID(str(edge.id))})


@strawberry.type
class Withdrawn:
    """A manual edge retired now; as-of queries before now still show it."""

    level: str
    id: strawberry.ID


@strawberry.type
class DatasetName:
    """A dataset by its OpenLineage identity."""

    namespace: str
    name: str


@strawberry.type
class SqlColumn:
    """The inputs of one output column found in SQL (each a column with its transformation)."""

    field: str
    inputs: list[dict[str, Any]] = strawberry.field(graphql_type=JSON)


@strawberry.type
class SqlStatement:
    """The lineage of one SQL statement: its target, the tables it reads, and column by column."""

    kind: str
    target: DatasetName | None
    inputs: list[DatasetName]
    columns: list[SqlColumn]
    dataset_inputs: list[dict[str, Any]] = strawberry.field(graphql_type=JSON)
    warnings: list[str]


@strawberry.type
class SqlLineage:
    """The lineage found in a SQL text, statement by statement; ``appliedEdges`` when it was recorded."""

    dialect: str
    parsed_as: str
    statements: list[SqlStatement]
    applied_edges: int

    @classmethod
    def of(cls, answer: SqlLineageOut) -> SqlLineage:
        """The GraphQL form of ``analyse_sql``'s answer."""
        return cls(
            dialect=answer.dialect,
            parsed_as=answer.parsed_as,
            statements=[
                SqlStatement(
                    kind=st.kind,
                    target=DatasetName(**st.target) if st.target else None,
                    inputs=[DatasetName(**i) for i in st.inputs],
                    columns=[SqlColumn(field=c.field, inputs=c.inputs) for c in st.columns],
                    dataset_inputs=st.dataset_inputs,
                    warnings=st.warnings,
                )
                for st in answer.statements
            ],
            applied_edges=answer.applied_edges,
        )


@strawberry.type
class Run:
    """A run known to lineage (an OpenLineage run, or the run of a job Headwater ran), with its state."""

    run_id: str
    job_namespace: str
    job_name: str
    state: str | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    state_time: dt.datetime | None
    parent_run_id: str | None
    event_count: int
    children: list[str]

    @classmethod
    def of(cls, run: RunOut) -> Run:
        """The GraphQL form of a lineage run."""
        return cls(**run.model_dump())


# ------------------------------------------------------------------------------------------------ jobs


@strawberry.type(name="JobTransition")
class JobTransitionEntry:
    """One status change of a job."""

    from_status: JobStatus | None
    to_status: JobStatus
    reason: str | None
    at: dt.datetime


def _transitions_of(session: Session, job_pks: list[int]) -> dict[int, list[JobTransitionEntry]]:
    found: dict[int, list[JobTransitionEntry]] = {pk: [] for pk in job_pks}
    for chunk in in_chunks(job_pks):
        rows = session.scalars(select(JobTransition).where(JobTransition.job_pk.in_(chunk)).order_by(JobTransition.id))
        for t in rows:
            found[t.job_pk].append(
                JobTransitionEntry(
                    from_status=JobStatus(t.from_status) if t.from_status else None,
                    to_status=JobStatus(t.to_status),
                    reason=t.reason,
                    at=t.at,
                )
            )
    return found


@strawberry.type(name="JobAttempt")
class JobAttemptEntry:
    """One run of a job's process: where, with which process id, how it ended."""

    attempt: int
    worker_id: str | None
    host: str | None
    pid: int | None
    exit_code: int | None
    outcome: JobStatus | None
    reason: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None


def _attempts_of(session: Session, job_pks: list[int]) -> dict[int, list[JobAttemptEntry]]:
    found: dict[int, list[JobAttemptEntry]] = {pk: [] for pk in job_pks}
    for chunk in in_chunks(job_pks):
        rows = session.scalars(
            select(JobAttempt).where(JobAttempt.job_pk.in_(chunk)).order_by(JobAttempt.job_pk, JobAttempt.attempt)
        )
        for a in rows:
            found[a.job_pk].append(JobAttemptEntry(**AttemptOut.model_validate(a).model_dump()))
    return found


def _runs_of(session: Session, run_ids: list[str]) -> dict[str, Run]:
    from headwater.lineage.runs import runs_by_uuid

    return {run_id: Run.of(run) for run_id, run in runs_by_uuid(session, run_ids=run_ids).items()}


@strawberry.type
class Job:
    """A job submitted to run on a cluster chosen by tags (Genie's job), and the lineage run it reports."""

    id: strawberry.ID
    run_id: str = strawberry.field(description="The OpenLineage run id of the job's lineage.")
    name: str
    user: str
    version: str | None
    tags: list[str]
    status: JobStatus
    status_message: str | None
    cluster: str | None
    command: str | None
    exit_code: int | None
    attempt: int
    max_attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    pk: strawberry.Private[int]
    siblings: strawberry.Private[Siblings[int]]  # by job pk
    run_siblings: strawberry.Private[Siblings[str]]  # by lineage run id

    @strawberry.field(description="The job's status history, oldest first.")
    def transitions(self) -> list[JobTransitionEntry]:
        """Every status change of the job."""
        return self.siblings.load("transitions", self.pk, _transitions_of) or []

    @strawberry.field(description="The runs of the job's process, first first (more than one when retried).")
    def attempts(self) -> list[JobAttemptEntry]:
        """Every attempt of the job."""
        return self.siblings.load("attempts", self.pk, _attempts_of) or []

    @strawberry.field(description="The lineage run the job reported, once it has reported one.")
    def lineage_run(self) -> Run | None:
        """The job's lineage run, or null before its first event."""
        return self.run_siblings.load("runs", self.run_id, _runs_of)

    @classmethod
    def one(cls, session: Session, row: JobRow) -> Job:
        """The GraphQL job of one row."""
        return cls.page(session, [row], job_out(session, [row]))[0]

    @classmethod
    def page(cls, session: Session, rows: list[JobRow], outs: list[JobOut]) -> list[Job]:
        """GraphQL jobs of rows returned together, with their REST answers (they batch their loads)."""
        siblings = Siblings(session, [r.pk for r in rows])
        run_siblings = Siblings(session, [o.run_id for o in outs])
        return [
            cls(
                **out.model_dump(exclude={"id"}),
                id=strawberry.ID(out.id),
                pk=row.pk,
                siblings=siblings,
                run_siblings=run_siblings,
            )
            for row, out in zip(rows, outs, strict=True)
        ]


@strawberry.type
class Cluster:
    """Where jobs run: a Spark, Flink or shell cluster, chosen for a job by its tags."""

    name: str
    type: ClusterType
    status: ClusterStatus
    tags: list[str]
    config: dict[str, Any] = strawberry.field(graphql_type=JSON)
    max_concurrent_jobs: int
    description: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, cluster: ClusterOut) -> Cluster:
        """The GraphQL form of a cluster."""
        return cls(**cluster.model_dump(exclude={"id"}))


@strawberry.type
class Command:
    """What a job runs: a program with its default arguments, the applications it needs, the clusters it runs on."""

    name: str
    executable: list[str]
    status: CommandStatus
    tags: list[str]
    cluster_criteria: list[list[str]]
    applications: list[str]
    description: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, command: CommandOut) -> Command:
        """The GraphQL form of a command."""
        return cls(**command.model_dump(exclude={"id"}))


@strawberry.type
class ClusterPage:
    """One page of clusters."""

    items: list[Cluster]
    next_cursor: str | None
    total: int


@strawberry.type
class CommandPage:
    """One page of commands."""

    items: list[Command]
    next_cursor: str | None
    total: int


@strawberry.type
class JobPage:
    """One page of jobs; pass ``nextCursor`` as ``after`` for the next."""

    items: list[Job]
    next_cursor: str | None
    total: int


# ---------------------------------------------------------------------------------------------- unions

# Every root field answers its object or any of the error types: a root field runs in a savepoint that turns any
# domain error (or a value the database refuses) into its typed result, so each union names them all, and a
# client's `... on Error { message code field }` catches whatever it is.


def _result(name: str, kind: type) -> Any:
    return Annotated[
        kind | NotFoundError | InvalidInputError | ConflictError | PreconditionFailedError | UnavailableError,
        strawberry.union(name),
    ]


DatasetResult = _result("DatasetResult", Dataset)
DatasetPageResult = _result("DatasetPageResult", DatasetPage)
SearchResult = _result("SearchResult", SearchResults)
LineageGraphResult = _result("LineageGraphResult", LineageGraph)
ImpactResult = _result("ImpactResult", Impact)
PathResult = _result("PathResult", LineagePath)
SqlLineageResult = _result("SqlLineageResult", SqlLineage)
ManualEdgeResult = _result("ManualEdgeResult", ManualEdge)
WithdrawResult = _result("WithdrawResult", Withdrawn)
RunResult = _result("RunResult", Run)
JobResult = _result("JobResult", Job)
ChangeFeedResult = _result("ChangeFeedResult", ChangeFeed)
JobPageResult = _result("JobPageResult", JobPage)
ClusterPageResult = _result("ClusterPageResult", ClusterPage)
CommandPageResult = _result("CommandPageResult", CommandPage)
SuggestResult = _result("SuggestResult", Suggestions)
SourcesResult = _result("SourcesResult", SourceList)
