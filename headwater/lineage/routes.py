"""The lineage REST routes under ``/api/v1/lineage``: OpenLineage ingestion (Marquez-compatible), SQL
lineage, and graph, impact and path queries. Routes validate, call one domain function and shape the answer.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from headwater.api.auth import Guard, principal_of, require
from headwater.api.deps import SessionDep, db_slot
from headwater.api.params import (
    MAX_ID,
    NodeParams,
    WalkFilterParams,
    as_of_params,
    node_params,
    walk_filter_params,
)
from headwater.api.responses import json_response
from headwater.auth.actions import Action
from headwater.auth.policy import Audience, audience_of
from headwater.errors import InvalidInput
from headwater.lineage import graph, manual, runs
from headwater.lineage.analyse import analyse_sql
from headwater.lineage.ingest import MAX_BATCH, ingest
from headwater.lineage.producers import check_namespaces
from headwater.lineage.schemas import (
    GraphOut,
    ImpactOut,
    IngestOut,
    ManualEdgeIn,
    ManualEdgeOut,
    PathOut,
    RunOut,
    SqlLineageIn,
    SqlLineageOut,
    parse_time,
)
from headwater.transactions import run_in_transaction

__all__ = ["lineage_router"]

lineage_router = APIRouter(prefix="/api/v1/lineage", tags=["lineage"])
LINEAGE = Guard(read=Action.LINEAGE_READ, write=Action.LINEAGE_WRITE)

Node = Annotated[NodeParams, Depends(node_params())]
FromNode = Annotated[NodeParams, Depends(node_params("from"))]
ToNode = Annotated[NodeParams, Depends(node_params("to"))]
EdgeFilters = Annotated[WalkFilterParams, Depends(walk_filter_params)]
TimeFilters = Annotated[WalkFilterParams, Depends(as_of_params)]


async def _documents(request: Request, *, batch: bool) -> list[Any]:
    raw = await request.body()
    encoding = request.headers.get("content-encoding", "").lower()
    if encoding in ("gzip", "deflate"):
        try:
            raw = gzip.decompress(raw) if encoding == "gzip" else zlib.decompress(raw)
        except (OSError, zlib.error, EOFError) as exc:
            raise InvalidInput(f"the body is not valid {encoding} data: {exc}", detail={"field": "body"}) from None
        limit = request.app.state.settings.max_body_bytes
        if len(raw) > limit:
            raise InvalidInput(f"the decompressed body is larger than {limit} bytes", detail={"field": "body"})
    if not raw.strip():
        raise InvalidInput("the body is empty; send an OpenLineage event as JSON", detail={"field": "body"})
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", detail={"field": "body"}) from None
    if isinstance(document, list):
        return document
    if batch and isinstance(document, dict) and isinstance(document.get("events"), list):
        return list(document["events"])
    if batch:
        raise InvalidInput('a batch is a JSON array of events, or {"events": [...]}', detail={"field": "events"})
    return [document]


async def _ingest(request: Request, *, batch: bool) -> Response:
    documents = await _documents(request, batch=batch)
    check_namespaces(principal_of(request), documents)  # a producer's token writes its own namespaces only
    if not documents:
        raise InvalidInput("the batch holds no events", detail={"field": "events"})
    # Session, ingestion and commit in one worker-thread hop (SessionDep takes a second hop to commit): an
    # event's request is short, and each hop between the event loop and a thread costs GIL hand-overs.
    async with db_slot(request):
        result = await run_in_threadpool(
            run_in_transaction,
            request.app.state.sessionmaker,
            partial(ingest, documents=documents),
            what="lineage ingestion",
        )
    body = IngestOut(
        received=result.received,
        applied=result.applied,
        duplicates=result.duplicates,
        event_ids=result.event_ids,
        warnings=result.warnings[:100],
    )
    return json_response(body, status_code=status.HTTP_201_CREATED)


_INGEST_DOC = {
    201: {"model": IngestOut, "description": "Logged and applied (duplicates are counted, not applied twice)"},
    400: {"description": "Not JSON, or not an OpenLineage event"},
    422: {"description": "An event or facet that does not validate; the message names the field"},
}


@lineage_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=_INGEST_DOC,  # type: ignore[arg-type]
    dependencies=LINEAGE.writes,
)
async def post_lineage(request: Request) -> Response:
    """Ingest one OpenLineage RunEvent, JobEvent or DatasetEvent (or a JSON array of them), as Marquez does."""
    return await _ingest(request, batch=False)


@lineage_router.post(
    "/batch",
    status_code=status.HTTP_201_CREATED,
    responses=_INGEST_DOC,  # type: ignore[arg-type]
    dependencies=LINEAGE.writes,
)
async def post_lineage_batch(request: Request) -> Response:
    """Ingest up to MAX_BATCH events in one transaction: a JSON array, or ``{"events": [...]}``."""
    return await _ingest(request, batch=True)


post_lineage_batch.__doc__ = (post_lineage_batch.__doc__ or "").replace("MAX_BATCH", str(MAX_BATCH))


@lineage_router.get("/events", dependencies=LINEAGE.reads)
def get_events(
    request: Request,
    session: SessionDep,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The raw event log, oldest first; pass the last id back as ``after``."""
    rows = runs.list_events(session, after=after, limit=limit)
    payloads = runs.redact_events(session, [r.payload for r in rows], _audience(request))
    items = [
        {
            "id": r.id,
            "kind": r.kind,
            "event_type": r.event_type,
            "event_time": r.event_time.isoformat(),
            "producer": r.producer,
            "run_id": r.run_uuid,
            "job": {"namespace": r.job_namespace, "name": r.job_name} if r.job_name else None,
            "warnings": r.warnings,
            "event": payload,
        }
        for r, payload in zip(rows, payloads, strict=True)
    ]
    return Response(
        orjson.dumps({"items": items, "next_after": rows[-1].id if rows else after}), media_type="application/json"
    )


@lineage_router.get("/runs/{run_id}", response_model=RunOut, dependencies=LINEAGE.reads)
def get_run(run_id: Annotated[str, Path(max_length=64)], session: SessionDep) -> Response:
    """A run's state, times, parent and children."""
    return json_response(runs.get_run(session, run_id=run_id))


@lineage_router.post("/sql", response_model=SqlLineageOut, dependencies=LINEAGE.reads)
def post_sql(data: SqlLineageIn, session: SessionDep, request: Request) -> Response:
    """Column lineage of SQL (spark, hive, flink, trino, postgres) against the catalog; ``apply`` records it
    (and needs lineage.write)."""
    if data.apply:
        require(request, Action.LINEAGE_WRITE)
    return json_response(analyse_sql(session, data=data, audience=_audience(request)))


_EDGE_DOC: dict[int | str, dict[str, Any]] = {
    404: {"description": "A dataset or column the catalog does not know (the message names it)"},
    409: {"description": "The same edge is already known from events or SQL"},
    422: {"description": "A declaration whose parts do not fit (a field on one end only, ...)"},
}


@lineage_router.post(
    "/edges",
    status_code=status.HTTP_201_CREATED,
    response_model=ManualEdgeOut,
    responses=_EDGE_DOC,
    dependencies=LINEAGE.writes,
)
def post_edge(data: ManualEdgeIn, request: Request, session: SessionDep) -> Response:
    """Declare a dataset- or column-level edge by hand (origin ``manual``); declaring it again refreshes it."""
    declared = manual.declare_edge(session, data=data, audience=_audience(request))
    return json_response(declared, status_code=status.HTTP_201_CREATED)


@lineage_router.delete(
    "/edges/{level}/{edge_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {}, 409: {}},
    dependencies=LINEAGE.writes,
)
def delete_edge(
    level: Literal["column", "dataset"], edge_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep
) -> Response:
    """Withdraw an edge declared by hand: it is retired now, and as-of queries before now still show it."""
    manual.withdraw_edge(session, level=level, edge_id=edge_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ------------------------------------------------------------------------------------- queries
# Each query's own parameters are a dependency too: FastAPI lists an endpoint's own parameters before its
# dependencies', and the OpenAPI document keeps them between the node and the filters, where they always were.


@dataclass(frozen=True)
class Reach:
    """How far a query walks: direction, depth, node budget and time budget."""

    depth: int
    max_nodes: int = graph.MAX_BUDGET
    timeout_ms: int | None = None
    direction: Literal["upstream", "downstream", "both"] = "both"


def graph_reach(
    direction: Literal["upstream", "downstream", "both"] = "both",
    depth: Annotated[int, Query(ge=1, le=graph.MAX_DEPTH)] = 5,
    max_nodes: Annotated[int, Query(ge=1, le=graph.MAX_BUDGET)] = 2_000,
) -> Reach:
    """The reach of a graph query."""
    return Reach(depth=depth, max_nodes=max_nodes, direction=direction)


def impact_reach(
    depth: Annotated[int, Query(ge=1, le=graph.MAX_DEPTH)] = 20,
    max_nodes: Annotated[int, Query(ge=1, le=graph.MAX_BUDGET)] = 10_000,
    timeout_ms: Annotated[int, Query(ge=10, le=60_000)] = 5_000,
) -> Reach:
    """The reach of an impact query."""
    return Reach(depth=depth, max_nodes=max_nodes, timeout_ms=timeout_ms)


def path_reach(depth: Annotated[int, Query(ge=1, le=graph.MAX_DEPTH)] = 20) -> Reach:
    """The reach of a path query."""
    return Reach(depth=depth)


def _audience(request: Request) -> Audience:
    return audience_of(principal_of(request))


def _node(session: Session, node: NodeParams, audience: Audience = None) -> graph.NodeRef:
    return graph.resolve_node(
        session,
        audience=audience,
        dataset_id=node.dataset_id,
        field_id=node.field_id,
        namespace=node.namespace,
        name=node.name,
        field_path=node.field_path,
        label=node.label,
    )


def _filters(params: WalkFilterParams) -> graph.WalkFilters:
    return graph.WalkFilters(
        as_of=parse_time(params.as_of, field_name="as_of") if params.as_of else None,
        include_retired=params.include_retired,
        transformation_types=params.transformation_types,
        origins=params.origins,
    )


@lineage_router.get("/graph", response_model=GraphOut, dependencies=LINEAGE.reads)
def get_graph(
    request: Request,
    session: SessionDep,
    node: Node,
    reach: Annotated[Reach, Depends(graph_reach)],
    filters: EdgeFilters,
) -> Response:
    """Upstream and/or downstream of a dataset or a column, with each edge's provenance."""
    audience = _audience(request)
    start, walk = _node(session, node, audience), _filters(filters)
    found = graph.graph_around(
        session,
        node=start,
        direction=reach.direction,
        depth=reach.depth,
        budget=reach.max_nodes,
        filters=walk,
        audience=audience,
    )
    return json_response(found)


@lineage_router.get("/impact", response_model=ImpactOut, dependencies=LINEAGE.reads)
def get_impact(
    request: Request,
    session: SessionDep,
    node: Node,
    reach: Annotated[Reach, Depends(impact_reach)],
    filters: EdgeFilters,
) -> Response:
    """What breaks if a column or dataset changes: every downstream column, dataset, job and owner."""
    audience = _audience(request)
    start, walk, timeout = _node(session, node, audience), _filters(filters), reach.timeout_ms
    found = graph.impact(
        session,
        node=start,
        depth=reach.depth,
        budget=reach.max_nodes,
        timeout_ms=timeout,
        filters=walk,
        audience=audience,
    )
    return json_response(found)


@lineage_router.get("/path", response_model=PathOut, dependencies=LINEAGE.reads)
def get_path(
    request: Request,
    session: SessionDep,
    source: FromNode,
    target: ToNode,
    reach: Annotated[Reach, Depends(path_reach)],
    filters: TimeFilters,
) -> Response:
    """One shortest downstream path between two columns or two datasets."""
    audience = _audience(request)
    start, end = _node(session, source, audience), _node(session, target, audience)
    found = graph.path_between(
        session, source=start, target=end, depth=reach.depth, filters=_filters(filters), audience=audience
    )
    return json_response(found)
