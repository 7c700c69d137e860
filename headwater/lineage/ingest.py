"""OpenLineage ingestion: each event is appended raw to the event log and applied to the normalised model
(jobs, runs, catalog datasets and fields, dataset- and column-level edges) in the caller's transaction.

Applying is idempotent and order-tolerant: the same event twice is recognised by its fingerprint and
changes nothing; a run's state only moves forward (START < RUNNING < COMPLETE | FAIL | ABORT, the newest
terminal event winning); edge provenance keeps the earliest and latest event times whatever the order.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from sqlalchemy import Table
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from headwater.db import utcnow
from headwater.errors import InvalidInput
from headwater.lineage.batch import JobRow, RunRow, load_jobs, load_runs, write_jobs, write_runs
from headwater.lineage.datasets import LINEAGE_SOURCE, DatasetResolver, WantedDataset, wanted_from
from headwater.lineage.models import DatasetEdge, EdgeOrigin, JobDataset, LineageEvent, RunState
from headwater.lineage.schemas import (
    ColumnLineageFacet,
    DatasetEventIn,
    DatasetIn,
    InputField,
    JobEventIn,
    LineageEventIn,
    ParentRunFacet,
    RunEventIn,
    SqlJobFacet,
    Transformation,
    parse_event,
    parse_facet,
)
from headwater.lineage.snapshot import EdgeGroup, Snapshot, read_snapshot
from headwater.lineage.upsert import CHUNK, ColumnEdgeBuffer, WriteSet, json_rows

__all__ = ["IngestResult", "MAX_BATCH", "ColumnLineageSet", "apply_column_lineage", "ingest_events"]

MAX_BATCH = 1000
_RANK = {RunState.START: 1, RunState.RUNNING: 2, RunState.COMPLETE: 3, RunState.FAIL: 3, RunState.ABORT: 3}
_TERMINAL = {RunState.COMPLETE, RunState.FAIL, RunState.ABORT}


@dataclass
class IngestResult:
    """What one ingestion call did."""

    received: int = 0
    applied: int = 0
    duplicates: int = 0
    event_ids: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class ColumnLineageSet:
    """Column lineage for one output dataset, from a facet or from SQL."""

    output: WantedDataset
    facet: ColumnLineageFacet


def fingerprint_of(document: Any, label: str = "event") -> str:
    """sha256 of the canonical JSON of an event (key order does not matter). An event holding a NUL character
    (``\\u0000``) anywhere is refused, naming where: no text or JSON value in PostgreSQL can hold one."""
    canonical = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    if b"\\u0000" in canonical:  # a NUL, or a backslash followed by "u0000" (then nothing is found below)
        where = _nul_in(document, label)
        if where is not None:
            raise InvalidInput(
                f"{where} holds a NUL character (\\u0000), which cannot be stored; remove it",
                detail={"field": where},
            )
    return hashlib.sha256(canonical).hexdigest()


def _nul_in(value: Any, path: str) -> str | None:
    """The path of the first string (or key) under ``value`` that holds a NUL character."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}"
            if "\x00" in str(key):
                return inner
            found = _nul_in(item, inner)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_in(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def ingest_events(session: Session, *, documents: Sequence[Any], commit: bool = False) -> IngestResult:
    """Validate every event first (one bad event refuses the batch), then log and apply them; flushes only, unless
    ``commit``: the caller commits the transaction right after (as the POST routes do), so on PostgreSQL the last
    write may go to the server with the COMMIT, one round trip instead of two. Nothing may run in the transaction
    after it then; the caller's commit finds it committed.

    The whole batch is applied with a handful of statements: the raw events logged in one multi-row
    INSERT, jobs, runs and datasets read with one query each, and jobs, runs and edges written once. On
    PostgreSQL the logging and the reads are one statement (:mod:`headwater.lineage.snapshot`) and the writes
    another (:class:`~headwater.lineage.upsert.WriteSet`): one event costs two statements in the common case.
    """
    if len(documents) > MAX_BATCH:
        raise InvalidInput(
            f"a batch holds at most {MAX_BATCH} events, got {len(documents)}", detail={"field": "events"}
        )
    single = len(documents) == 1
    labels = ["event" if single else f"events[{i}]" for i in range(len(documents))]
    events = [parse_event(doc, label=label) for doc, label in zip(documents, labels, strict=True)]
    result = IngestResult(received=len(events))
    fingerprints = [fingerprint_of(document, label) for document, label in zip(documents, labels, strict=True)]
    log_rows = _log_rows(documents, events, fingerprints)
    snapshot: Snapshot | None = None
    # What every event names (duplicates included: their jobs and runs exist already, so that costs nothing).
    wants = _wants(list(zip(labels, events, strict=True)))
    if session.get_bind().dialect.name == "postgresql":
        snapshot = read_snapshot(
            session,
            log=json_rows(log_rows, _LOG_COLUMNS),
            jobs=wants.jobs,
            runs=wants.runs,
            fresh_runs=_fresh_runs(events),
            datasets=wants.datasets,
            groups=wants.groups,
            lineage_source=LINEAGE_SOURCE,
            now=utcnow(),
        )
        logged = dict(snapshot.logged)
    else:
        logged = _log(session, log_rows)
    todo: list[tuple[str, LineageEventIn, int]] = []
    for label, fingerprint, event in zip(labels, fingerprints, events, strict=True):
        row_id = logged.pop(fingerprint, None)
        if row_id is None:  # already in the log, or earlier in this batch
            result.duplicates += 1
            continue
        todo.append((label, event, row_id))
    if not todo:
        return result
    batch = _Batch.open(session, wants, snapshot)
    warned: list[dict[str, Any]] = []
    for label, event, row_id in todo:
        batch.resolver.warnings = []
        _apply(batch, event, label)
        if batch.resolver.warnings:
            warned.append({"id": row_id, "warnings": list(batch.resolver.warnings)})
            result.warnings.extend(f"{label}: {w}" for w in batch.resolver.warnings)
        result.applied += 1
        result.event_ids.append(row_id)
    writes = batch.close()
    writes.update(LineageEvent, warned)
    session.flush()
    writes.execute(session, commit=commit)
    return result


def _log_rows(
    documents: Sequence[Any], events: Sequence[LineageEventIn], fingerprints: Sequence[str]
) -> list[dict[str, Any]]:
    """The event-log rows of a batch, one per distinct fingerprint."""
    now = utcnow()
    rows: dict[str, dict[str, Any]] = {}
    for document, event, fingerprint in zip(documents, events, fingerprints, strict=True):
        if fingerprint in rows:
            continue
        run_uuid = str(event.run.runId) if isinstance(event, RunEventIn) else None
        job = None if isinstance(event, DatasetEventIn) else event.job
        rows[fingerprint] = {
            "fingerprint": fingerprint,
            "kind": {RunEventIn: "run", JobEventIn: "job", DatasetEventIn: "dataset"}[type(event)],
            "event_type": event.eventType if isinstance(event, RunEventIn) else None,
            "event_time": event.eventTime,
            "producer": event.producer,
            "run_uuid": run_uuid,
            "job_namespace": job.namespace if job else None,
            "job_name": job.name if job else None,
            "payload": document,
            "warnings": [],
            "received_at": now,
        }
    return list(rows.values())


def _log(session: Session, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Append the raw events not already in the log; their ids by fingerprint (PostgreSQL: read_snapshot)."""
    connection = session.connection()
    logged: dict[str, int] = {}
    for start in range(0, len(rows), CHUNK):
        found = connection.execute(_log_statement(), list(rows[start : start + CHUNK]))
        logged.update((fingerprint, row_id) for row_id, fingerprint in found)
    return logged


_LOG_COLUMNS = (
    "fingerprint",
    "kind",
    "event_type",
    "event_time",
    "producer",
    "run_uuid",
    "job_namespace",
    "job_name",
    "payload",
    "warnings",
    "received_at",
)


@functools.cache
def _log_statement() -> Any:
    table = cast(Table, LineageEvent.__table__)
    insert = sqlite.insert(table)
    return insert.on_conflict_do_nothing(index_elements=["fingerprint"]).returning(table.c.id, table.c.fingerprint)


# ------------------------------------------------------------------------------------ applying


@dataclass
class _Batch:
    """What one ingestion call reads once and writes once: jobs, runs, datasets and edges."""

    session: Session
    resolver: DatasetResolver
    jobs: dict[tuple[str, str], JobRow]
    runs: dict[str, RunRow]
    column_edges: ColumnEdgeBuffer = field(default_factory=ColumnEdgeBuffer)
    job_datasets: list[dict[str, Any]] = field(default_factory=list)
    dataset_edges: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def open(cls, session: Session, wants: _Wants, snapshot: Snapshot | None = None) -> _Batch:
        """Read (and create) every job and run the events name, and the datasets they name; what
        ``snapshot`` already read (PostgreSQL) is taken from it."""
        jobs = dict(snapshot.jobs) if snapshot else {}
        missing_jobs = [key for key in wants.jobs if key not in jobs]
        if missing_jobs:
            jobs.update(load_jobs(session, missing_jobs))
        runs = dict(snapshot.runs) if snapshot else {}
        missing_runs = {uuid: jobs[key].id for uuid, key in wants.runs.items() if uuid not in runs}
        if missing_runs:  # runs of new jobs, or runs another transaction was creating at the same moment
            runs.update(load_runs(session, missing_runs))
        resolver = DatasetResolver(session)
        if snapshot is not None:
            resolver.accept(snapshot.asked, snapshot.datasets, snapshot.fields, snapshot.types)
        resolver.prefetch(wants.datasets)
        batch = cls(session, resolver, jobs, runs)
        if snapshot is not None:
            batch.column_edges.locked(snapshot.stated_once, held=snapshot.locked)
        return batch

    def close(self) -> WriteSet:
        """What the batch changed (jobs, runs, edges), to be written in one go."""
        writes = WriteSet()
        write_jobs(writes, self.jobs.values())
        write_runs(writes, self.runs.values())
        writes.upsert(JobDataset, self.job_datasets, ["job_id", "dataset_id", "direction"], newest_wins=("origin",))
        writes.upsert(DatasetEdge, self.dataset_edges, ["source_id", "target_id", "job_id"], newest_wins=("origin",))
        self.column_edges.flush(self.session, writes)
        return writes


@dataclass
class _Wants:
    """What a batch's events name: jobs, runs (with the job to file a new one under), datasets, and the
    (job, output dataset) pairs they state column lineage for."""

    jobs: list[tuple[str, str]] = field(default_factory=list)
    runs: dict[str, tuple[str, str]] = field(default_factory=dict)
    datasets: list[tuple[str, str]] = field(default_factory=list)
    # (job, output dataset) pairs the events state column lineage for; true if stated more than once.
    groups: dict[EdgeGroup, bool] = field(default_factory=dict)


def _wants(events: Sequence[tuple[str, LineageEventIn]]) -> _Wants:
    wants = _Wants()
    for label, event in events:
        wants.datasets.extend(_identities(event))
        if isinstance(event, DatasetEventIn):
            continue
        job_key = (event.job.namespace, event.job.name)
        wants.jobs.append(job_key)
        for output in event.outputs:
            if isinstance(output.facets.get("columnLineage"), dict):
                group = (*job_key, output.namespace, output.name)
                wants.groups[group] = group in wants.groups
        if not isinstance(event, RunEventIn):
            continue
        run_id = str(event.run.runId)
        wants.runs.setdefault(run_id, job_key)
        if event.run.facets.get("parent"):
            facet = parse_facet(ParentRunFacet, event.run.facets["parent"], where=f"{label}.run.facets.parent")
            parent_key = (facet.job.namespace, facet.job.name)
            wants.jobs.append(parent_key)
            if str(facet.run.runId) != run_id:
                wants.runs.setdefault(str(facet.run.runId), parent_key)
    wants.jobs = list(dict.fromkeys(wants.jobs))
    wants.datasets = list(dict.fromkeys(wants.datasets))
    return wants


def _identities(event: LineageEventIn) -> list[tuple[str, str]]:
    """Every dataset identity an event names (read from the raw facets: this is only a prefetch)."""
    datasets = [event.dataset] if isinstance(event, DatasetEventIn) else [*event.inputs, *event.outputs]
    found: list[tuple[str, str]] = []
    for dataset in datasets:
        found.append((dataset.namespace, dataset.name))
        symlinks = dataset.facets.get("symlinks")
        if isinstance(symlinks, dict) and isinstance(symlinks.get("identifiers"), list):
            found.extend(
                (i["namespace"], i["name"])
                for i in symlinks["identifiers"]
                if isinstance(i, dict) and isinstance(i.get("namespace"), str) and isinstance(i.get("name"), str)
            )
        lineage = dataset.facets.get("columnLineage")
        if isinstance(lineage, dict):
            found.extend(_lineage_identities(lineage))
    return list(dict.fromkeys(found))


def _lineage_identities(lineage: dict[str, Any]) -> list[tuple[str, str]]:
    """The datasets a raw columnLineage facet reads from (it names the same few for every column)."""
    named: dict[Any, None] = {}
    sources = lineage.get("dataset")
    if isinstance(sources, list):
        for source in sources:
            if isinstance(source, dict):
                named[source.get("namespace"), source.get("name")] = None
    fields = lineage.get("fields")
    if isinstance(fields, dict):
        for out in fields.values():
            inputs = out.get("inputFields") if isinstance(out, dict) else None
            if isinstance(inputs, list):
                for source in inputs:
                    if isinstance(source, dict):
                        named[source.get("namespace"), source.get("name")] = None
    return [(ns, n) for ns, n in named if isinstance(ns, str) and isinstance(n, str)]


def _apply(batch: _Batch, event: LineageEventIn, label: str) -> None:
    session, resolver = batch.session, batch.resolver
    if isinstance(event, DatasetEventIn):
        wanted = wanted_from(event.dataset, where=f"{label}.dataset")
        resolver.resolve(wanted)
        if event.dataset.facets.get("columnLineage"):
            resolver.warnings.append(
                "a DatasetEvent's columnLineage names no job, so it was not recorded; send it in a RunEvent or JobEvent"
            )
        return
    job = _job(event, label, batch.jobs[(event.job.namespace, event.job.name)])
    run: RunRow | None = None
    origin = EdgeOrigin.JOB
    if isinstance(event, RunEventIn):
        run = _run(batch, event, job, label)
        origin = EdgeOrigin.OPENLINEAGE
    inputs = [wanted_from(d, where=f"{label}.inputs[{i}]") for i, d in enumerate(event.inputs)]
    outputs = [wanted_from(d, where=f"{label}.outputs[{i}]") for i, d in enumerate(event.outputs)]
    lineage_sets = _column_lineage_sets(event.outputs, outputs, label)
    is_sql = False
    if not lineage_sets and job.sql and (outputs or isinstance(event, JobEventIn)):
        lineage_sets = _sql_lineage_sets(session, event, resolver, inputs, outputs)
        is_sql = bool(lineage_sets)
    extra: dict[tuple[str, str], WantedDataset] = {}
    by_identity = {(w.namespace, w.name): w for w in [*inputs, *outputs]}
    for item in lineage_sets:
        item.output.add_columns(item.facet.fields)
        named: dict[tuple[str, str], list[str]] = {}
        for source in _all_input_fields(item.facet):
            named.setdefault((source.namespace, source.name), []).append(source.field)
        for identity, paths in named.items():
            found = by_identity.get(identity)
            (found if found is not None else extra.setdefault(identity, WantedDataset(*identity))).add_columns(paths)
    resolved_in = [resolver.resolve(w) for w in inputs]
    resolved_out = [resolver.resolve(w) for w in outputs]
    for wanted in extra.values():
        resolver.resolve(wanted)
    when = event.eventTime
    provenance = {
        "origin": origin.value,
        "producer": event.producer[:1024],
        "first_seen": when,
        "last_seen": when,
        "last_run_id": run.id if run else None,
    }
    batch.job_datasets.extend(
        [{"job_id": job.id, "dataset_id": d.id, "direction": "in", **provenance} for d in resolved_in]
        + [{"job_id": job.id, "dataset_id": d.id, "direction": "out", **provenance} for d in resolved_out]
    )
    batch.dataset_edges.extend(
        {"source_id": i.id, "target_id": o.id, "job_id": job.id, **provenance}
        for i in resolved_in
        for o in resolved_out
    )
    sql_provenance = {**provenance, "origin": EdgeOrigin.SQL.value} if is_sql else provenance
    complete = isinstance(event, JobEventIn) or event.eventType == RunState.COMPLETE
    for item in lineage_sets:
        apply_column_lineage(
            session,
            resolver=resolver,
            job_id=job.id,
            output=item.output,
            facet=item.facet,
            provenance=sql_provenance,
            retire=complete,
            buffer=batch.column_edges,
        )


def _job(event: RunEventIn | JobEventIn, label: str, job: JobRow) -> JobRow:
    facets = event.job.facets
    if job.described_at is not None and event.eventTime < job.described_at:
        return job  # an older description never replaces a newer one
    merged = {**job.facets, **facets}
    if merged == job.facets and job.described_at is not None:
        return job  # nothing new: no write (the common case of a job's every run)
    job.dirty = True
    job.described_at = event.eventTime
    job.facets = merged
    if facets.get("sql"):
        job.sql = parse_facet(SqlJobFacet, facets["sql"], where=f"{label}.job.facets.sql").query
    job_type = facets.get("jobType")
    if isinstance(job_type, dict) and isinstance(job_type.get("jobType"), str):
        job.job_type = job_type["jobType"][:64]
    documentation = facets.get("documentation")
    if isinstance(documentation, dict) and isinstance(documentation.get("description"), str):
        job.description = documentation["description"]
    return job


def _fresh_runs(events: Sequence[LineageEventIn]) -> dict[str, dict[str, Any]]:
    """The columns of each run a batch names once, in one event without a parent facet, as that event leaves a new
    run: the read statement creates a run that is new this way, and the write statement has nothing to add."""
    mentions: Counter[str] = Counter()
    single: dict[str, RunEventIn] = {}
    for event in events:
        if not isinstance(event, RunEventIn):
            continue
        run_id = str(event.run.runId)
        mentions[run_id] += 1
        parent = event.run.facets.get("parent")
        if parent:
            mentions[run_id] += 1  # its parent link is made while applying
            if isinstance(parent, dict) and isinstance(parent.get("run"), dict):
                mentions[str(parent["run"].get("runId"))] += 1
        single[run_id] = event
    fresh: dict[str, dict[str, Any]] = {}
    for run_id, event in single.items():
        if mentions[run_id] == 1:
            run = RunRow(id=0, run_uuid=run_id, job_id=0)
            _apply_run_event(run, event)
            fresh[run_id] = {c: getattr(run, c) for c in _FRESH_COLUMNS}
    return fresh


_FRESH_COLUMNS = ("state", "state_time", "started_at", "ended_at", "facets", "event_count")


def _apply_run_event(run: RunRow, event: RunEventIn) -> None:
    """What an event does to its run's own columns: one more event, its facets merged, the state moved forward."""
    run.event_count += 1
    if event.run.facets:
        run.facets = {**run.facets, **event.run.facets}
    _advance_state(run, event)


def _run(batch: _Batch, event: RunEventIn, job: JobRow, label: str) -> RunRow:
    run = batch.runs[str(event.run.runId)]
    if run.fresh:  # created by the read statement with this event applied (see _fresh_runs)
        run.fresh = False
        return run
    run.dirty = True
    # A run first known as someone's parent may have been filed under the parent facet's job name.
    run.job_id = job.id
    _apply_run_event(run, event)
    facets = event.run.facets
    if facets.get("parent"):
        parent = parse_facet(ParentRunFacet, facets["parent"], where=f"{label}.run.facets.parent")
        parent_job = batch.jobs[(parent.job.namespace, parent.job.name)]
        if str(parent.run.runId) != run.run_uuid:
            run.parent_run_id = batch.runs[str(parent.run.runId)].id
            if parent_job.id != job.id and job.parent_job_id != parent_job.id:
                job.parent_job_id = parent_job.id
                job.dirty = True
    return run


def _advance_state(run: RunRow, event: RunEventIn) -> None:
    """Move the run's state forward only: late START/RUNNING events never undo an end, the newest end wins."""
    if event.eventType is None or event.eventType == "OTHER":
        return
    new = RunState(event.eventType)
    when = event.eventTime
    current = RunState(run.state) if run.state else None
    rank, current_rank = _RANK[new], _RANK[current] if current else 0
    if new in (RunState.START, RunState.RUNNING) and (run.started_at is None or when < run.started_at):
        run.started_at = when
    if rank > current_rank or (rank == current_rank and (run.state_time is None or when > run.state_time)):
        run.state = new.value
        run.state_time = when
        if new in _TERMINAL:
            run.ended_at = when


# --------------------------------------------------------------------------------- column lineage


def _column_lineage_sets(
    datasets: Sequence[DatasetIn], wanted: Sequence[WantedDataset], label: str
) -> list[ColumnLineageSet]:
    sets: list[ColumnLineageSet] = []
    for index, (dataset, item) in enumerate(zip(datasets, wanted, strict=True)):
        raw = dataset.facets.get("columnLineage")
        if raw:
            facet = parse_facet(ColumnLineageFacet, raw, where=f"{label}.outputs[{index}].facets.columnLineage")
            sets.append(ColumnLineageSet(item, facet))
    return sets


def _all_input_fields(facet: ColumnLineageFacet) -> list[InputField]:
    return [*(f for out in facet.fields.values() for f in out.inputFields), *facet.dataset]


def _transformations(source: InputField, legacy_type: str | None, description: str | None) -> list[Transformation]:
    if source.transformations:
        return source.transformations
    # Column lineage 1.0 put one transformationType on the output field: IDENTITY, or anything else.
    subtype = "IDENTITY" if (legacy_type or "").upper() == "IDENTITY" else "TRANSFORMATION"
    return [Transformation(type="DIRECT", subtype=subtype, description=description)]


def apply_column_lineage(
    session: Session,
    *,
    resolver: DatasetResolver,
    job_id: int,
    output: WantedDataset,
    facet: ColumnLineageFacet,
    provenance: dict[str, Any],
    retire: bool,
    buffer: ColumnEdgeBuffer | None = None,
) -> int:
    """Upsert the column edges one facet states for one output dataset; returns how many it names.

    With ``retire``, edges of the same job into the same dataset that this (newer) statement no longer
    names are marked retired at its event time. With ``buffer`` the writes wait for the buffer's flush
    (one per ingestion batch); without, they are written now.
    """
    target = resolver.resolve(output)
    rows: list[dict[str, Any]] = []
    missing: set[str] = set()
    # What every edge of the statement shares, copied into each row.
    common = {"target_dataset_id": target.id, "job_id": job_id, **provenance}
    lookup, target_fields = resolver.lookup, target.fields

    def add(source: InputField, target_path: str, transformation: Transformation, dataset_level: bool) -> None:
        source_ds = lookup(source.namespace, source.name)
        source_field = source_ds.fields.get(source.field) if source_ds else None
        target_field = target_fields.get(target_path)
        if source_ds is None or source_field is None or target_field is None:
            missing.add(f"{source.namespace}/{source.name}.{source.field} -> {target_path}")
            return
        row = dict(common)
        row["source_field_id"] = source_field
        row["target_field_id"] = target_field
        row["source_dataset_id"] = source_ds.id
        row["transformation_type"] = transformation.type
        row["subtype"] = (transformation.subtype or "").upper()[:32]
        row["description"] = transformation.description
        row["masking"] = bool(transformation.masking)
        row["dataset_level"] = dataset_level
        rows.append(row)

    for target_path, out in facet.fields.items():
        for source in out.inputFields:
            for transformation in _transformations(source, out.transformationType, out.transformationDescription):
                add(source, target_path, transformation, False)
    if facet.dataset:
        # Dataset-wide inputs (filters, joins, grouping) affect every column of the output.
        schema_paths = [f.path for f in output.schema or []]
        all_targets: list[str] = list(dict.fromkeys([*facet.fields, *schema_paths]))
        for source in facet.dataset:
            transformations = source.transformations or [Transformation(type="INDIRECT")]
            for target_path in all_targets or list(target.fields):
                for transformation in transformations:
                    add(source, target_path, transformation, True)
    edges = buffer if buffer is not None else ColumnEdgeBuffer()
    edges.add(
        job_id=job_id,
        target_dataset_id=target.id,
        rows=rows,
        at=provenance["last_seen"],
        retiring=retire,
        run_id=provenance["last_run_id"],
        producer=provenance["producer"],
    )
    if buffer is None:
        edges.flush(session)
    if missing:
        resolver.warnings.append(
            f"{len(missing)} column edge(s) into {target.namespace}/{target.name} name unknown columns, e.g. "
            f"{sorted(missing)[0]}"
        )
    return len(rows)


def _sql_lineage_sets(
    session: Session,
    event: RunEventIn | JobEventIn,
    resolver: DatasetResolver,
    inputs: Sequence[WantedDataset],
    outputs: Sequence[WantedDataset],
) -> list[ColumnLineageSet]:
    """Column lineage derived from the job's ``sql`` facet when the event carries no columnLineage facet."""
    from headwater.lineage.sql import SqlLineageError, dialect_of, lineage_of_sql

    facet = SqlJobFacet.model_validate(event.job.facets["sql"])
    known = [(w.namespace, w.name) for w in [*inputs, *outputs]]
    try:
        statements = lineage_of_sql(session, sql=facet.query, dialect=dialect_of(facet.dialect), known_datasets=known)
    except SqlLineageError as exc:
        resolver.warnings.append(
            f"the job's sql facet is unparsable and could not be used for column lineage: {exc.message}"
        )
        return []
    by_identity = {(w.namespace, w.name): w for w in outputs}
    sets: list[ColumnLineageSet] = []
    for statement in statements:
        resolver.warnings.extend(statement.warnings)
        if statement.target is None or not statement.columns:
            continue
        output = by_identity.get(statement.target) or WantedDataset(*statement.target)
        sets.append(ColumnLineageSet(output, statement.as_facet()))
    return sets


def parse_time(value: str, *, field_name: str) -> dt.datetime:
    """An ISO 8601 instant from a query parameter; naive times are read as UTC."""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field_name} {value!r} is not an ISO 8601 time (e.g. 2026-01-01T00:00:00Z)", detail={"field": field_name}
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
