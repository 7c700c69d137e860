"""Jobs and runs of one ingestion batch, read with one query each and written back once.

Ingestion reads every job and run a batch names up front (creating the missing ones), applies the
events to these in-memory rows in arrival order, and writes back only the rows that changed, as part of
the call's :class:`~headwater.lineage.upsert.WriteSet`. Runs are locked (``FOR UPDATE`` on PostgreSQL) so two requests carrying events of the
same run serialise instead of overwriting each other's state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, cast

from sqlalchemy import Table, select, tuple_
from sqlalchemy.orm import Session

from headwater.db import utcnow
from headwater.lineage.models import LineageJob, LineageRun
from headwater.lineage.upsert import CHUNK, WriteSet, insert_statement

__all__ = ["JobRow", "RunRow", "load_jobs", "load_runs", "write_jobs", "write_runs"]

_JOBS = cast(Table, LineageJob.__table__)
_RUNS = cast(Table, LineageRun.__table__)


@dataclass
class JobRow:
    """A ``lineage_jobs`` row as ingestion sees it."""

    id: int
    namespace: str
    name: str
    parent_job_id: int | None = None
    job_type: str | None = None
    description: str | None = None
    sql: str | None = None
    facets: dict[str, Any] = field(default_factory=dict)
    described_at: dt.datetime | None = None
    dirty: bool = False


@dataclass
class RunRow:
    """A ``lineage_runs`` row as ingestion sees it."""

    id: int
    run_uuid: str
    job_id: int
    parent_run_id: int | None = None
    state: str | None = None
    state_time: dt.datetime | None = None
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    facets: dict[str, Any] = field(default_factory=dict)
    event_count: int = 0
    dirty: bool = False
    # Created (PostgreSQL, by the read statement) with the batch's one event of it already applied.
    fresh: bool = False


_JOB_COLUMNS = [f.name for f in fields(JobRow) if f.name != "dirty"]
_RUN_COLUMNS = [f.name for f in fields(RunRow) if f.name not in ("dirty", "fresh")]


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _select_jobs(session: Session, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], JobRow]:
    found: dict[tuple[str, str], JobRow] = {}
    conn = session.connection()
    for chunk in _chunks(keys):
        statement = select(*(_JOBS.c[c] for c in _JOB_COLUMNS)).where(
            tuple_(_JOBS.c.namespace, _JOBS.c.name).in_(list(chunk))
        )
        for row in conn.execute(statement):
            job = JobRow(**row._asdict())
            job.facets = job.facets or {}
            found[(job.namespace, job.name)] = job
    return found


def load_jobs(session: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], JobRow]:
    """The jobs named ``(namespace, name)``, creating the missing ones."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    jobs = _select_jobs(session, wanted)
    missing = [key for key in wanted if key not in jobs]
    if missing:
        now = utcnow()
        rows = [{"namespace": ns, "name": n, "facets": {}, "created_at": now, "updated_at": now} for ns, n in missing]
        statement = insert_statement(session, LineageJob).on_conflict_do_nothing(index_elements=["namespace", "name"])
        session.connection().execute(statement, rows)
        jobs.update(_select_jobs(session, missing))
    return jobs


def load_runs(session: Session, wanted: dict[str, int]) -> dict[str, RunRow]:
    """The runs with these ids (run uuid -> the job to file a new one under), creating and locking them."""
    if not wanted:
        return {}
    conn = session.connection()
    now = utcnow()
    rows = [
        {"run_uuid": uuid, "job_id": job_id, "facets": {}, "event_count": 0, "created_at": now, "updated_at": now}
        for uuid, job_id in wanted.items()
    ]
    insert = insert_statement(session, LineageRun).on_conflict_do_nothing(index_elements=["run_uuid"])
    runs: dict[str, RunRow] = {}
    for row in conn.execute(insert.returning(_RUNS.c.id, _RUNS.c.run_uuid), rows):
        runs[row.run_uuid] = RunRow(id=row.id, run_uuid=row.run_uuid, job_id=wanted[row.run_uuid])
    existing = [uuid for uuid in wanted if uuid not in runs]
    for chunk in _chunks(existing):
        statement = (
            select(*(_RUNS.c[c] for c in _RUN_COLUMNS))
            .where(_RUNS.c.run_uuid.in_(list(chunk)))
            .order_by(_RUNS.c.id)
            .with_for_update()
        )
        for row in conn.execute(statement):
            run = RunRow(**row._asdict())
            run.facets = run.facets or {}
            runs[run.run_uuid] = run
    return runs


def _changed(rows: Iterable[JobRow | RunRow], columns: Sequence[str]) -> list[dict[str, Any]]:
    """The rows that changed (``columns`` + ``created_at`` + ``updated_at``), marked clean."""
    now = utcnow()
    changed: list[dict[str, Any]] = []
    for row in rows:
        if row.dirty:
            # created_at only for the insert the statement's form allows (the row exists: it is never used).
            changed.append({**{c: getattr(row, c) for c in columns}, "created_at": now, "updated_at": now})
            row.dirty = False
    return changed


_JOB_UPDATES = [c for c in _JOB_COLUMNS if c not in ("id", "namespace", "name")]
_RUN_UPDATES = [c for c in _RUN_COLUMNS if c not in ("id", "run_uuid")]


def write_jobs(writes: WriteSet, jobs: Iterable[JobRow]) -> None:
    """Add the jobs that changed to ``writes`` (by namespace and name: see WriteSet.replace)."""
    rows = _changed(jobs, ["namespace", "name", *_JOB_UPDATES])
    writes.replace(LineageJob, rows, ["namespace", "name"], [*_JOB_UPDATES, "updated_at"])


def write_runs(writes: WriteSet, runs: Iterable[RunRow]) -> None:
    """Add the runs that changed to ``writes`` (by run uuid: see WriteSet.replace)."""
    rows = _changed(runs, ["run_uuid", *_RUN_UPDATES])
    writes.replace(LineageRun, rows, ["run_uuid"], [*_RUN_UPDATES, "updated_at"])
