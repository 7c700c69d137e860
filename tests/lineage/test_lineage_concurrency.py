"""Concurrent ingestion: several clients post overlapping events at once (the same new datasets, the same
columns, the same jobs and edges), through the real route; on SQLite and PostgreSQL.

Nothing may be lost or doubled and no request may fail: every event is logged once, every dataset and
column exists once, every column edge stated by any event exists once with the earliest and latest event
times of the events that stated it, whatever the interleaving.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
from ol_events import BASE, column_lineage, dataset, run_event, schema
from sqlalchemy import Engine, func, select

from headwater.catalog.models import Dataset, Field
from headwater.lineage.models import (
    ColumnConfirmation,
    ColumnEdge,
    DatasetEdge,
    LineageEvent,
    LineageJob,
    LineageRun,
    confirmed_provenance,
)

pytestmark = pytest.mark.anyio

NS = "hive://metastore:9083"
CLIENTS = 6
EVENTS_PER_CLIENT = 8
COLUMNS = [f"c{i}" for i in range(12)]
SOURCES = ["db.src_a", "db.src_b"]
TARGETS = ["db.dst_a", "db.dst_b", "db.dst_c"]


def _event(client: int, index: int) -> tuple[dict[str, Any], set[tuple[str, str, str, str, str]]]:
    """One RUNNING event (RUNNING states lineage without retiring anything) and the column edges it states as
    (job, source table, source column, target table, target column). Jobs, tables and columns overlap
    between clients on purpose: every client creates the same datasets and upserts the same edges."""
    job = f"job_{(client + index) % 3}"
    source = SOURCES[(client + index) % len(SOURCES)]
    target = TARGETS[(client * 7 + index) % len(TARGETS)]
    shift = index % 2
    mapping = {c: [(NS, source, COLUMNS[(k + shift) % len(COLUMNS)])] for k, c in enumerate(COLUMNS)}
    event = run_event(
        "RUNNING",
        job=job,
        run_id=str(uuid.uuid4()),
        minutes=client * 100 + index,
        inputs=[dataset(NS, source, schema=schema(*COLUMNS))],
        outputs=[dataset(NS, target, schema=schema(*COLUMNS), columnLineage=column_lineage(mapping))],
    )
    stated = {(job, source, inputs[0][2], target, out) for out, inputs in mapping.items()}
    return event, stated


async def _post_at_once(client: httpx.AsyncClient, requests: list[list[tuple[str, Any]]]) -> list[tuple[int, str]]:
    """Each list of (path, JSON body) POSTed in order by its own client, all clients starting together; every
    answer as (status, text). No client may raise."""
    start = asyncio.Event()

    async def post_all(mine: list[tuple[str, Any]]) -> list[tuple[int, str]]:
        # No assertion in here: every request finishes before the test looks (and before the fixture empties
        # the tables), whatever happens.
        await start.wait()
        answers = []
        for path, body in mine:
            answer = await client.post(path, json=body)
            answers.append((answer.status_code, answer.text))
        return answers

    tasks = [asyncio.create_task(post_all(mine)) for mine in requests]
    await asyncio.sleep(0)
    start.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures
    return [a for r in results if not isinstance(r, BaseException) for a in r]


async def test_overlapping_events_posted_at_once_lose_and_double_nothing(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    plans = [[_event(c, i) for i in range(EVENTS_PER_CLIENT)] for c in range(CLIENTS)]
    answers = await _post_at_once(client, [[("/api/v1/lineage", event) for event, _ in plan] for plan in plans])
    assert [a for a in answers if a[0] != 201] == []

    expected: dict[tuple[str, str, str, str, str], list[dt.datetime]] = {}
    for c, plan in enumerate(plans):
        for i, (_, stated) in enumerate(plan):
            for edge in stated:
                expected.setdefault(edge, []).append(BASE + dt.timedelta(minutes=c * 100 + i))

    # Edges as they read: a live edge's last seen may be its (job, table) pair's confirmation's.
    last_seen, _, _, confirmation = confirmed_provenance()
    last_seen = last_seen.label("last_seen")
    with engine.connect() as conn:
        total = CLIENTS * EVENTS_PER_CLIENT
        assert conn.execute(select(func.count()).select_from(LineageEvent)).scalar_one() == total
        assert conn.execute(select(func.count()).select_from(LineageRun)).scalar_one() == total
        assert conn.execute(select(func.count()).select_from(LineageJob)).scalar_one() == 3
        datasets = conn.execute(select(Dataset.name, func.count()).group_by(Dataset.name)).all()
        assert sorted(datasets) == sorted((name, 1) for name in [*SOURCES, *TARGETS])
        fields = conn.execute(
            select(Dataset.name, func.count()).join(Field, Field.dataset_id == Dataset.id).group_by(Dataset.name)
        ).all()
        assert sorted(fields) == sorted((name, len(COLUMNS)) for name in [*SOURCES, *TARGETS])

        source_field = Field.__table__.alias("sf")
        target_field = Field.__table__.alias("tf")
        source_ds = Dataset.__table__.alias("sd")
        target_ds = Dataset.__table__.alias("td")
        rows = conn.execute(
            select(
                LineageJob.name,
                source_ds.c.name,
                source_field.c.path,
                target_ds.c.name,
                target_field.c.path,
                ColumnEdge.first_seen,
                last_seen,
                ColumnEdge.retired_at,
            )
            .outerjoin(ColumnConfirmation, confirmation)
            .join(LineageJob, LineageJob.id == ColumnEdge.job_id)
            .join(source_field, source_field.c.id == ColumnEdge.source_field_id)
            .join(target_field, target_field.c.id == ColumnEdge.target_field_id)
            .join(source_ds, source_ds.c.id == ColumnEdge.source_dataset_id)
            .join(target_ds, target_ds.c.id == ColumnEdge.target_dataset_id)
        ).all()
        found = {tuple(r[:5]): r for r in rows}
        assert len(found) == len(rows), "an edge is stored twice"
        assert set(found) == set(expected), (set(expected) - set(found), set(found) - set(expected))
        for key, times in expected.items():
            row = found[key]
            assert (row.first_seen, row.last_seen, row.retired_at) == (min(times), max(times), None), key

        pairs = {(job, source, target) for job, source, _, target, _ in expected}
        dataset_edges = conn.execute(select(func.count()).select_from(DatasetEdge)).scalar_one()
        assert dataset_edges == len(pairs)


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batches"])
async def test_complete_events_of_one_job_and_table_posted_at_once_keep_exact_provenance(
    client: httpx.AsyncClient, engine: Engine, batched: bool
) -> None:
    """COMPLETE events (which retire what they no longer name) of one job into one table, from several clients
    at once: on PostgreSQL every request takes the pair's advisory lock; a single event is written blind, a batch
    naming the pair twice reads its edges and replays. None may fail or deadlock; each edge exists once with the
    earliest and latest times of the events naming it; the newest event's edges are live, and an edge is retired
    only at the time of an event that did not name it."""
    source, target, job = "db.src_a", "db.dst_a", "job_complete"
    plans: list[list[tuple[dict[str, Any], float, set[tuple[str, str]]]]] = []
    for c in range(CLIENTS):
        plan = []
        for i in range(EVENTS_PER_CLIENT):
            minutes = float(i * CLIENTS + c)  # every event its own time, clients interleaved
            shift = (c + i) % 3
            mapping = {out: [(NS, source, COLUMNS[(k + shift) % len(COLUMNS)])] for k, out in enumerate(COLUMNS)}
            event = run_event(
                "COMPLETE",
                job=job,
                run_id=str(uuid.uuid4()),
                minutes=minutes,
                inputs=[dataset(NS, source, schema=schema(*COLUMNS))],
                outputs=[dataset(NS, target, schema=schema(*COLUMNS), columnLineage=column_lineage(mapping))],
            )
            plan.append((event, minutes, {(ins[0][2], out) for out, ins in mapping.items()}))
        plans.append(plan)
    if batched:  # two events of the pair per request: read and replayed
        requests = [
            [("/api/v1/lineage/batch", [event for event, _, _ in plan[i : i + 2]]) for i in range(0, len(plan), 2)]
            for plan in plans
        ]
    else:
        requests = [[("/api/v1/lineage", event) for event, _, _ in plan] for plan in plans]
    answers = await _post_at_once(client, requests)
    assert {status for status, _ in answers} == {201}

    named_at: dict[tuple[str, str], list[float]] = {}
    events = [(minutes, edges) for plan in plans for _, minutes, edges in plan]
    for minutes, edges in events:
        for edge in edges:
            named_at.setdefault(edge, []).append(minutes)
    newest_minutes, newest_edges = max(events)
    source_field = Field.__table__.alias("sf")
    target_field = Field.__table__.alias("tf")
    last_seen, _, _, confirmation = confirmed_provenance()
    last_seen = last_seen.label("last_seen")
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                source_field.c.path,
                target_field.c.path,
                ColumnEdge.first_seen,
                last_seen,
                ColumnEdge.retired_at,
            )
            .outerjoin(ColumnConfirmation, confirmation)
            .join(source_field, source_field.c.id == ColumnEdge.source_field_id)
            .join(target_field, target_field.c.id == ColumnEdge.target_field_id)
        ).all()
    found = {(r[0], r[1]): r for r in rows}
    assert len(found) == len(rows), "an edge is stored twice"
    assert set(found) == set(named_at)
    event_times = {BASE + dt.timedelta(minutes=m) for m, _ in events}
    for edge, minutes in named_at.items():
        row = found[edge]
        assert (row.first_seen, row.last_seen) == (
            BASE + dt.timedelta(minutes=min(minutes)),
            BASE + dt.timedelta(minutes=max(minutes)),
        ), edge
        if edge in newest_edges:
            assert row.retired_at is None, edge
        elif row.retired_at is not None:
            # Retired by an event that came after the edge was last named and did not name it.
            assert row.retired_at in event_times and row.retired_at > row.last_seen, edge
            retiring_minutes = (row.retired_at - BASE).total_seconds() / 60
            assert edge not in next(e for m, e in events if m == retiring_minutes), edge
