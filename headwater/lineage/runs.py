"""Lineage reads of what ingestion recorded: runs (with their jobs, parents and children) and the raw event log.
Every function takes the session keyword-only and never writes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from headwater.auth.policy import Audience
from headwater.catalog import identity
from headwater.catalog.restrictions import hidden_among
from headwater.db import in_chunks
from headwater.errors import InvalidInput, NotFound
from headwater.lineage.models import LineageEvent, LineageJob, LineageRun
from headwater.lineage.schemas import RunOut

__all__ = ["get_run", "list_events", "redact_events", "runs_by_uuid"]


def get_run(session: Session, *, run_id: str) -> RunOut:
    """A run by its OpenLineage run id, with its job, parent and children."""
    found = runs_by_uuid(session, run_ids=[run_id]).get(run_id.lower())
    if found is None:
        raise NotFound(f"no run with id {run_id!r}", detail={"field": "run_id"})
    return found


def runs_by_uuid(session: Session, *, run_ids: Sequence[str]) -> dict[str, RunOut]:
    """The runs among ``run_ids`` (OpenLineage run ids, lower case) with their jobs, parents and children, in two
    queries whatever their number (at most 1,000 children each)."""
    wanted = sorted({r.lower() for r in run_ids})
    parent = aliased(LineageRun)
    rows: list[Any] = []
    for chunk in in_chunks(wanted):
        rows.extend(
            session.execute(
                select(LineageRun, LineageJob.namespace, LineageJob.name, parent.run_uuid)
                .join(LineageJob, LineageJob.id == LineageRun.job_id)
                .outerjoin(parent, parent.id == LineageRun.parent_run_id)
                .where(LineageRun.run_uuid.in_(chunk))
            ).all()
        )
    children: dict[int, list[str]] = {row[0].id: [] for row in rows}
    for parents in in_chunks(list(children)):
        # The first 1,000 children of each parent, counted in the database: a run may have many more.
        rank = func.row_number().over(partition_by=LineageRun.parent_run_id, order_by=LineageRun.id)
        ranked = (
            select(LineageRun.parent_run_id, LineageRun.run_uuid, LineageRun.id, rank.label("rank"))
            .where(LineageRun.parent_run_id.in_(parents))
            .subquery()
        )
        for parent_id, child in session.execute(
            select(ranked.c.parent_run_id, ranked.c.run_uuid).where(ranked.c.rank <= 1000).order_by(ranked.c.id)
        ):
            children[parent_id].append(child)
    return {
        run.run_uuid: RunOut(
            run_id=run.run_uuid,
            job_namespace=job_namespace,
            job_name=job_name,
            state=run.state,
            started_at=run.started_at,
            ended_at=run.ended_at,
            state_time=run.state_time,
            parent_run_id=parent_uuid,
            event_count=run.event_count,
            children=children[run.id],
        )
        for run, job_namespace, job_name, parent_uuid in rows
    }


def list_events(session: Session, *, after: int = 0, limit: int = 100) -> list[LineageEvent]:
    """The raw event log, oldest first, after id ``after``."""
    if after < 0:
        raise InvalidInput(f"after must be 0 or an event id, got {after}", detail={"field": "after"})
    if not 1 <= limit <= 1000:
        raise InvalidInput(f"limit must be between 1 and 1000, got {limit}", detail={"field": "limit"})
    return list(
        session.scalars(select(LineageEvent).where(LineageEvent.id > after).order_by(LineageEvent.id).limit(limit))
    )


def redact_events(session: Session, payloads: list[Any], audience: Audience) -> list[Any]:
    """The raw events' payloads with every input or output dataset ``audience`` may not see replaced by
    ``{"hidden": true}`` (its name, namespace and facets gone); the same payloads when nothing is hidden."""
    if audience is None:
        return payloads
    named: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for payload in payloads:
        for key in ("inputs", "outputs"):
            for entry in payload.get(key) or () if isinstance(payload, dict) else ():
                if isinstance(entry, dict) and isinstance(entry.get("namespace"), str):
                    named.setdefault((entry["namespace"], str(entry.get("name"))), []).append(entry)
    if not named:
        return payloads
    known = identity.resolve_ids(session, named)  # an alias of a hidden dataset names it too
    hidden_ids = hidden_among(session, set(known.values()), audience)
    hidden = {name for name, dataset_id in known.items() if dataset_id in hidden_ids}
    if not hidden:
        return payloads
    out = []
    for payload in payloads:
        if not isinstance(payload, dict):
            out.append(payload)
            continue
        copy = dict(payload)
        for key in ("inputs", "outputs"):
            if isinstance(copy.get(key), list):
                copy[key] = [
                    {"hidden": True}
                    if isinstance(e, dict) and (e.get("namespace"), str(e.get("name"))) in hidden
                    else e
                    for e in copy[key]
                ]
        out.append(copy)
    return out
