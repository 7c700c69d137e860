"""Lineage reads and SQL lineage: runs and jobs as ingested, the event log, and SQL analysed (and optionally
recorded as edges). Every function takes the session keyword-only and flushes, never commits."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from headwater.db import in_chunks
from headwater.errors import InvalidInput, NotFound
from headwater.lineage.datasets import DatasetResolver, WantedDataset
from headwater.lineage.ingest import apply_column_lineage
from headwater.lineage.models import DatasetEdge, EdgeOrigin, JobDataset, LineageEvent, LineageJob, LineageRun
from headwater.lineage.schemas import RunOut, SqlColumnOut, SqlLineageIn, SqlLineageOut, SqlStatementOut
from headwater.lineage.sql import DIALECTS, lineage_of_sql
from headwater.lineage.upsert import insert_ignore, upsert_edges

__all__ = ["analyse_sql", "get_run", "list_events", "runs_by_uuid"]


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


def _ensure_job(session: Session, namespace: str, name: str, sql: str) -> LineageJob:
    insert_ignore(session, LineageJob, [{"namespace": namespace, "name": name, "facets": {}}], ["namespace", "name"])
    job = session.scalar(select(LineageJob).where(LineageJob.namespace == namespace, LineageJob.name == name))
    assert job is not None
    job.sql = sql
    return job


def analyse_sql(session: Session, *, data: SqlLineageIn, now: dt.datetime | None = None) -> SqlLineageOut:
    """Column lineage of SQL against the catalog's schemas; with ``apply``, recorded as edges of origin ``sql``."""
    statements = lineage_of_sql(
        session, sql=data.sql, dialect=data.dialect, namespace=data.namespace, default_schema=data.default_schema
    )
    out = SqlLineageOut(
        dialect=data.dialect,
        parsed_as=DIALECTS[data.dialect],
        statements=[
            SqlStatementOut(
                kind=s.kind,
                target={"namespace": s.target[0], "name": s.target[1]} if s.target else None,
                inputs=[{"namespace": ns, "name": name} for ns, name in s.inputs],
                columns=[SqlColumnOut(field=c, inputs=[i.as_dict() for i in ins]) for c, ins in s.columns.items()],
                dataset_inputs=[i.as_dict() for i in s.dataset_inputs],
                warnings=s.warnings,
            )
            for s in statements
        ],
    )
    if not data.apply:
        return out
    when = now or dt.datetime.now(dt.UTC)
    digest = hashlib.sha1(data.sql.encode(), usedforsecurity=False).hexdigest()[:12]
    job = _ensure_job(session, data.job_namespace, data.job_name or f"sql-{digest}", data.sql)
    resolver = DatasetResolver(session)
    provenance: dict[str, Any] = {
        "origin": EdgeOrigin.SQL.value,
        "producer": "headwater/sql",
        "first_seen": when,
        "last_seen": when,
        "last_run_id": None,
    }
    for statement in statements:
        if statement.target is None:
            continue
        inputs = [resolver.resolve(WantedDataset(ns, name)) for ns, name in statement.inputs]
        target = resolver.resolve(WantedDataset(*statement.target))
        io = [{"job_id": job.id, "dataset_id": d.id, "direction": "in", **provenance} for d in inputs]
        io.append({"job_id": job.id, "dataset_id": target.id, "direction": "out", **provenance})
        upsert_edges(session, JobDataset, io, ["job_id", "dataset_id", "direction"])
        upsert_edges(
            session,
            DatasetEdge,
            [{"source_id": d.id, "target_id": target.id, "job_id": job.id, **provenance} for d in inputs],
            ["source_id", "target_id", "job_id"],
        )
        facet = statement.as_facet()
        referenced: dict[tuple[str, str], list[str]] = {}
        for source in [*(f for o in facet.fields.values() for f in o.inputFields), *facet.dataset]:
            referenced.setdefault((source.namespace, source.name), []).append(source.field)
        for (namespace, name), columns in referenced.items():
            resolver.resolve(WantedDataset(namespace, name, columns=list(dict.fromkeys(columns))))
        out.applied_edges += apply_column_lineage(
            session,
            resolver=resolver,
            job_id=job.id,
            output=WantedDataset(*statement.target, columns=list(facet.fields)),
            facet=facet,
            provenance=provenance,
            retire=True,
        )
    if resolver.warnings and out.statements:
        out.statements[-1].warnings.extend(resolver.warnings)
    session.flush()
    return out
