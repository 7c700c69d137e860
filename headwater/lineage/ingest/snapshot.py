"""The log-and-read step of lineage ingestion: the raw events appended to the event log, and on PostgreSQL
everything one ingestion call reads, in the same statement (:func:`read_snapshot`; elsewhere :func:`log_events`
logs, and the resolve stage reads with a query each).

One POST carries one event, and applying it needs the event logged (is it a duplicate?), its job, its run
(created when new, locked when not), the catalog datasets and fields it names, and a lock on each (job, output
dataset) pair it states column lineage for.
Asked one statement at a time that is six round trips before any write; on a busy machine each round trip
costs two context switches, which dominated the time of a single-event request. Here they are one statement:
data-modifying CTEs log the event and create the new runs, the other CTEs read, and every answer comes back
as JSON in one row. Lookups are written so that PostgreSQL probes the unique indexes once per name asked
(LATERAL subqueries, ``= ANY(ARRAY(...))``) whatever the table sizes: a JSON array's rows are estimated at
100, which otherwise makes a hash join over a whole sequential scan look cheaper.

Every (job, output dataset) pair the request states column lineage for takes a transaction-scoped advisory lock
here, in key order, so two requests about the same pair are applied one after the other, and everything this
transaction reads or writes of the pair's edges afterwards, in later statements, sees what the other committed.
A pair stated once (``groups`` maps it to false) is then written blind: an upsert of the edges its statement names,
an UPDATE retiring the others and the pair's confirmation, in the write statement. The edges of a pair stated several times in a batch
are read (in their own statement, after the lock) and the statements replayed in memory in event order
(:class:`~headwater.lineage.ingest.confirm.ColumnEdgeBuffer`).

Anything the statement cannot settle (a job not created yet, a run another transaction is creating at the same
moment, a group whose output is only known under a symlink) is left out of the answer, and the caller reads
it the ordinary way afterwards, so the result is always the same as the statement-at-a-time path.
Why one read and one write statement, with the figures: docs/adr/0006-lineage-snapshot.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, cast

import orjson
from sqlalchemy import Table, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from headwater.db import begin_and_fetch_one
from headwater.lineage.ingest.parse import LOG_COLUMNS, Names
from headwater.lineage.ingest.resolve import JobRow, RunRow
from headwater.lineage.ingest.statements import CHUNK, PAIR_LOCK_KEY, json_rows
from headwater.lineage.models import LineageEvent

__all__ = ["Snapshot", "log_events", "read_snapshot"]

_JOB_COLUMNS = "id, namespace, name, parent_job_id, job_type, description, sql, facets, described_at"
_RUN_COLUMNS = "id, run_uuid, job_id, parent_run_id, state, state_time, started_at, ended_at, facets, event_count"
_LOG_COLUMNS = (
    "fingerprint, kind, event_type, event_time, producer, run_uuid, job_namespace, job_name, payload, warnings, "
    "received_at"
)

_SQL = text(
    f"""
WITH logged AS (
    INSERT INTO lineage_events ({_LOG_COLUMNS})
    SELECT {_LOG_COLUMNS} FROM json_populate_recordset(NULL::lineage_events, CAST(:log AS json))
    ON CONFLICT (fingerprint) DO NOTHING
    RETURNING id, fingerprint
),
wanted_jobs AS (SELECT * FROM json_to_recordset(CAST(:jobs AS json)) AS w(namespace text, name text)),
jobs AS (
    SELECT j.* FROM wanted_jobs w CROSS JOIN LATERAL (
        SELECT {_JOB_COLUMNS} FROM lineage_jobs
        WHERE namespace = w.namespace AND name = w.name OFFSET 0
    ) j
),
wanted_runs AS (
    SELECT * FROM json_to_recordset(CAST(:runs AS json)) AS w(
        run_uuid text, job_namespace text, job_name text, state text, state_time timestamptz,
        started_at timestamptz, ended_at timestamptz, facets jsonb, event_count integer
    )
),
runs AS (
    -- Get or create, and lock, through the unique index whatever the table's size: a cached plan that chose a
    -- sequential scan while the table was small would otherwise keep scanning it as it grows. A new run the
    -- batch has one event of is created as that event leaves it (``created``: inserted here, not found).
    INSERT INTO lineage_runs (
        run_uuid, job_id, state, state_time, started_at, ended_at, facets, event_count, created_at, updated_at
    )
    SELECT w.run_uuid, j.id, w.state, w.state_time, w.started_at, w.ended_at,
           coalesce(w.facets, CAST('{{}}' AS jsonb)), coalesce(w.event_count, 0), :now, :now
    FROM wanted_runs w JOIN jobs j ON j.namespace = w.job_namespace AND j.name = w.job_name
    ORDER BY w.run_uuid
    ON CONFLICT (run_uuid) DO UPDATE SET updated_at = excluded.updated_at
    RETURNING {_RUN_COLUMNS}, xmax = 0 AS created
),
wanted_datasets AS (SELECT * FROM json_to_recordset(CAST(:datasets AS json)) AS w(namespace text, name text)),
ds AS (
    SELECT w.namespace AS q_namespace, w.name AS q_name, d.id, d.namespace, d.name,
           d.deleted_at IS NOT NULL AS deleted, coalesce(s.name = :lineage_source, false) AS owned
    FROM wanted_datasets w
    CROSS JOIN LATERAL (
        -- headwater.catalog.identity's rule: the own name, else an alias; a merged dataset answers as the one it
        -- was merged into (never merged itself: one step).
        SELECT coalesce(f.merged_into_id, f.id) AS id FROM (
            SELECT id, merged_into_id FROM datasets
            WHERE namespace = w.namespace AND name = w.name
            UNION ALL
            SELECT d.id, d.merged_into_id
            FROM lineage_dataset_aliases a JOIN datasets d ON d.id = a.dataset_id
            WHERE a.namespace = w.namespace AND a.name = w.name
            LIMIT 1
        ) f
    ) r
    JOIN datasets d ON d.id = r.id
    LEFT JOIN sources s ON s.id = d.source_id
),
groups AS (
    SELECT j.id AS job_id, d.id AS dataset_id, bool_or(g.read) AS read
    FROM json_to_recordset(CAST(:groups AS json))
         AS g(job_namespace text, job_name text, namespace text, name text, read boolean)
    JOIN jobs j ON j.namespace = g.job_namespace AND j.name = g.job_name
    JOIN ds d ON d.q_namespace = g.namespace AND d.q_name = g.name
    GROUP BY j.id, d.id
),
locked AS (
    SELECT count(pg_advisory_xact_lock(key)) AS n FROM (
        SELECT {PAIR_LOCK_KEY.format(job_id="job_id", dataset_id="dataset_id")} AS key
        FROM groups ORDER BY 1
    ) k
)
SELECT
    CAST((SELECT json_agg(json_build_array(id, fingerprint)) FROM logged) AS text),
    CAST((SELECT json_agg(jobs) FROM jobs) AS text),
    CAST((SELECT json_agg(runs) FROM runs) AS text),
    CAST((SELECT json_agg(json_build_array(q_namespace, q_name, id, owned, namespace, name, deleted)) FROM ds)
         AS text),
    CAST((SELECT json_agg(json_build_array(f.dataset_id, f.path, f.id, f.type))
          FROM (SELECT DISTINCT id FROM ds) d
          CROSS JOIN LATERAL (SELECT dataset_id, path, id, type FROM fields WHERE dataset_id = d.id OFFSET 0) f)
         AS text),
    CAST((SELECT json_agg(json_build_array(job_id, dataset_id, read)) FROM groups WHERE (SELECT n FROM locked) >= 0)
         AS text)
"""
)


@dataclass
class Snapshot:
    """What the statement found: logged event ids by fingerprint, jobs, runs, datasets and their fields, and the
    (job, target dataset) pairs the request states once."""

    logged: dict[str, int] = field(default_factory=dict)
    # The dataset identities asked for: those not in ``datasets`` name no catalog dataset and no alias.
    asked: list[tuple[str, str]] = field(default_factory=list)
    jobs: dict[tuple[str, str], JobRow] = field(default_factory=dict)
    runs: dict[str, RunRow] = field(default_factory=dict)
    # (identity asked, (dataset id, lineage owned, namespace, name, deleted)), as DatasetResolver.accept takes them.
    datasets: dict[tuple[str, str], tuple[int, bool, str, str, bool]] = field(default_factory=dict)
    fields: dict[int, dict[str, int]] = field(default_factory=dict)
    types: dict[int, dict[str, str]] = field(default_factory=dict)
    # Pairs whose advisory lock the statement took (every pair asked), and those of them the request states once.
    locked: list[tuple[int, int]] = field(default_factory=list)
    stated_once: list[tuple[int, int]] = field(default_factory=list)


def _time(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value).astimezone(dt.UTC)


def _rows(value: bytes | str | None) -> list[Any]:
    return [] if value is None else list(orjson.loads(value))


def read_snapshot(
    session: Session,
    *,
    log_rows: Sequence[dict[str, Any]],
    names: Names,
    fresh_runs: dict[str, dict[str, Any]],
    lineage_source: str,
    now: dt.datetime,
) -> Snapshot:
    """Log the events (``log_rows``), create the new runs (those in ``fresh_runs`` with these column values: see
    ``RunRow.fresh``), read the jobs, runs and datasets the batch ``names`` and lock its pairs; see the module doc."""
    jobs, runs, datasets, groups = names.jobs, names.runs, names.datasets, names.groups
    params = {
        # The packed payload as bytea's text form, which json_populate_recordset reads.
        "log": json_rows([{**row, "payload": "\\x" + row["payload"].hex()} for row in log_rows], LOG_COLUMNS),
        "jobs": orjson.dumps([{"namespace": ns, "name": n} for ns, n in jobs]).decode(),
        "runs": orjson.dumps(
            [
                {"run_uuid": uuid, "job_namespace": ns, "job_name": n, **fresh_runs.get(uuid, {})}
                for uuid, (ns, n) in runs.items()
            ]
        ).decode(),
        "datasets": orjson.dumps([{"namespace": ns, "name": n} for ns, n in datasets]).decode(),
        "groups": orjson.dumps(
            [
                {"job_namespace": a, "job_name": b, "namespace": c, "name": d, "read": read}
                for (a, b, c, d), read in groups.items()
            ]
        ).decode(),
        "lineage_source": lineage_source,
        "now": now,
    }
    row = begin_and_fetch_one(session, _SQL, params)
    assert row is not None  # an aggregate: always one row
    logged, job_rows, run_rows, ds_rows, field_rows, group_rows = row
    snapshot = Snapshot(asked=list(datasets))
    snapshot.logged = {fingerprint: event_id for event_id, fingerprint in _rows(logged)}
    for row in _rows(job_rows):
        row["facets"] = row["facets"] or {}
        row["described_at"] = _time(row["described_at"])
        job = JobRow(**row)
        snapshot.jobs[(job.namespace, job.name)] = job
    for row in _rows(run_rows):
        row["facets"] = row["facets"] or {}
        for column in ("state_time", "started_at", "ended_at"):
            row[column] = _time(row[column])
        row["fresh"] = row.pop("created") and row["run_uuid"] in fresh_runs
        run = RunRow(**row)
        snapshot.runs[run.run_uuid] = run
    for q_namespace, q_name, dataset_id, owned, namespace, name, deleted in _rows(ds_rows):
        snapshot.datasets[(q_namespace, q_name)] = (dataset_id, bool(owned), namespace, name, bool(deleted))
        snapshot.fields.setdefault(dataset_id, {})
        snapshot.types.setdefault(dataset_id, {})
    for dataset_id, path, field_id, type_ in _rows(field_rows):
        snapshot.fields[dataset_id][path] = field_id
        snapshot.types[dataset_id][path] = type_
    for job_id, dataset_id, read in _rows(group_rows):
        snapshot.locked.append((job_id, dataset_id))
        if not read:
            snapshot.stated_once.append((job_id, dataset_id))
    return snapshot


def log_events(session: Session, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Append the raw events not already in the log (SQLite); their ids by fingerprint."""
    connection = session.connection()
    logged: dict[str, int] = {}
    for start in range(0, len(rows), CHUNK):
        found = connection.execute(_log_statement(), list(rows[start : start + CHUNK]))
        logged.update((fingerprint, row_id) for row_id, fingerprint in found)
    return logged


@cache
def _log_statement() -> Any:
    table = cast(Table, LineageEvent.__table__)
    insert = sqlite.insert(table)
    return insert.on_conflict_do_nothing(index_elements=["fingerprint"]).returning(table.c.id, table.c.fingerprint)
