"""Edges declared by hand: dataset- or column-level lineage that no event or SQL states (a nightly export
someone runs by hand, a spreadsheet copied into a table), recorded with origin ``manual``.

A declared edge belongs to a job (default ``headwater/manual``) like every edge, so walks, filters and
provenance treat it like any other; OpenLineage retirement never touches it (a declaration stands until it is
withdrawn by hand). Withdrawing retires the edge at that moment instead of deleting the row, so as-of queries
still show it for the time it was declared. Every function takes the session keyword-only and flushes only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from headwater.auth.policy import Audience
from headwater.catalog import identity
from headwater.catalog.models import Dataset, Field
from headwater.catalog.restrictions import hidden_among
from headwater.errors import Conflict, NotFound
from headwater.lineage.ingest.resolve import load_jobs
from headwater.lineage.ingest.statements import COLUMN_EDGE_KEYS, COLUMN_EDGE_NEWEST
from headwater.lineage.ingest.write import upsert_edges
from headwater.lineage.models import ColumnEdge, DatasetEdge, EdgeOrigin
from headwater.lineage.schemas import EdgeEndIn, InvalidEvent, ManualEdgeIn, ManualEdgeOut

__all__ = ["Level", "declare_edge", "withdraw_edge"]

Level = Literal["column", "dataset"]
_DATASET_EDGE_KEYS = ("source_id", "target_id", "job_id")


class InvalidEdge(InvalidEvent):
    """A declaration whose parts do not fit together (422, naming the field)."""


def _end(session: Session, end: EdgeEndIn, label: str, audience: Audience = None) -> tuple[int, int | None, str]:
    """(dataset id, field id or None, the node's canonical label) of one end, named by the dataset's own name or
    any other it is known by; 404 naming it when the catalog does not know it (or ``audience`` may not see it)."""
    known = identity.resolve_id(session, end.namespace, end.name)
    found = (
        None
        if known is None
        else session.execute(
            select(Dataset.id, Dataset.deleted_at, Dataset.namespace, Dataset.name).where(Dataset.id == known)
        ).first()
    )
    if found is None or (audience is not None and hidden_among(session, [found.id], audience)):
        raise NotFound(
            f"{label}: no dataset named {end.name!r} in namespace {end.namespace!r}", detail={"field": f"{label}.name"}
        )
    if found.deleted_at is not None:
        raise NotFound(f"{label}: dataset {end.namespace}/{end.name} is deleted", detail={"field": f"{label}.name"})
    base = f"{found.namespace}/{found.name}"
    if end.field is None:
        return found.id, None, base
    field_id = session.scalar(select(Field.id).where(Field.dataset_id == found.id, Field.path == end.field))
    if field_id is None:
        raise NotFound(
            f"{label}: dataset {end.namespace}/{end.name} has no column {end.field!r}",
            detail={"field": f"{label}.field"},
        )
    return found.id, field_id, f"{base}#{end.field}"


def _check(data: ManualEdgeIn) -> Level:
    if (data.source.field is None) != (data.target.field is None):
        raise InvalidEdge(
            "an edge joins two columns or two datasets: name a field on both ends or on neither",
            detail={"field": "target.field" if data.target.field is None else "source.field"},
        )
    level: Level = "column" if data.source.field is not None else "dataset"
    if level == "dataset" and (data.transformation_type is not None or data.subtype is not None):
        which = "transformation_type" if data.transformation_type is not None else "subtype"
        raise InvalidEdge(f"{which} describes a column edge; this edge joins two datasets", detail={"field": which})
    return level


def declare_edge(
    session: Session, *, data: ManualEdgeIn, now: dt.datetime | None = None, audience: Audience = None
) -> ManualEdgeOut:
    """Record (or refresh) an edge declared by hand; 404 for an unknown dataset or column, 409 when the same
    edge is already known another way."""
    level = _check(data)
    source_dataset, source_field, source_label = _end(session, data.source, "source", audience)
    target_dataset, target_field, target_label = _end(session, data.target, "target", audience)
    if (source_dataset, source_field) == (target_dataset, target_field):  # two names of one node count as one
        raise InvalidEdge("an edge cannot join a node to itself", detail={"field": "target"})
    when = now or dt.datetime.now(dt.UTC)
    job_id = load_jobs(session, [(data.job_namespace, data.job_name)])[(data.job_namespace, data.job_name)].id
    provenance: dict[str, Any] = {
        "origin": EdgeOrigin.MANUAL.value,
        "producer": data.producer,
        "first_seen": when,
        "last_seen": when,
        "last_run_id": None,
    }
    model: type[ColumnEdge] | type[DatasetEdge]
    keys: tuple[str, ...]
    newest: tuple[str, ...]
    if level == "column":
        model, keys, newest = ColumnEdge, COLUMN_EDGE_KEYS, COLUMN_EDGE_NEWEST
        row = {
            "source_field_id": source_field,
            "target_field_id": target_field,
            "job_id": job_id,
            "transformation_type": data.transformation_type or "DIRECT",
            "subtype": (data.subtype or "").upper(),
            "source_dataset_id": source_dataset,
            "target_dataset_id": target_dataset,
            "description": data.description,
            "masking": False,
            "dataset_level": False,
            **provenance,
        }
    else:
        model, keys, newest = DatasetEdge, _DATASET_EDGE_KEYS, ("origin",)
        row = {"source_id": source_dataset, "target_id": target_dataset, "job_id": job_id, **provenance}
    table = cast(Table, model.__table__)
    match = [table.c[k] == row[k] for k in keys]
    existing = session.execute(select(table.c.id, table.c.origin, table.c.producer).where(*match)).first()
    if existing is not None and existing.origin != EdgeOrigin.MANUAL.value:
        raise Conflict(
            f"this edge (id {existing.id}) is already known from {existing.origin} (producer {existing.producer}); "
            "declare it under another job_name to keep both",
            detail={"field": "job_name", "edge_id": existing.id, "level": level},
        )
    upsert_edges(session, model, [row], keys, newest_wins=newest)
    edge = session.execute(select(table).where(*match)).one()
    return ManualEdgeOut(
        id=edge.id,
        level=level,
        created=existing is None,
        source=source_label,
        target=target_label,
        job=f"{data.job_namespace}/{data.job_name}",
        transformation_type=row.get("transformation_type"),
        subtype=row.get("subtype") or None,
        origin=edge.origin,
        producer=edge.producer,
        first_seen=edge.first_seen,
        last_seen=edge.last_seen,
        retired_at=edge.retired_at,
        last_run_id=None,
    )


def withdraw_edge(session: Session, *, level: Level, edge_id: int, now: dt.datetime | None = None) -> None:
    """Retire a manual edge now (as-of queries before this moment still show it); 404 when there is no such
    active edge, 409 when the edge is known another way (events and SQL own their edges)."""
    edge: ColumnEdge | DatasetEdge | None
    if level == "column":
        edge = session.scalar(select(ColumnEdge).where(ColumnEdge.id == edge_id).with_for_update())
    else:
        edge = session.scalar(select(DatasetEdge).where(DatasetEdge.id == edge_id).with_for_update())
    if edge is None or edge.retired_at is not None:
        state = "no" if edge is None else "no active (it was withdrawn or retired)"
        raise NotFound(f"{state} {level} edge with id {edge_id}", detail={"field": "edge_id"})
    if edge.origin != EdgeOrigin.MANUAL.value:
        raise Conflict(
            f"{level} edge {edge_id} is known from {edge.origin} (producer {edge.producer}); only edges declared "
            "by hand can be withdrawn",
            detail={"field": "edge_id", "origin": edge.origin},
        )
    edge.retired_at = now or dt.datetime.now(dt.UTC)
    session.flush()
