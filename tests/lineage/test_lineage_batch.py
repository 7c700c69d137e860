"""Batched ingestion ends in exactly the state one-event-at-a-time ingestion does: runs, job-dataset links,
dataset and column edges with their provenance and retirements, for a shuffled stream with duplicates,
out-of-order START/COMPLETE events and changing column sets; on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import uuid
from typing import Any

from ol_events import at, column_lineage, dataset, run_event, schema
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from headwater.catalog.models import Field
from headwater.lineage.ingest import ingest_events
from headwater.lineage.models import (
    ColumnConfirmation,
    ColumnEdge,
    DatasetEdge,
    JobDataset,
    LineageJob,
    LineageRun,
    confirmed_provenance,
)

HIVE = "hive://metastore:9083"
COLUMNS = [f"c{i}" for i in range(6)]


def _stream(job_namespace: str, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for number in range(12):
        run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{job_namespace}/{number}"))
        parent = ("app", str(uuid.uuid5(uuid.NAMESPACE_URL, f"{job_namespace}/app"))) if number % 3 == 1 else None
        job = f"job_{number % 3}"
        source, target = f"db.src_{number % 3}", f"db.dst_{number % 2}"
        mapping = {out: [(HIVE, source, rng.choice(COLUMNS))] for out in rng.sample(COLUMNS, 3)}
        for event_type, minutes in (("START", number * 10), ("COMPLETE", number * 10 + rng.choice([1, 25]))):
            event = run_event(
                event_type,
                job=job,
                job_namespace=job_namespace,
                run_id=run_id,
                parent=parent,
                minutes=minutes,
                inputs=[dataset(HIVE, source, schema=schema(*COLUMNS))],
                outputs=[
                    dataset(HIVE, target, schema=schema(*COLUMNS), columnLineage=column_lineage(mapping))
                    if event_type == "COMPLETE" or number % 2
                    else dataset(HIVE, target)
                ],
            )
            events.append(event)
    events += rng.sample(events, 5)  # duplicates
    rng.shuffle(events)
    return events


def _state(session: Session, job_namespace: str) -> dict[str, Any]:
    jobs = LineageJob.namespace == job_namespace
    run_rows = session.execute(
        select(LineageRun.state, LineageRun.started_at, LineageRun.ended_at, LineageRun.event_count)
        .add_columns(LineageRun.parent_run_id.is_not(None), LineageJob.name, LineageJob.parent_job_id.is_not(None))
        .join(LineageJob, LineageJob.id == LineageRun.job_id)
        .where(jobs)
    )
    source, target = aliased(Field), aliased(Field)
    # Column edges as they read: a live edge's last seen and run may be its pair's confirmation's.
    last_seen, last_run_id, producer, confirmation = confirmed_provenance()
    provenance = (ColumnEdge.first_seen, last_seen, ColumnEdge.retired_at, ColumnEdge.origin, producer)
    columns = session.execute(
        select(LineageJob.name, source.path, target.path, ColumnEdge.source_dataset_id, ColumnEdge.target_dataset_id)
        .add_columns(*provenance, ColumnEdge.subtype, LineageRun.started_at)
        .join(LineageJob, LineageJob.id == ColumnEdge.job_id)
        .join(source, source.id == ColumnEdge.source_field_id)
        .join(target, target.id == ColumnEdge.target_field_id)
        .outerjoin(ColumnConfirmation, confirmation)
        .join(LineageRun, LineageRun.id == last_run_id)
        .where(jobs)
    )
    datasets = session.execute(
        select(LineageJob.name, DatasetEdge.source_id, DatasetEdge.target_id, DatasetEdge.first_seen)
        .add_columns(DatasetEdge.last_seen, LineageRun.started_at)
        .join(LineageJob, LineageJob.id == DatasetEdge.job_id)
        .join(LineageRun, LineageRun.id == DatasetEdge.last_run_id)
        .where(jobs)
    )
    links = session.execute(
        select(
            LineageJob.name, JobDataset.dataset_id, JobDataset.direction, JobDataset.first_seen, JobDataset.last_seen
        )
        .join(LineageJob, LineageJob.id == JobDataset.job_id)
        .where(jobs)
    )
    return {
        "runs": sorted(map(tuple, run_rows), key=repr),
        "columns": sorted(map(tuple, columns), key=repr),
        "datasets": sorted(map(tuple, datasets), key=repr),
        "links": sorted(map(tuple, links), key=repr),
    }


def test_batches_end_in_the_state_single_events_do(session: Session) -> None:
    for event in _stream("single", seed=3):
        ingest_events(session, documents=[event])
    batched = _stream("batched", seed=3)
    results = [ingest_events(session, documents=batched[start : start + 7]) for start in range(0, len(batched), 7)]
    session.commit()
    assert sum(r.duplicates for r in results) == 5
    single, batch = _state(session, "single"), _state(session, "batched")
    assert batch["columns"], "the stream produced column edges"
    assert any(row[7] is not None for row in batch["columns"]), "some edges were retired"
    assert single == batch


def test_one_batch_holding_the_same_event_twice_applies_it_once(session: Session) -> None:
    event = run_event(
        "COMPLETE",
        job="dup",
        run_id=str(uuid.uuid4()),
        minutes=1,
        inputs=[dataset(HIVE, "db.a", schema=schema("x"))],
        outputs=[dataset(HIVE, "db.b", schema=schema("y"), columnLineage=column_lineage({"y": [(HIVE, "db.a", "x")]}))],
    )
    result = ingest_events(session, documents=[event, dict(event), event])
    assert (result.applied, result.duplicates) == (1, 2)
    run = session.scalars(select(LineageRun).where(LineageRun.run_uuid == event["run"]["runId"])).one()
    assert (run.state, run.event_count, run.ended_at.isoformat()) == ("COMPLETE", 1, at(1).replace("Z", "+00:00"))
