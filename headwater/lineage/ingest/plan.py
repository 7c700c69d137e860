"""The plan stage of lineage ingestion: what a batch's events change, worked out in memory.

A :class:`Plan` holds every job, run and dataset the batch names (read once, see :meth:`Plan.open`) and applies
the events to them in arrival order: jobs described, runs moved forward, dataset- and column-level edges with
their provenance, column lineage from a facet or from the job's SQL, schema changes of lineage-owned datasets
(through the resolver). :meth:`Plan.close` hands what changed to the write stage as one
:class:`~headwater.lineage.ingest.write.WriteSet`.

Applying is idempotent and order-tolerant: a run's state only moves forward (START < RUNNING < COMPLETE | FAIL |
ABORT, the newest terminal event winning); edge provenance keeps the earliest and latest event times whatever the
order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from headwater.catalog.events import metadata_changed
from headwater.catalog.models import Dataset
from headwater.db import utcnow
from headwater.lineage.ingest.confirm import ColumnEdgeBuffer
from headwater.lineage.ingest.parse import Names
from headwater.lineage.ingest.resolve import (
    JOB_COLUMNS,
    RUN_COLUMNS,
    DatasetResolver,
    JobRow,
    ResolvedDataset,
    RunRow,
    WantedDataset,
    load_jobs,
    load_runs,
    wanted_from,
)
from headwater.lineage.ingest.snapshot import Snapshot
from headwater.lineage.ingest.write import WriteSet
from headwater.lineage.models import DatasetEdge, EdgeOrigin, JobDataset, LineageJob, LineageRun, RunState
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
    parse_facet,
)

__all__ = ["ColumnLineageSet", "Plan", "apply_column_lineage", "fresh_runs"]

_RANK = {RunState.START: 1, RunState.RUNNING: 2, RunState.COMPLETE: 3, RunState.FAIL: 3, RunState.ABORT: 3}
_TERMINAL = {RunState.COMPLETE, RunState.FAIL, RunState.ABORT}


@dataclass
class ColumnLineageSet:
    """Column lineage for one output dataset, from a facet or from SQL."""

    output: WantedDataset
    facet: ColumnLineageFacet


# ------------------------------------------------------------------------------------ applying


@dataclass
class Plan:
    """What one ingestion call reads once and writes once: jobs, runs, datasets and edges."""

    session: Session
    resolver: DatasetResolver
    jobs: dict[tuple[str, str], JobRow]
    runs: dict[str, RunRow]
    column_edges: ColumnEdgeBuffer = field(default_factory=ColumnEdgeBuffer)
    job_datasets: list[dict[str, Any]] = field(default_factory=list)
    dataset_edges: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def open(cls, session: Session, wants: Names, snapshot: Snapshot | None = None) -> Plan:
        """Resolve every job and run the events name (creating the missing ones), and the datasets they name; what
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
        _write_jobs(writes, self.jobs.values())
        _write_runs(writes, self.runs.values())
        writes.upsert(JobDataset, self.job_datasets, ["job_id", "dataset_id", "direction"], newest_wins=("origin",))
        writes.upsert(DatasetEdge, self.dataset_edges, ["source_id", "target_id", "job_id"], newest_wins=("origin",))
        stated = sorted(self.resolver.stated.items())
        writes.update(Dataset, [{"id": i, "schema_stated_at": at} for i, at in stated], newest="schema_stated_at")
        self.column_edges.flush(self.session, writes)
        if self.resolver.named:  # rare: the first event naming a dataset by another name
            metadata_changed(self.session, sorted(self.resolver.named), {"by": "lineage", "changed": ["aliases"]})
        return writes

    def apply(self, event: LineageEventIn, label: str) -> list[str]:
        """Apply one event (``label`` names it in messages); the warnings it raised."""
        self.resolver.warnings = []
        _apply(self, event, label)
        return list(self.resolver.warnings)


def _apply(batch: Plan, event: LineageEventIn, label: str) -> None:
    session, resolver = batch.session, batch.resolver
    if isinstance(event, DatasetEventIn):
        wanted = wanted_from(event.dataset, where=f"{label}.dataset", at=event.eventTime)
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
    at = event.eventTime
    inputs = [wanted_from(d, where=f"{label}.inputs[{i}]", at=at) for i, d in enumerate(event.inputs)]
    outputs = [wanted_from(d, where=f"{label}.outputs[{i}]", at=at) for i, d in enumerate(event.outputs)]
    lineage_sets = _column_lineage_sets(event.outputs, outputs, label)
    for lineage_set in lineage_sets:
        lineage_set.output.note_renames(lineage_set.facet)
    is_sql = False
    if not lineage_sets and job.sql and (outputs or isinstance(event, JobEventIn)):
        lineage_sets = _sql_lineage_sets(session, _sql_facet(event, job, label), resolver, inputs, outputs)
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
        # An older description never replaces a newer one, but fills in the facets it lacks: a late START may
        # be the only event that carried the job's query.
        facets = {key: value for key, value in facets.items() if key not in job.facets}
        if not facets:
            return job
        job.facets = {**job.facets, **facets}
    else:
        merged = {**job.facets, **facets}
        if merged == job.facets and job.described_at is not None:
            return job  # nothing new: no write (the common case of a job's every run)
        job.described_at = event.eventTime
        job.facets = merged
    job.dirty = True
    if facets.get("sql"):
        job.sql = parse_facet(SqlJobFacet, facets["sql"], where=f"{label}.job.facets.sql").query
    job_type = facets.get("jobType")
    if isinstance(job_type, dict) and isinstance(job_type.get("jobType"), str):
        job.job_type = job_type["jobType"][:64]
    documentation = facets.get("documentation")
    if isinstance(documentation, dict) and isinstance(documentation.get("description"), str):
        job.description = documentation["description"]
    return job


def fresh_runs(events: Sequence[LineageEventIn]) -> dict[str, dict[str, Any]]:
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


def _run(batch: Plan, event: RunEventIn, job: JobRow, label: str) -> RunRow:
    run = batch.runs[str(event.run.runId)]
    if run.fresh:  # created by the read statement with this event applied (see fresh_runs)
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
    target_fields = target.fields
    # Source datasets by identity, each looked up at its first mention: a facet names the same few for every column.
    sources: dict[tuple[str, str], ResolvedDataset | None] = {}

    def add(source: InputField, target_path: str, transformation: Transformation, dataset_level: bool) -> None:
        identity = (source.namespace, source.name)
        if identity in sources:
            source_ds = sources[identity]
        else:
            source_ds = sources[identity] = resolver.lookup(*identity)
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


def _sql_facet(event: RunEventIn | JobEventIn, job: JobRow, label: str) -> SqlJobFacet:
    """The ``sql`` facet a run's lineage is read from: the event's own, else the job's stored one (producers send
    it once, e.g. on START only, and a late or later event without it reads the one the job keeps)."""
    if event.job.facets.get("sql"):
        return parse_facet(SqlJobFacet, event.job.facets["sql"], where=f"{label}.job.facets.sql")
    stored = job.facets.get("sql")
    dialect = stored.get("dialect") if isinstance(stored, dict) else None
    return SqlJobFacet(query=job.sql or "", dialect=dialect if isinstance(dialect, str) else None)


def _sql_lineage_sets(
    session: Session,
    facet: SqlJobFacet,
    resolver: DatasetResolver,
    inputs: Sequence[WantedDataset],
    outputs: Sequence[WantedDataset],
) -> list[ColumnLineageSet]:
    """Column lineage derived from a ``sql`` facet when the event carries no columnLineage facet."""
    from headwater.lineage.sql import SqlLineageError, dialect_of, lineage_of_sql

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


_JOB_UPDATES = [c for c in JOB_COLUMNS if c not in ("id", "namespace", "name")]
_RUN_UPDATES = [c for c in RUN_COLUMNS if c not in ("id", "run_uuid")]


def _write_jobs(writes: WriteSet, jobs: Iterable[JobRow]) -> None:
    """Add the jobs that changed to ``writes`` (by namespace and name: see WriteSet.replace)."""
    rows = _changed(jobs, ["namespace", "name", *_JOB_UPDATES])
    writes.replace(LineageJob, rows, ["namespace", "name"], [*_JOB_UPDATES, "updated_at"])


def _write_runs(writes: WriteSet, runs: Iterable[RunRow]) -> None:
    """Add the runs that changed to ``writes`` (by run uuid: see WriteSet.replace)."""
    rows = _changed(runs, ["run_uuid", *_RUN_UPDATES])
    writes.replace(LineageRun, rows, ["run_uuid"], [*_RUN_UPDATES, "updated_at"])
