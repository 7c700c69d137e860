"""The GraphQL schema: queries over the catalog, search, lineage and jobs, and the mutations tools need.

Each resolver hands off to the domain function the REST route calls (Dagster's rule: one line of glue), so
both APIs answer the same. Each root field runs in a savepoint of the request's transaction and answers a
domain error as a typed result (``... on NotFoundError { message field }``): a mutation that fails leaves
nothing behind, and the fields before and after it still answer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import strawberry
from graphql import GraphQLError
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DataError
from strawberry.extensions import MaxAliasesLimiter, ParserCache, ValidationCache
from strawberry.scalars import JSON
from strawberry.types import ExecutionContext
from strawberry.types.unset import UNSET

from headwater import lineage
from headwater.api import parse_id, unstorable_reason, validation_message
from headwater.catalog import events as catalog_events
from headwater.catalog import service as catalog
from headwater.catalog import sources as catalog_sources
from headwater.catalog.models import ChangeKind, DatasetKind, SourceKind
from headwater.catalog.schemas import ChangeEventOut, DatasetCreate, DatasetUpdate
from headwater.errors import HeadwaterError, InvalidInput
from headwater.graphql.context import Context
from headwater.graphql.limits import CostLimit, DeadlineExecutionContext
from headwater.graphql.types import (
    ChangeEvent,
    ChangeFeed,
    ChangeFeedResult,
    Cluster,
    ClusterPage,
    ClusterPageResult,
    Command,
    CommandPage,
    CommandPageResult,
    Dataset,
    DatasetPage,
    DatasetPageResult,
    DatasetResult,
    Error,
    Impact,
    ImpactResult,
    InvalidInputError,
    Job,
    JobPage,
    JobPageResult,
    JobResult,
    LineageGraph,
    LineageGraphResult,
    LineagePath,
    ManualEdge,
    ManualEdgeResult,
    PathResult,
    Run,
    RunResult,
    SearchResult,
    SearchResults,
    Source,
    SourceList,
    SourcesResult,
    SqlLineage,
    SqlLineageResult,
    Suggestion,
    Suggestions,
    SuggestResult,
    TransformationType,
    Withdrawn,
    WithdrawResult,
    error_of,
)
from headwater.jobs import service as jobs
from headwater.jobs.models import JobStatus
from headwater.jobs.schemas import ClusterOut, CommandOut, JobSubmit
from headwater.lineage import graph, manual
from headwater.lineage.models import EdgeOrigin
from headwater.lineage.schemas import ManualEdgeIn, SqlLineageIn
from headwater.search.base import FACETS, DocumentType, SearchQuery, check_prefix

__all__ = ["schema"]

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)
D = TypeVar("D", catalog.DatasetFilters, jobs.JobFilters)


def answers_errors(resolver: F) -> F:
    """Run a root resolver in a savepoint; a domain error (or a value the database refuses) rolls it back and
    becomes the field's typed error result."""

    @functools.wraps(resolver)
    def run(*args: Any, **kwargs: Any) -> Any:
        info: strawberry.Info[Context, None] = kwargs["info"]
        try:
            with info.context.session.begin_nested():
                return resolver(*args, **kwargs)
        except HeadwaterError as exc:
            return error_of(exc)
        except DataError as exc:
            return InvalidInputError(
                message=f"an argument holds a value the database cannot store: {unstorable_reason(exc)}",
                code="invalid_value",
                field=None,
            )

    return cast(F, run)


def _id(value: strawberry.ID, name: str) -> int:
    """A database id from a GraphQL ID argument."""
    return parse_id(str(value), name)


def _bounded(value: int, low: int, high: int, name: str) -> int:
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}, got {value}", detail={"field": name})
    return value


def _validated(model: type[M], data: dict[str, Any], name: str) -> M:
    """``data`` as the REST body model, or InvalidInput naming the first field at fault (``name.field``; the
    argument itself when ``name`` is empty)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = [
            {**e, "loc": (*([name] if name else []), *_graphql_loc(e["loc"]))} for e in exc.errors()
        ]
        where = ".".join(str(p) for p in errors[0]["loc"])
        raise InvalidInput(validation_message(errors), detail={"field": where}) from None


def _graphql_loc(loc: tuple[int | str, ...]) -> list[str]:
    """A REST model's error location as GraphQL names it: field names in camelCase, a dict's keys (a dataset's
    field paths) as they are."""
    parts: list[str] = []
    for index, part in enumerate(loc):
        is_key = index > 0 and loc[index - 1] == "fields"
        head, *rest = str(part).split("_")
        if is_key:
            parts.append(str(part))
        elif part == "field_id":  # a field's source id, named sourceFieldId here (id is the catalog's)
            parts.append("sourceFieldId")
        else:
            parts.append(head + "".join(word.title() for word in rest))
    return parts


def _set(value: Any) -> bool:
    return value is not UNSET


# ---------------------------------------------------------------------------------------------- inputs


@strawberry.input(description="A dataset by id or by namespace and name, or one column of it (add field).")
class NodeInput:
    dataset_id: strawberry.ID | None = None
    field_id: strawberry.ID | None = strawberry.field(default=None, description="A column by its catalog id.")
    namespace: str | None = None
    name: str | None = None
    field: str | None = strawberry.field(default=None, description="A column of the named dataset, by path.")


@strawberry.input(description="Which edges a lineage query follows.")
class LineageFilter:
    as_of: dt.datetime | None = strawberry.field(
        default=None, description="The graph as known then (first seen by then, not yet retired); naive = UTC."
    )
    include_retired: bool = False
    transformation_types: list[TransformationType] | None = None
    origins: list[EdgeOrigin] | None = None


@strawberry.enum
class Direction(enum.Enum):
    """Which way a lineage query walks."""

    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"
    BOTH = "both"


@strawberry.input(description="Dataset list filters; they combine with AND.")
class DatasetFilter:
    source: str | None = None
    namespace: str | None = None
    kind: DatasetKind | None = None
    tag: str | None = None
    owner: str | None = None
    name_prefix: str | None = None
    include_deleted: bool = False


@strawberry.input(description="Search filters: OR within one, AND across them.")
class SearchFilter:
    source: list[str] | None = None
    kind: list[DatasetKind] | None = None
    namespace: list[str] | None = None
    tag: list[str] | None = None
    owner: list[str] | None = None
    format: list[str] | None = None


@strawberry.input(description="Job list filters; they combine with AND.")
class JobFilter:
    user: str | None = None
    status: JobStatus | None = None
    tag: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None


@strawberry.input
class OwnerInput:
    name: str
    role: str | None = strawberry.field(default=None, description="technical_owner when omitted.")


def _owners(given: list[OwnerInput]) -> list[dict[str, str]]:
    return [{"name": o.name, **({"role": o.role} if o.role is not None else {})} for o in given]


@strawberry.input(description="What people say about one field; omitted keys stay as they are.")
class FieldMetadataInput:
    path: str
    description: str | None = strawberry.field(default=UNSET, description="null clears it.")
    tags: list[str] | None = UNSET


@strawberry.input(description="User metadata of a dataset; omitted keys stay as they are, null clears a description.")
class DatasetMetadataInput:
    description: str | None = UNSET
    tags: list[str] | None = UNSET
    owners: list[OwnerInput] | None = UNSET
    properties: JSON | None = UNSET
    fields: list[FieldMetadataInput] | None = UNSET


@strawberry.input(description="A field (column); struct members nest under fields.")
class FieldInput:
    name: str
    type: str
    nullable: bool = True
    description: str | None = None
    source_field_id: int | None = strawberry.field(default=None, description="The source's own id (Iceberg).")
    tags: list[str] | None = None
    fields: list[FieldInput] | None = None


@strawberry.input(description="One partition key: a column and its transform (identity, day, bucket[16], ...).")
class PartitionInput:
    column: str
    transform: str = "identity"
    name: str | None = None


@strawberry.input(description="A dataset registered by hand in a manual source.")
class DatasetInput:
    name: str
    namespace: str | None = strawberry.field(default=None, description="The source's namespace when omitted.")
    source: str = "manual"
    kind: DatasetKind = DatasetKind.TABLE
    format: str | None = None
    location: str | None = None
    partitioning: list[PartitionInput] | None = None
    source_description: str | None = None
    source_properties: JSON | None = None
    fields: list[FieldInput] | None = None
    description: str | None = None
    tags: list[str] | None = None
    owners: list[OwnerInput] | None = None
    properties: JSON | None = None


def _field_dict(given: FieldInput) -> dict[str, Any]:
    data: dict[str, Any] = {"name": given.name, "type": given.type, "nullable": given.nullable}
    for key, value in (("description", given.description), ("field_id", given.source_field_id), ("tags", given.tags)):
        if value is not None:
            data[key] = value
    if given.fields is not None:
        data["fields"] = [_field_dict(f) for f in given.fields]
    return data


def _registration(given: DatasetInput) -> dict[str, Any]:
    """The REST body (DatasetCreate) of a GraphQL registration: what was given, nothing for what was not."""
    plain = ("name", "namespace", "source", "format", "location", "source_description", "description")
    data: dict[str, Any] = {key: getattr(given, key) for key in plain if getattr(given, key) is not None}
    data["kind"] = given.kind.value
    for key in ("source_properties", "properties", "tags"):
        if getattr(given, key) is not None:
            data[key] = getattr(given, key)
    if given.partitioning is not None:
        data["partitioning"] = [
            {"column": p.column, "transform": p.transform, **({"name": p.name} if p.name else {})}
            for p in given.partitioning
        ]
    if given.fields is not None:
        data["fields"] = [_field_dict(f) for f in given.fields]
    if given.owners is not None:
        data["owners"] = _owners(given.owners)
    return data


@strawberry.enum
class SqlDialect(enum.Enum):
    """The SQL dialects lineage is read from."""

    SPARK = "spark"
    HIVE = "hive"
    FLINK = "flink"
    TRINO = "trino"
    POSTGRES = "postgres"


@strawberry.enum
class EdgeLevel(enum.Enum):
    """Which lineage graph an edge belongs to."""

    COLUMN = "column"
    DATASET = "dataset"


@strawberry.input(description="One end of a declared edge: a dataset, and one of its columns for a column edge.")
class EdgeEndInput:
    namespace: str
    name: str
    field: str | None = None


@strawberry.input(description="An edge declared by hand: dataset-level (no field on either end) or column-level.")
class ManualEdgeInput:
    source: EdgeEndInput
    target: EdgeEndInput
    job_namespace: str = "headwater"
    job_name: str = "manual"
    transformation_type: TransformationType | None = None
    subtype: str | None = None
    description: str | None = None
    producer: str = "headwater/manual"


def _declaration(given: ManualEdgeInput) -> dict[str, Any]:
    def end(e: EdgeEndInput) -> dict[str, Any]:
        return {"namespace": e.namespace, "name": e.name, **({"field": e.field} if e.field is not None else {})}

    data: dict[str, Any] = {
        "source": end(given.source),
        "target": end(given.target),
        "job_namespace": given.job_namespace,
        "job_name": given.job_name,
        "producer": given.producer,
    }
    if given.transformation_type is not None:
        data["transformation_type"] = given.transformation_type.value
    for key in ("subtype", "description"):
        if getattr(given, key) is not None:
            data[key] = getattr(given, key)
    return data


@strawberry.input
class DatasetRefInput:
    namespace: str
    name: str


@strawberry.input(description="A job request (Genie's): the cluster and command are chosen by tags.")
class JobSubmitInput:
    name: str
    user: str
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
    applications: list[str] | None = None
    max_attempts: int | None = None
    archive_logs: bool | None = None
    inputs: list[DatasetRefInput] | None = None
    outputs: list[DatasetRefInput] | None = None


def _node(session: Any, node: NodeInput, label: str = "") -> graph.NodeRef:
    prefix = f"{label}." if label else "node."
    return graph.resolve_node(
        session,
        dataset_id=_id(node.dataset_id, f"{prefix}datasetId") if node.dataset_id is not None else None,
        field_id=_id(node.field_id, f"{prefix}fieldId") if node.field_id is not None else None,
        namespace=node.namespace,
        name=node.name,
        field_path=node.field,
        label=label,
    )


def _filters(given: LineageFilter | None) -> graph.WalkFilters:
    if given is None:
        return graph.WalkFilters()
    as_of = given.as_of
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=dt.UTC)
    return graph.WalkFilters(
        as_of=as_of,
        include_retired=given.include_retired,
        transformation_types=tuple(t.value for t in given.transformation_types or ()),
        origins=tuple(o.value for o in given.origins or ()),
    )


def _as(kind: type[D], given: Any) -> D:
    """The service's filter dataclass ``kind`` from a GraphQL filter input with the same field names."""
    return kind(**{f.name: getattr(given, f.name) for f in dataclasses.fields(kind)})


def _sql_request(**given: Any) -> SqlLineageIn:
    """The REST body of a SQL lineage request from GraphQL arguments (what was not given stays default)."""
    values = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in given.items() if v is not None}
    return _validated(SqlLineageIn, values, "")


def _page_size(first: int, high: int) -> int:
    return _bounded(first, 1, high, "first")


# ----------------------------------------------------------------------------------------------- query


@strawberry.type
class Query:
    """What tools read: the catalog, search, lineage and jobs."""

    @strawberry.field(description="One dataset, by id or by namespace and name.")
    @answers_errors
    def dataset(
        self,
        info: strawberry.Info[Context, None],
        id: strawberry.ID | None = None,
        namespace: str | None = None,
        name: str | None = None,
        include_deleted: bool = False,
    ) -> DatasetResult:
        session = info.context.session
        if id is not None:
            row = catalog.get_dataset(session, dataset_id=_id(id, "id"), include_deleted=include_deleted)
        elif namespace and name:
            row = catalog.get_dataset_by_name(session, namespace=namespace, name=name, include_deleted=include_deleted)
        else:
            raise InvalidInput("name the dataset by id, or by namespace and name", detail={"field": "id"})
        return Dataset.page(session, [row])[0]

    @strawberry.field(description="Datasets matching a filter, a page at a time (sort: name, updated_at, created_at).")
    @answers_errors
    def datasets(
        self,
        info: strawberry.Info[Context, None],
        filter: DatasetFilter | None = None,
        sort: str = "name",
        first: int = 50,
        after: str | None = None,
    ) -> DatasetPageResult:
        session = info.context.session
        given = filter or DatasetFilter()
        filters = _as(catalog.DatasetFilters, given)
        page = catalog.list_datasets(session, filters=filters, sort=sort, cursor=after, limit=_page_size(first, 100))
        return DatasetPage(items=Dataset.page(session, page.items), next_cursor=page.next_cursor, total=page.total)

    @strawberry.field(description="The federated sources (and the manual one).")
    @answers_errors
    def sources(self, info: strawberry.Info[Context, None], kind: SourceKind | None = None) -> SourcesResult:
        found: list[Source] = []
        cursor: str | None = None
        while True:  # sources are few: a platform federates tens of systems, not thousands
            page = catalog_sources.list_sources(info.context.session, kind=kind, cursor=cursor, limit=500)
            found.extend(Source(**{k: getattr(s, k) for k in Source.__annotations__}) for s in page.items)
            if page.next_cursor is None:
                return SourceList(items=found)
            cursor = page.next_cursor

    @strawberry.field(description="The catalog's change feed after a position, oldest first (as REST's).")
    @answers_errors
    def change_events(
        self,
        info: strawberry.Info[Context, None],
        after: strawberry.ID = strawberry.ID("0"),
        first: int = 100,
        entity_type: str | None = None,
        kinds: list[ChangeKind] | None = None,
    ) -> ChangeFeedResult:
        position = 0 if str(after) == "0" else _id(after, "after")
        rows = catalog_events.list_changes(
            info.context.session,
            after=position,
            limit=_page_size(first, 1000),
            entity_type=entity_type,
            kinds=kinds,
        )
        items = [ChangeEvent.of(ChangeEventOut.model_validate(r)) for r in rows]
        return ChangeFeed(items=items, next_after=strawberry.ID(str(rows[-1].id if rows else position)))

    @strawberry.field(description="Free-text search over datasets and columns, with filters and facet counts.")
    @answers_errors
    def search(
        self,
        info: strawberry.Info[Context, None],
        query: str | None = None,
        types: list[DocumentType] | None = None,
        filter: SearchFilter | None = None,
        sort: str = "relevance",
        first: int = 20,
        after: str | None = None,
        facets: bool = True,
        highlight: bool = True,
    ) -> SearchResult:
        given = filter or SearchFilter()
        search_query = SearchQuery.of(
            q=query,
            types=types,
            filters={name: getattr(given, name) for name in FACETS},
            sort=sort,
            cursor=after,
            limit=first,
            facets=facets,
            highlight=highlight,
        )
        return SearchResults.of(info.context.session, info.context.search_backend.search(search_query))

    @strawberry.field(description="Names completing what has been typed so far.")
    @answers_errors
    def suggest(
        self,
        info: strawberry.Info[Context, None],
        prefix: str,
        types: list[DocumentType] | None = None,
        first: int = 10,
    ) -> SuggestResult:
        found = info.context.search_backend.suggest(
            check_prefix(prefix), limit=_page_size(first, 50), types=types or [DocumentType.DATASET]
        )
        return Suggestions(
            items=[
                Suggestion(
                    text=s.text,
                    type=s.type,
                    dataset_id=strawberry.ID(str(s.dataset_id)),
                    namespace=s.namespace,
                    kind=s.kind,
                )
                for s in found
            ]
        )

    @strawberry.field(description="Upstream and/or downstream of a dataset or column, with each edge's provenance.")
    @answers_errors
    def lineage(
        self,
        info: strawberry.Info[Context, None],
        node: NodeInput,
        direction: Direction = Direction.BOTH,
        depth: int = 5,
        max_nodes: int = 2_000,
        filter: LineageFilter | None = None,
    ) -> LineageGraphResult:
        session = info.context.session
        answer = graph.graph_around(
            session,
            node=_node(session, node),
            direction=direction.value,
            depth=depth,
            budget=max_nodes,
            filters=_filters(filter),
        )
        return LineageGraph.of(answer)

    @strawberry.field(
        description="What breaks if a column or dataset changes: every downstream column, dataset, job "
        "and owner, each with its distance and one shortest path."
    )
    @answers_errors
    def impact(
        self,
        info: strawberry.Info[Context, None],
        node: NodeInput,
        depth: int = 20,
        max_nodes: int = 10_000,
        timeout_ms: int = 5_000,
        filter: LineageFilter | None = None,
    ) -> ImpactResult:
        session = info.context.session
        answer = graph.impact(
            session,
            node=_node(session, node),
            depth=depth,
            budget=max_nodes,
            timeout_ms=_bounded(timeout_ms, 10, 60_000, "timeoutMs"),
            filters=_filters(filter),
        )
        return Impact.of(answer)

    @strawberry.field(description="One shortest downstream path between two columns or two datasets.")
    @answers_errors
    def path(
        self,
        info: strawberry.Info[Context, None],
        source: NodeInput,
        target: NodeInput,
        depth: int = 20,
        filter: LineageFilter | None = None,
    ) -> PathResult:
        session = info.context.session
        answer = graph.path_between(
            session,
            source=_node(session, source, "source"),
            target=_node(session, target, "target"),
            depth=_bounded(depth, 1, graph.MAX_DEPTH, "depth"),
            filters=_filters(filter),
        )
        return LineagePath.of(answer)

    @strawberry.field(description="Column lineage of SQL against the catalog's schemas (nothing is recorded).")
    @answers_errors
    def sql_lineage(
        self,
        info: strawberry.Info[Context, None],
        sql: str,
        dialect: SqlDialect = SqlDialect.SPARK,
        namespace: str | None = None,
        default_schema: str | None = None,
    ) -> SqlLineageResult:
        data = _sql_request(sql=sql, dialect=dialect, namespace=namespace, default_schema=default_schema)
        return SqlLineage.of(lineage.analyse_sql(info.context.session, data=data))

    @strawberry.field(description="A lineage run (OpenLineage run id) with its state, parent and children.")
    @answers_errors
    def lineage_run(self, info: strawberry.Info[Context, None], id: str) -> RunResult:
        return Run.of(lineage.get_run(info.context.session, run_id=id))

    @strawberry.field(description="The clusters jobs run on, chosen by their tags.")
    @answers_errors
    def clusters(
        self, info: strawberry.Info[Context, None], sort: str = "name", first: int = 50, after: str | None = None
    ) -> ClusterPageResult:
        page = jobs.list_clusters(info.context.session, sort=sort, cursor=after, limit=_page_size(first, 100))
        items = [Cluster.of(ClusterOut.model_validate(c)) for c in page.items]
        return ClusterPage(items=items, next_cursor=page.next_cursor, total=page.total)

    @strawberry.field(description="The commands jobs run (a program and its default arguments), chosen by tags.")
    @answers_errors
    def commands(
        self, info: strawberry.Info[Context, None], sort: str = "name", first: int = 50, after: str | None = None
    ) -> CommandPageResult:
        page = jobs.list_commands(info.context.session, sort=sort, cursor=after, limit=_page_size(first, 100))
        items = [Command.of(CommandOut.model_validate(c)) for c in page.items]
        return CommandPage(items=items, next_cursor=page.next_cursor, total=page.total)

    @strawberry.field(description="One job by id.")
    @answers_errors
    def job(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> JobResult:
        session = info.context.session
        row = jobs.get_job(session, job_id=str(id))
        return Job.one(session, row)

    @strawberry.field(description="Jobs, newest first by default (sort: created, name, status; '-' descending).")
    @answers_errors
    def jobs(
        self,
        info: strawberry.Info[Context, None],
        filter: JobFilter | None = None,
        sort: str = "-created",
        first: int = 50,
        after: str | None = None,
    ) -> JobPageResult:
        session = info.context.session
        given = filter or JobFilter()
        filters = _as(jobs.JobFilters, given)
        page = jobs.list_jobs(session, filters=filters, sort=sort, cursor=after, limit=_page_size(first, 100))
        items = Job.page(session, page.items, jobs.job_out(session, page.items))
        return JobPage(items=items, next_cursor=page.next_cursor, total=page.total)


# -------------------------------------------------------------------------------------------- mutation


def _metadata(given: DatasetMetadataInput) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in ("description", "tags", "properties"):
        if _set(getattr(given, key)):
            data[key] = getattr(given, key)
    if _set(given.owners):
        data["owners"] = None if given.owners is None else _owners(given.owners)
    if _set(given.fields) and given.fields is not None:
        data["fields"] = {
            f.path: {k: getattr(f, k) for k in ("description", "tags") if _set(getattr(f, k))} for f in given.fields
        }
    return data


def _submission(given: JobSubmitInput) -> dict[str, Any]:
    return {key: value for key, value in strawberry.asdict(given).items() if value is not None}


@strawberry.type
class Mutation:
    """What tools change: dataset metadata, and jobs."""

    @strawberry.field(description="Change a dataset's user metadata; expectedRevision is the revision you read.")
    @answers_errors
    def update_dataset(
        self,
        info: strawberry.Info[Context, None],
        id: strawberry.ID,
        input: DatasetMetadataInput,
        expected_revision: int,
    ) -> DatasetResult:
        session = info.context.session
        data = _validated(DatasetUpdate, _metadata(input), "input")
        row = catalog.update_dataset_metadata(
            session, dataset_id=_id(id, "id"), data=data, expected_revision=expected_revision
        )
        return Dataset.page(session, [row])[0]

    @strawberry.field(description="Register a dataset by hand in a manual source (ConflictError if it exists).")
    @answers_errors
    def register_dataset(self, info: strawberry.Info[Context, None], input: DatasetInput) -> DatasetResult:
        session = info.context.session
        data = _validated(DatasetCreate, _registration(input), "input")
        return Dataset.page(session, [catalog.register_dataset(session, data=data)])[0]

    @strawberry.field(description="Record the column lineage of SQL as edges of origin sql, under a job.")
    @answers_errors
    def apply_sql_lineage(
        self,
        info: strawberry.Info[Context, None],
        sql: str,
        dialect: SqlDialect = SqlDialect.SPARK,
        namespace: str | None = None,
        default_schema: str | None = None,
        job_namespace: str = "headwater",
        job_name: str | None = None,
    ) -> SqlLineageResult:
        data = _sql_request(
            sql=sql,
            dialect=dialect,
            namespace=namespace,
            default_schema=default_schema,
            apply=True,
            job_namespace=job_namespace,
            job_name=job_name,
        )
        return SqlLineage.of(lineage.analyse_sql(info.context.session, data=data))

    @strawberry.field(
        description="Declare a dataset- or column-level edge by hand (origin manual); declaring it again refreshes it."
    )
    @answers_errors
    def declare_lineage_edge(self, info: strawberry.Info[Context, None], input: ManualEdgeInput) -> ManualEdgeResult:
        data = _validated(ManualEdgeIn, _declaration(input), "input")
        return ManualEdge.of_manual(manual.declare_edge(info.context.session, data=data))

    @strawberry.field(description="Withdraw an edge declared by hand: retired now; as-of queries before still show it.")
    @answers_errors
    def withdraw_lineage_edge(
        self, info: strawberry.Info[Context, None], level: EdgeLevel, id: strawberry.ID
    ) -> WithdrawResult:
        manual.withdraw_edge(info.context.session, level=level.value, edge_id=_id(id, "id"))
        return Withdrawn(level=level.value, id=id)

    @strawberry.field(
        description="Submit a job: resolved at once to a cluster and command by tags (or INVALID), "
        "then queued for a worker."
    )
    @answers_errors
    def submit_job(self, info: strawberry.Info[Context, None], input: JobSubmitInput) -> JobResult:
        session = info.context.session
        row = jobs.submit_job(session, data=_validated(JobSubmit, _submission(input), "input"))
        return Job.one(session, row)

    @strawberry.field(description="Kill a job: at once when no process runs yet, else by its worker.")
    @answers_errors
    def kill_job(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> JobResult:
        session = info.context.session
        row = jobs.request_kill(session, job_id=str(id))
        return Job.one(session, row)


class _Schema(strawberry.Schema):
    """Strawberry's schema, without its logging of every error: a client's syntax error is not the server's, and
    :mod:`headwater.graphql.routes` logs the unexpected ones itself."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Log nothing here."""


# No type refers back to itself, so a query's depth is bounded by the schema; introspection, which is cyclic, is
# bounded by graphql-core.
# Tools send the same few documents again and again: each is parsed and validated once (a cache per process).
# Aliases let one request ask for the same expensive field many times (an impact walk each): at most MAX_ALIASES.
# What a query may return is estimated and refused over HEADWATER_GRAPHQL_MAX_COST before it runs; a request past
# its time budget is stopped as it completes objects (headwater.graphql.limits).
MAX_ALIASES = 30
schema = _Schema(
    query=Query,
    mutation=Mutation,
    types=[Error],
    extensions=[
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        CostLimit,
    ],
    execution_context_class=DeadlineExecutionContext,
)
