"""Lineage queries: upstream/downstream graphs, impact analysis and paths, over a bounded subgraph.

The walk runs in the database as one recursive CTE over the edge table, breadth first, bounded by a depth
and a row budget (and on PostgreSQL by a time budget), so a request never reads more than that budget
of the graph; cycles terminate because every step adds one to a depth that is bounded. networkx then
works on the small subgraph the walk returned: distances and one shortest path per node. Why the walk's
limits are written into its statement: ``docs/adr/0009-impact-walk-plans.md``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx
from sqlalchemy import TextClause, bindparam, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from headwater.auth.policy import Audience
from headwater.catalog import identity
from headwater.catalog.models import Dataset, DatasetOwner, Field
from headwater.catalog.restrictions import hidden_among
from headwater.db import in_chunks
from headwater.errors import InvalidInput, NotFound
from headwater.lineage.models import (
    ColumnConfirmation,
    ColumnEdge,
    DatasetEdge,
    LineageJob,
    LineageRun,
    confirmed_provenance,
)
from headwater.lineage.nodes import Masker, NodeRef, node_out
from headwater.lineage.schemas import EdgeOut, GraphOut, ImpactOut, NodeOut, OwnerOut, PathOut

__all__ = [
    "NodeRef",
    "WalkFilters",
    "WalkResult",
    "graph_around",
    "impact",
    "path_between",
    "resolve_node",
    "walk",
]

Direction = Literal["upstream", "downstream"]
MAX_DEPTH = 50
MAX_BUDGET = 200_000


@dataclass(frozen=True)
class WalkFilters:
    """What edges a walk may follow."""

    as_of: dt.datetime | None = None
    include_retired: bool = False
    transformation_types: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()


@dataclass
class WalkResult:
    """The edges a walk reached: (edge id, from, to, job id, depth from the start)."""

    edges: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    nodes: dict[int, NodeRef] = field(default_factory=dict)
    partial: bool = False
    reason: str | None = None


def resolve_node(
    session: Session,
    *,
    audience: Audience = None,
    dataset_id: int | None = None,
    field_id: int | None = None,
    namespace: str | None = None,
    name: str | None = None,
    field_path: str | None = None,
    label: str = "",
) -> NodeRef:
    """The node a request names by id or by ``namespace`` + ``name`` (+ ``field``)."""
    prefix = f"{label}_" if label else ""
    if field_id is not None:
        row = session.execute(
            select(Field.id, Field.path, Dataset.id, Dataset.namespace, Dataset.name)
            .join(Dataset, Dataset.id == Field.dataset_id)
            .where(Field.id == field_id)
        ).first()
        if row is None or (audience is not None and hidden_among(session, [row[2]], audience)):
            raise NotFound(f"no column with field id {field_id}", detail={"field": f"{prefix}field_id"})
        return NodeRef(row[2], row[3], row[4], row[0], row[1])
    if dataset_id is not None:
        ds = session.execute(
            select(Dataset.id, Dataset.namespace, Dataset.name).where(Dataset.id == dataset_id)
        ).first()
        if ds is None:
            raise NotFound(f"no dataset with id {dataset_id}", detail={"field": f"{prefix}dataset_id"})
        dataset = NodeRef(ds[0], ds[1], ds[2])
    elif namespace and name:
        known = identity.resolve_id(session, namespace, name)  # its own name or another it is known by
        ds = (
            None
            if known is None
            else session.execute(select(Dataset.id, Dataset.namespace, Dataset.name).where(Dataset.id == known)).first()
        )
        if ds is None:
            raise NotFound(f"no dataset named {name!r} in namespace {namespace!r}", detail={"field": f"{prefix}name"})
        dataset = NodeRef(ds[0], ds[1], ds[2])
    else:
        raise InvalidInput(
            f"name the node with {prefix}dataset_id, {prefix}field_id, or {prefix}namespace and {prefix}name",
            detail={"field": f"{prefix}name"},
        )
    if audience is not None and hidden_among(session, [dataset.dataset_id], audience):
        # Answered exactly as a dataset that does not exist.
        if dataset_id is not None:
            raise NotFound(f"no dataset with id {dataset_id}", detail={"field": f"{prefix}dataset_id"})
        raise NotFound(f"no dataset named {name!r} in namespace {namespace!r}", detail={"field": f"{prefix}name"})
    if field_path is None:
        return dataset
    found = session.scalar(select(Field.id).where(Field.dataset_id == dataset.dataset_id, Field.path == field_path))
    if found is None:
        raise NotFound(f"dataset {dataset.label} has no column {field_path!r}", detail={"field": f"{prefix}field"})
    return NodeRef(dataset.dataset_id, dataset.namespace, dataset.name, found, field_path)


# ------------------------------------------------------------------------------------- walking


def _edge_filter(filters: WalkFilters, params: dict[str, object], column_level: bool) -> str:
    clauses: list[str] = []
    if filters.as_of is not None:
        clauses.append("e.first_seen <= :as_of")
        params["as_of"] = filters.as_of
        if not filters.include_retired:
            clauses.append("(e.retired_at IS NULL OR e.retired_at > :as_of)")
    elif not filters.include_retired:
        clauses.append("e.retired_at IS NULL")
    if column_level and filters.transformation_types:
        clauses.append("e.transformation_type IN :types")
        params["types"] = list(filters.transformation_types)
    if filters.origins:
        clauses.append("e.origin IN :origins")
        params["origins"] = list(filters.origins)
    return " AND ".join(clauses) or "1 = 1"


def walk(
    session: Session,
    *,
    level: Literal["column", "dataset"],
    starts: Sequence[int],
    direction: Direction,
    max_depth: int,
    budget: int,
    filters: WalkFilters,
    timeout_ms: int | None = None,
) -> WalkResult:
    """Breadth-first walk from ``starts`` in the database; at most ``budget`` edge rows, ``max_depth`` steps."""
    if not starts:
        return WalkResult()
    table, src, dst = (
        ("lineage_column_edges", "source_field_id", "target_field_id")
        if level == "column"
        else ("lineage_dataset_edges", "source_id", "target_id")
    )
    if direction == "upstream":
        src, dst = dst, src
    # The budget counts reached nodes beyond the starts (one more row tells that it was exceeded). The limits are
    # written into the statement, not bound: the generic plan PostgreSQL may use from a connection's tenth run
    # took a bound LIMIT for one row and probed the edge index once per pair of reached nodes (ADR 0009).
    keep = int(budget) + len(starts)
    params: dict[str, object] = {"starts": list(starts), "max_depth": max_depth}
    where = _edge_filter(filters, params, level == "column")
    # The names of the reached nodes come back with the walk: one round trip, no IN lists.
    if level == "column":
        seed = "SELECT n.id, 0 FROM fields n WHERE n.id IN :starts"
        names = "f.path, d.id, d.namespace, d.name"
        joins = "JOIN fields f ON f.id = r2.node JOIN datasets d ON d.id = f.dataset_id"
    else:
        seed = "SELECT n.id, 0 FROM datasets n WHERE n.id IN :starts"
        names = "NULL, d.id, d.namespace, d.name"
        joins = "JOIN datasets d ON d.id = r2.node"
    sqlite = session.get_bind().dialect.name == "sqlite"
    # SQLite stops a recursive CTE at a LIMIT inside it; PostgreSQL stops when the outer LIMIT is reached.
    inner_limit = f" LIMIT {keep + 1}" if sqlite else ""
    # The recursion carries only (node, depth), so each node is expanded once per depth however many edges
    # reach it; the edges among the reached nodes are then read once, for paths, jobs and provenance.
    sql = text(
        f"""
        WITH RECURSIVE walk(node, depth) AS (
            {seed}
            UNION
            SELECT e.{dst}, w.depth + 1 FROM walk w JOIN {table} e ON e.{src} = w.node
            WHERE w.depth < :max_depth AND {where}{inner_limit}
        ),
        limited AS (SELECT node, depth FROM walk LIMIT {keep + 1}),
        reached AS (SELECT node, min(depth) AS depth FROM (SELECT * FROM limited LIMIT {keep}) k GROUP BY node)
        SELECT e.id, e.{src}, e.{dst}, e.job_id, r2.depth, {names}, (SELECT count(*) FROM limited)
        FROM reached r1 JOIN {table} e ON e.{src} = r1.node JOIN reached r2 ON r2.node = e.{dst} {joins}
        WHERE {where}
        """
    ).bindparams(bindparam("starts", expanding=True))
    if "types" in params:
        sql = sql.bindparams(bindparam("types", expanding=True))
    if "origins" in params:
        sql = sql.bindparams(bindparam("origins", expanding=True))
    result = WalkResult()
    rows = _run_bounded(session, sql, params, timeout_ms, result)
    if rows is None:
        return result
    result.edges = [(r[0], r[1], r[2], r[3], r[4]) for r in rows]
    nodes = result.nodes
    for r in rows:
        if r[2] not in nodes:
            nodes[r[2]] = NodeRef(r[6], r[7], r[8], r[2], r[5]) if level == "column" else NodeRef(r[6], r[7], r[8])
    walked = rows[0][9] if rows else 0
    if walked > keep:
        result.partial = True
        result.reason = f"node budget of {budget} reached"
    elif result.edges and max(e[4] for e in result.edges) >= max_depth:
        frontier = {e[2] for e in result.edges if e[4] >= max_depth}
        if _has_more(session, table, src, frontier, where, params):
            result.partial = True
            result.reason = f"depth limit of {max_depth} reached"
    return result


def _run_bounded(
    session: Session, sql: TextClause, params: dict[str, object], timeout_ms: int | None, result: WalkResult
) -> Sequence[Any] | None:
    """Run the walk; on PostgreSQL under a statement timeout, answering None (partial) when it fires."""
    if timeout_ms is None or session.get_bind().dialect.name != "postgresql":
        return session.execute(sql, params).all()
    try:
        with session.begin_nested():
            session.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
            rows = session.execute(sql, params).all()
            session.execute(text("SET LOCAL statement_timeout TO DEFAULT"))
            return rows
    except OperationalError as exc:
        if "statement timeout" not in str(exc.orig):
            raise
        result.partial = True
        result.reason = f"time budget of {timeout_ms} ms reached"
        return None


def _has_more(
    session: Session, table: str, src: str, frontier: set[int], where: str, params: dict[str, object]
) -> bool:
    """Whether any edge leaves the walk's last frontier (so the depth limit cut something off)."""
    for chunk in in_chunks(sorted(frontier)):
        probe = text(f"SELECT 1 FROM {table} e WHERE e.{src} IN :frontier AND {where} LIMIT 1").bindparams(
            bindparam("frontier", expanding=True)
        )
        if "types" in params:
            probe = probe.bindparams(bindparam("types", expanding=True))
        if "origins" in params:
            probe = probe.bindparams(bindparam("origins", expanding=True))
        extra = {k: v for k, v in params.items() if k in ("as_of", "types", "origins")}
        if session.execute(probe, {**extra, "frontier": chunk}).first() is not None:
            return True
    return False


def _shortest(
    starts: Sequence[int], edges: Iterable[tuple[int, int, int, int, int]]
) -> tuple[dict[int, int], dict[int, list[int]]]:
    """Distance and one shortest path from the starts to every node the walk reached: a breadth-first search over
    the walk's edges, each node's path through the parent that found it first (as networkx's BFS chooses). Plain
    dicts and a deque: building a networkx graph of an impact's few thousand edges cost more than the search."""
    following: dict[int, list[int]] = {}
    for edge in edges:
        following.setdefault(edge[1], []).append(edge[2])
    parent: dict[int, int | None] = {}
    distances: dict[int, int] = {}
    frontier: deque[int] = deque()
    for start in starts:
        if start not in parent:
            parent[start] = None
            distances[start] = 0
            frontier.append(start)
    while frontier:
        node = frontier.popleft()
        step = distances[node] + 1
        for target in following.get(node, ()):
            if target not in parent:
                parent[target] = node
                distances[target] = step
                frontier.append(target)
    node_paths: dict[int, list[int]] = {}
    for node in distances:  # in breadth-first order: a parent's path is known before its children's
        before = parent[node]
        node_paths[node] = [node] if before is None else [*node_paths[before], node]
    return distances, node_paths


# ------------------------------------------------------------------------------------- details


def _datasets(session: Session, dataset_ids: Iterable[int]) -> dict[int, NodeRef]:
    found: dict[int, NodeRef] = {}
    for chunk in in_chunks(sorted(set(dataset_ids))):
        for dataset_id, namespace, name in session.execute(
            select(Dataset.id, Dataset.namespace, Dataset.name).where(Dataset.id.in_(chunk))
        ):
            found[dataset_id] = NodeRef(dataset_id, namespace, name)
    return found


def _jobs(session: Session, job_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    found: dict[int, tuple[str, str]] = {}
    for chunk in in_chunks(sorted(set(job_ids))):
        for job_id, namespace, name in session.execute(
            select(LineageJob.id, LineageJob.namespace, LineageJob.name).where(LineageJob.id.in_(chunk))
        ):
            found[job_id] = (namespace, name)
    return found


def _check_bounds(depth: int, budget: int) -> None:
    if not 1 <= depth <= MAX_DEPTH:
        raise InvalidInput(f"depth must be between 1 and {MAX_DEPTH}, got {depth}", detail={"field": "depth"})
    if not 1 <= budget <= MAX_BUDGET:
        raise InvalidInput(f"max_nodes must be between 1 and {MAX_BUDGET}, got {budget}", detail={"field": "max_nodes"})


# ------------------------------------------------------------------------------------- queries


def impact(
    session: Session,
    *,
    node: NodeRef,
    depth: int = 20,
    budget: int = 10_000,
    timeout_ms: int | None = 5_000,
    filters: WalkFilters | None = None,
    audience: Audience = None,
) -> ImpactOut:
    """Everything downstream of a column or dataset: columns, datasets, jobs and owners, each with its
    distance and one shortest path (restricted datasets ``audience`` may not see as placeholders)."""
    _check_bounds(depth, budget)
    filters = filters or WalkFilters()
    masker = Masker(session, audience)
    began = time.perf_counter()
    if node.field_id is not None:
        starts = [node.field_id]
    else:
        starts = list(session.scalars(select(Field.id).where(Field.dataset_id == node.dataset_id)))
    columns_walk = walk(
        session,
        level="column",
        starts=starts,
        direction="downstream",
        max_depth=depth,
        budget=budget,
        filters=filters,
        timeout_ms=timeout_ms,
    )
    distances, paths = _shortest(starts, columns_walk.edges)
    column_refs = masker.mask({**columns_walk.nodes, **({node.field_id: node} if node.field_id is not None else {})})
    labels = {node_id: ref.label for node_id, ref in column_refs.items()}
    dataset_distance: dict[int, tuple[int, list[str]]] = {}
    columns_out: list[NodeOut] = []
    for field_id, distance in sorted(distances.items(), key=lambda item: (item[1], item[0])):
        ref = column_refs.get(field_id)
        if distance == 0 or ref is None:
            continue
        path = [labels[p] for p in paths[field_id] if p in labels]
        columns_out.append(node_out("column", ref, distance, path))
        if ref.dataset_id not in dataset_distance or distance < dataset_distance[ref.dataset_id][0]:
            dataset_distance[ref.dataset_id] = (distance, path)
    job_distance: dict[int, int] = {}
    for _edge, _prev, _node, job_id, step in columns_walk.edges:
        job_distance[job_id] = min(job_distance.get(job_id, step), step)
    partial, reason = columns_walk.partial, columns_walk.reason
    if node.field_id is None:  # a dataset also reaches datasets through dataset-level edges
        datasets_walk = walk(
            session,
            level="dataset",
            starts=[node.dataset_id],
            direction="downstream",
            max_depth=depth,
            budget=budget,
            filters=filters,
            timeout_ms=timeout_ms,
        )
        partial, reason = partial or datasets_walk.partial, reason or datasets_walk.reason
        d_distances, d_paths = _shortest([node.dataset_id], datasets_walk.edges)
        d_refs = masker.mask({**datasets_walk.nodes, node.dataset_id: node})
        for dataset_id, distance in d_distances.items():
            if distance == 0 or dataset_id not in d_refs:
                continue
            if dataset_id not in dataset_distance or distance <= dataset_distance[dataset_id][0]:
                dataset_distance[dataset_id] = (distance, [d_refs[p].label for p in d_paths[dataset_id]])
        for _edge, _prev, _node, job_id, step in datasets_walk.edges:
            job_distance[job_id] = min(job_distance.get(job_id, step), step)
    dataset_distance.pop(node.dataset_id, None)
    dataset_refs = masker.mask(_datasets(session, dataset_distance))  # one query: few datasets next to columns
    datasets_out = [
        node_out("dataset", dataset_refs[i], d, p)
        for i, (d, p) in sorted(dataset_distance.items(), key=lambda item: (item[1][0], item[0]))
        if i in dataset_refs
    ]
    job_names = _jobs(session, job_distance)
    jobs_out = [
        NodeOut(kind="job", id=j, namespace=job_names[j][0], name=job_names[j][1], distance=d)
        for j, d in sorted(job_distance.items(), key=lambda item: (item[1], item[0]))
        if j in job_names
    ]
    owners_out = _owners(session, {i: d for i, (d, _p) in dataset_distance.items()}, dataset_refs)
    return ImpactOut(
        root=node.label,
        total=len(columns_out) + len(datasets_out) + len(jobs_out) + len(owners_out),
        hidden=sum(1 for n in (*columns_out, *datasets_out) if n.hidden),
        isPartial=partial,
        partial_reason=reason,
        columns=columns_out,
        datasets=datasets_out,
        jobs=jobs_out,
        owners=owners_out,
        elapsed_ms=round((time.perf_counter() - began) * 1000, 2),
    )


def _owners(session: Session, distances: dict[int, int], refs: dict[int, NodeRef]) -> list[OwnerOut]:
    owners: dict[tuple[str, str], OwnerOut] = {}
    for chunk in in_chunks(sorted(distances)):
        for dataset_id, owner, role in session.execute(
            select(DatasetOwner.dataset_id, DatasetOwner.owner, DatasetOwner.role).where(
                DatasetOwner.dataset_id.in_(chunk)
            )
        ):
            key = (owner, role)
            distance = distances[dataset_id]
            entry = owners.setdefault(key, OwnerOut(owner=owner, role=role, distance=distance, datasets=[]))
            entry.distance = min(entry.distance, distance)
            entry.datasets.append(refs[dataset_id].label)
    return sorted(owners.values(), key=lambda o: (o.distance, o.owner, o.role))


def graph_around(
    session: Session,
    *,
    node: NodeRef,
    direction: Literal["upstream", "downstream", "both"],
    depth: int = 5,
    budget: int = 2_000,
    filters: WalkFilters | None = None,
    timeout_ms: int | None = 5_000,
    audience: Audience = None,
) -> GraphOut:
    """The nodes and edges upstream and/or downstream of a dataset or column, with each edge's provenance
    (restricted datasets ``audience`` may not see as placeholders)."""
    _check_bounds(depth, budget)
    masker = Masker(session, audience)
    filters = filters or WalkFilters()
    level: Literal["column", "dataset"] = "column" if node.field_id is not None else "dataset"
    start = node.field_id if node.field_id is not None else node.dataset_id
    directions: list[Direction] = ["upstream", "downstream"] if direction == "both" else [direction]
    nodes: dict[int, NodeOut] = {}
    edges: list[EdgeOut] = []
    partial = False
    for way in directions:
        result = walk(
            session,
            level=level,
            starts=[start],
            direction=way,
            max_depth=depth,
            budget=budget,
            filters=filters,
            timeout_ms=timeout_ms,
        )
        partial = partial or result.partial
        distances, paths = _shortest([start], result.edges)
        refs = masker.mask({**result.nodes, start: node})
        for node_id, distance in distances.items():
            if node_id in refs:
                signed = -distance if way == "upstream" else distance
                path = [refs[p].label for p in paths[node_id] if p in refs]
                if node_id not in nodes or node_id == start:
                    nodes[node_id] = node_out(level, refs[node_id], signed, path)
        edges.extend(_edge_details(session, level, [e[0] for e in result.edges], refs))
    if start not in nodes:
        nodes[start] = node_out(level, node, 0, [node.label])
    nodes[start].distance = 0
    unique = {(e.source, e.target, e.job, e.transformation_type, e.subtype): e for e in edges}
    return GraphOut(
        root=node.label,
        direction=direction,
        nodes=sorted(nodes.values(), key=lambda n: (n.distance or 0, n.id)),
        edges=list(unique.values()),
        isPartial=partial,
        hidden=sum(1 for n in nodes.values() if n.hidden),
    )


def _edge_details(session: Session, level: str, edge_ids: Sequence[int], refs: dict[int, NodeRef]) -> list[EdgeOut]:
    out: list[EdgeOut] = []
    model: type[ColumnEdge] | type[DatasetEdge] = ColumnEdge if level == "column" else DatasetEdge
    for chunk in in_chunks(sorted(set(edge_ids))):
        if model is ColumnEdge:
            # A column edge's last seen, run and producer may be its pair's confirmation's.
            last_seen, last_run_id, producer, on = confirmed_provenance()
            query = select(model, LineageJob.namespace, LineageJob.name, LineageRun.run_uuid, last_seen, producer)
            query = query.outerjoin(ColumnConfirmation, on).outerjoin(LineageRun, LineageRun.id == last_run_id)
        else:
            query = select(
                model, LineageJob.namespace, LineageJob.name, LineageRun.run_uuid, model.last_seen, model.producer
            ).outerjoin(LineageRun, LineageRun.id == model.last_run_id)
        rows = session.execute(query.join(LineageJob, LineageJob.id == model.job_id).where(model.id.in_(chunk))).all()
        for edge, job_ns, job_name, run_uuid, seen, producer_name in rows:
            if isinstance(edge, ColumnEdge):
                source, target = refs.get(edge.source_field_id), refs.get(edge.target_field_id)
                kind, subtype = edge.transformation_type, edge.subtype or None
            else:
                assert isinstance(edge, DatasetEdge)
                source, target = refs.get(edge.source_id), refs.get(edge.target_id)
                kind, subtype = None, None
            if source is None or target is None:
                continue
            out.append(
                EdgeOut(
                    source=source.label,
                    target=target.label,
                    job=f"{job_ns}/{job_name}",
                    transformation_type=kind,
                    subtype=subtype,
                    origin=edge.origin,
                    producer=producer_name,
                    first_seen=edge.first_seen,
                    last_seen=seen,
                    retired_at=edge.retired_at,
                    last_run_id=run_uuid,
                )
            )
    return out


def path_between(
    session: Session,
    *,
    source: NodeRef,
    target: NodeRef,
    depth: int = 20,
    budget: int = 20_000,
    filters: WalkFilters | None = None,
    audience: Audience = None,
) -> PathOut:
    """One shortest downstream path from ``source`` to ``target`` (both columns, or both datasets)."""
    _check_bounds(depth, budget)
    if (source.field_id is None) != (target.field_id is None):
        raise InvalidInput(
            "a path joins two columns or two datasets; name a field on both ends or on neither",
            detail={"field": "to_field"},
        )
    level: Literal["column", "dataset"] = "column" if source.field_id is not None else "dataset"
    start = source.field_id if source.field_id is not None else source.dataset_id
    goal = target.field_id if target.field_id is not None else target.dataset_id
    result = walk(
        session,
        level=level,
        starts=[start],
        direction="downstream",
        max_depth=depth,
        budget=budget,
        filters=filters or WalkFilters(),
    )
    graph: nx.DiGraph[int] = nx.DiGraph()
    graph.add_node(start)
    graph.add_edges_from((e[1], e[2]) for e in result.edges)
    try:
        ids = nx.shortest_path(graph, start, goal) if goal in graph else []
    except nx.NetworkXNoPath:
        ids = []
    refs = Masker(session, audience).mask({**result.nodes, start: source})
    return PathOut(
        source=source.label,
        target=target.label,
        found=bool(ids),
        path=[refs[i].label for i in ids if i in refs],
        isPartial=result.partial and not ids,
    )
