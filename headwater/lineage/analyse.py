"""SQL lineage as a service: SQL analysed against the catalog's schemas and, when asked, recorded as edges of origin
``sql`` through the ingestion's resolve, plan and write stages. Takes the session keyword-only; flushes, never
commits."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.auth.policy import Audience
from headwater.lineage.ingest.plan import apply_column_lineage
from headwater.lineage.ingest.resolve import DatasetResolver, WantedDataset
from headwater.lineage.ingest.write import insert_ignore, upsert_edges
from headwater.lineage.models import DatasetEdge, EdgeOrigin, JobDataset, LineageJob
from headwater.lineage.schemas import SqlColumnOut, SqlLineageIn, SqlLineageOut, SqlStatementOut
from headwater.lineage.sql import DIALECTS, lineage_of_sql

__all__ = ["analyse_sql"]


def _ensure_job(session: Session, namespace: str, name: str, sql: str) -> LineageJob:
    insert_ignore(session, LineageJob, [{"namespace": namespace, "name": name, "facets": {}}], ["namespace", "name"])
    job = session.scalar(select(LineageJob).where(LineageJob.namespace == namespace, LineageJob.name == name))
    assert job is not None
    job.sql = sql
    return job


def analyse_sql(
    session: Session, *, data: SqlLineageIn, now: dt.datetime | None = None, audience: Audience = None
) -> SqlLineageOut:
    """Column lineage of SQL against the catalog's schemas (those ``audience`` may see); with ``apply``, recorded as
    edges of origin ``sql``."""
    statements = lineage_of_sql(
        session,
        sql=data.sql,
        dialect=data.dialect,
        namespace=data.namespace,
        default_schema=data.default_schema,
        audience=audience,
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
