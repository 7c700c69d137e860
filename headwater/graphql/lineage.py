"""GraphQL over lineage: the graph around a node, impact, paths, SQL lineage, runs, and edges declared by hand.
Types derive from the REST answer models (:mod:`headwater.lineage.schemas`); each resolver hands off to the
lineage function the REST route calls."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import strawberry
from sqlalchemy.orm import Session

from headwater.auth.actions import Action
from headwater.auth.policy import Audience, audience_of
from headwater.graphql.arguments import bounded, database_id, validated
from headwater.graphql.context import Info
from headwater.graphql.derive import enum_of, from_model, to_graphql
from headwater.graphql.errors import answers_errors, result
from headwater.lineage import graph, manual, runs
from headwater.lineage.analyse import analyse_sql
from headwater.lineage.models import EdgeOrigin
from headwater.lineage.schemas import (
    EdgeOut,
    GraphOut,
    ImpactOut,
    ManualEdgeIn,
    ManualEdgeOut,
    NodeOut,
    OwnerOut,
    PathOut,
    RunOut,
    SqlColumnOut,
    SqlLineageIn,
    SqlLineageOut,
    SqlStatementOut,
)

__all__ = ["LineageMutation", "LineageQuery", "Run", "runs_by_id"]

strawberry.enum(EdgeOrigin)


# What a lineage node is; OpenLineage's column-lineage transformation types; the SQL dialects lineage is read
# from; which lineage graph an edge belongs to: each the choices of a REST model's field.
NodeKind: Any = enum_of("NodeKind", NodeOut.model_fields["kind"].annotation)
TransformationType: Any = enum_of("TransformationType", ManualEdgeIn.model_fields["transformation_type"].annotation)
SqlDialect: Any = enum_of("SqlDialect", SqlLineageIn.model_fields["dialect"].annotation)
EdgeLevel: Any = enum_of("EdgeLevel", ManualEdgeOut.model_fields["level"].annotation)


@from_model(NodeOut, name="LineageNode", ids=("id", "dataset_id"))
class LineageNode:
    """A dataset, a column or a job of a lineage answer; ``path`` is one shortest path to it from the root."""

    kind: NodeKind


@from_model(EdgeOut, name="LineageEdge")
class LineageEdge:
    """An edge with its provenance: how it is known, by whom, when first and last seen, the run that last
    confirmed it, and when it was retired (no longer stated)."""


@from_model(GraphOut, name="LineageGraph")
class LineageGraph:
    """A bounded piece of the lineage graph around one node; ``isPartial`` when a bound cut it."""


@from_model(OwnerOut, name="ImpactOwner")
class ImpactOwner:
    """An owner of affected datasets, at the distance of the nearest one."""


@from_model(ImpactOut, name="Impact")
class Impact:
    """Everything downstream of a column or dataset: what breaks if it changes."""


@from_model(PathOut, name="LineagePath")
class LineagePath:
    """A shortest downstream path between two nodes (``found`` false and empty when none within the bound)."""


@from_model(ManualEdgeOut, name="ManualEdge", ids=("id",))
class ManualEdge:
    """An edge declared by hand: its id and level (to withdraw it) and whether the declaration created it
    (false: it was known already, and its provenance was refreshed)."""


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


@from_model(SqlColumnOut, name="SqlColumn")
class SqlColumn:
    """The inputs of one output column found in SQL (each a column with its transformation)."""


def _target(root: SqlStatementOut) -> DatasetName | None:
    """The dataset a statement writes, if any (the REST answer holds it as a dict)."""
    return None if root.target is None else DatasetName(**root.target)


def _inputs(root: SqlStatementOut) -> list[DatasetName]:
    """The datasets a statement reads."""
    return [DatasetName(**given) for given in root.inputs]


@from_model(SqlStatementOut, name="SqlStatement")
class SqlStatement:
    """The lineage of one SQL statement: its target, the tables it reads, and column by column."""

    target: DatasetName | None = strawberry.field(resolver=_target)
    inputs: list[DatasetName] = strawberry.field(resolver=_inputs)


@from_model(SqlLineageOut, name="SqlLineage")
class SqlLineage:
    """The lineage found in a SQL text, statement by statement; ``appliedEdges`` when it was recorded."""


@from_model(RunOut, name="Run")
class Run:
    """A run known to lineage (an OpenLineage run, or the run of a job Headwater ran), with its state."""


def runs_by_id(session: Session, run_ids: list[str]) -> dict[str, RunOut]:
    """The lineage runs among ``run_ids`` (a batch loader: a fixed number of queries)."""
    return {key: to_graphql(run) for key, run in runs.runs_by_uuid(session, run_ids=run_ids).items()}


LineageGraphResult: Any = result("LineageGraphResult", LineageGraph)
ImpactResult: Any = result("ImpactResult", Impact)
PathResult: Any = result("PathResult", LineagePath)
SqlLineageResult: Any = result("SqlLineageResult", SqlLineage)
ManualEdgeResult: Any = result("ManualEdgeResult", ManualEdge)
WithdrawResult: Any = result("WithdrawResult", Withdrawn)
RunResult: Any = result("RunResult", Run)

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
    """The REST body (ManualEdgeIn) of a declared edge: what was given, nothing for what was not."""

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


def _node(session: Session, node: NodeInput, label: str = "", audience: Audience = None) -> graph.NodeRef:
    prefix = f"{label}." if label else "node."
    return graph.resolve_node(
        session,
        audience=audience,
        dataset_id=database_id(node.dataset_id, f"{prefix}datasetId") if node.dataset_id is not None else None,
        field_id=database_id(node.field_id, f"{prefix}fieldId") if node.field_id is not None else None,
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


def _sql_request(
    sql: str, dialect: Any, namespace: str | None, default_schema: str | None, **more: Any
) -> SqlLineageIn:
    """The REST body of a SQL lineage request from GraphQL arguments (what was not given stays default)."""
    given = {"sql": sql, "dialect": dialect, "namespace": namespace, "default_schema": default_schema, **more}
    values = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in given.items() if v is not None}
    return validated(SqlLineageIn, values, "")


# ----------------------------------------------------------------------------------------- resolvers


@strawberry.type
class LineageQuery:
    """What tools read of lineage."""

    @strawberry.field(description="Upstream and/or downstream of a dataset or column, with each edge's provenance.")
    @answers_errors(Action.LINEAGE_READ)
    def lineage(
        self,
        info: Info,
        node: NodeInput,
        direction: Direction = Direction.BOTH,
        depth: int = 5,
        max_nodes: int = 2_000,
        filter: LineageFilter | None = None,
    ) -> LineageGraphResult:
        session, audience = info.context.session, audience_of(info.context.principal)
        root, walk = _node(session, node, audience=audience), _filters(filter)
        answer = graph.graph_around(
            session,
            node=root,
            direction=direction.value,
            depth=depth,
            budget=max_nodes,
            filters=walk,
            audience=audience,
        )
        return to_graphql(answer)

    @strawberry.field(
        description="What breaks if a column or dataset changes: every downstream column, dataset, job "
        "and owner, each with its distance and one shortest path."
    )
    @answers_errors(Action.LINEAGE_READ)
    def impact(
        self,
        info: Info,
        node: NodeInput,
        depth: int = 20,
        max_nodes: int = 10_000,
        timeout_ms: int = 5_000,
        filter: LineageFilter | None = None,
    ) -> ImpactResult:
        session, audience = info.context.session, audience_of(info.context.principal)
        root, walk = _node(session, node, audience=audience), _filters(filter)
        timeout = bounded(timeout_ms, 10, 60_000, "timeoutMs")
        answer = graph.impact(
            session, node=root, depth=depth, budget=max_nodes, timeout_ms=timeout, filters=walk, audience=audience
        )
        return to_graphql(answer)

    @strawberry.field(description="One shortest downstream path between two columns or two datasets.")
    @answers_errors(Action.LINEAGE_READ)
    def path(
        self, info: Info, source: NodeInput, target: NodeInput, depth: int = 20, filter: LineageFilter | None = None
    ) -> PathResult:
        session, audience = info.context.session, audience_of(info.context.principal)
        answer = graph.path_between(
            session,
            source=_node(session, source, "source", audience),
            target=_node(session, target, "target", audience),
            depth=bounded(depth, 1, graph.MAX_DEPTH, "depth"),
            filters=_filters(filter),
            audience=audience,
        )
        return to_graphql(answer)

    @strawberry.field(description="Column lineage of SQL against the catalog's schemas (nothing is recorded).")
    @answers_errors(Action.LINEAGE_READ)
    def sql_lineage(
        self,
        info: Info,
        sql: str,
        dialect: SqlDialect = SqlDialect.SPARK,
        namespace: str | None = None,
        default_schema: str | None = None,
    ) -> SqlLineageResult:
        data = _sql_request(sql, dialect, namespace, default_schema)
        return to_graphql(analyse_sql(info.context.session, data=data, audience=audience_of(info.context.principal)))

    @strawberry.field(description="A lineage run (OpenLineage run id) with its state, parent and children.")
    @answers_errors(Action.LINEAGE_READ)
    def lineage_run(self, info: Info, id: str) -> RunResult:
        return to_graphql(runs.get_run(info.context.session, run_id=id))


@strawberry.type
class LineageMutation:
    """What tools change in lineage."""

    @strawberry.field(description="Record the column lineage of SQL as edges of origin sql, under a job.")
    @answers_errors(Action.LINEAGE_WRITE)
    def apply_sql_lineage(
        self,
        info: Info,
        sql: str,
        dialect: SqlDialect = SqlDialect.SPARK,
        namespace: str | None = None,
        default_schema: str | None = None,
        job_namespace: str = "headwater",
        job_name: str | None = None,
    ) -> SqlLineageResult:
        more = {"apply": True, "job_namespace": job_namespace, "job_name": job_name}
        data = _sql_request(sql, dialect, namespace, default_schema, **more)
        return to_graphql(analyse_sql(info.context.session, data=data, audience=audience_of(info.context.principal)))

    @strawberry.field(
        description="Declare a dataset- or column-level edge by hand (origin manual); declaring it again refreshes it."
    )
    @answers_errors(Action.LINEAGE_WRITE)
    def declare_lineage_edge(self, info: Info, input: ManualEdgeInput) -> ManualEdgeResult:
        data = validated(ManualEdgeIn, _declaration(input), "input")
        audience = audience_of(info.context.principal)
        return to_graphql(manual.declare_edge(info.context.session, data=data, audience=audience))

    @strawberry.field(description="Withdraw an edge declared by hand: retired now; as-of queries before still show it.")
    @answers_errors(Action.LINEAGE_WRITE)
    def withdraw_lineage_edge(self, info: Info, level: EdgeLevel, id: strawberry.ID) -> WithdrawResult:
        manual.withdraw_edge(info.context.session, level=level.value, edge_id=database_id(id, "id"))
        return Withdrawn(level=level.value, id=id)
