"""Lineage retention: a pass removes raw events and runs older than the window (each job's latest runs kept) while
the graph, its provenance and recent data stay; the event log, stored compressed, answers events exactly as sent."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from ol_events import column_lineage, dataset, run_event, schema
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from headwater.db import make_sessionmaker, session_scope, utcnow
from headwater.lineage.models import ColumnEdge, LineageEvent, LineageJob, LineageRun
from headwater.retention import RetentionPolicy, run_retention

pytestmark = pytest.mark.anyio

HIVE = "hive://metastore:9083"
MONTH = dt.timedelta(days=30)


def lineage_event(event_type: str, *, job: str, run_id: str) -> dict[str, Any]:
    """A run of ``job`` reading raw.orders into curated.<job>, with column lineage."""
    return run_event(
        event_type,
        job=job,
        run_id=run_id,
        inputs=[dataset(HIVE, "raw.orders", schema=schema("order_id", "amount"))],
        outputs=[
            dataset(
                HIVE,
                f"curated.{job}",
                schema=schema("order_id", ("total", "double")),
                columnLineage=column_lineage(
                    {"order_id": [(HIVE, "raw.orders", "order_id")], "total": [(HIVE, "raw.orders", "amount")]}
                ),
            )
        ],
    )


async def post(client: httpx.AsyncClient, event: dict[str, Any]) -> None:
    response = await client.post("/api/v1/lineage", json=event)
    assert response.status_code in (200, 201), response.text


def count(session: Session, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


async def test_old_events_and_runs_go_while_the_graph_and_recent_data_stay(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    factory = make_sessionmaker(engine)
    # A month-old run of the job (two events), then today's run of the same job and a run of another job.
    await post(client, lineage_event("START", job="daily_orders", run_id="00000000-0000-4000-8000-000000000001"))
    await post(client, lineage_event("COMPLETE", job="daily_orders", run_id="00000000-0000-4000-8000-000000000001"))
    cutoff = utcnow()
    today = lineage_event("COMPLETE", job="daily_orders", run_id="00000000-0000-4000-8000-000000000002")
    await post(client, today)
    await post(client, lineage_event("COMPLETE", job="weekly_revenue", run_id="00000000-0000-4000-8000-000000000003"))
    with session_scope(factory) as session:
        edges_before = count(session, ColumnEdge)
    assert edges_before > 0

    policy = RetentionPolicy(events=MONTH, runs=MONTH, runs_kept_per_job=1)
    report = run_retention(factory, policy, now=cutoff + MONTH)

    assert (report.events, report.runs) == (2, 1)
    with session_scope(factory) as session:
        runs = set(session.scalars(select(LineageRun.run_uuid)))
        assert runs == {"00000000-0000-4000-8000-000000000002", "00000000-0000-4000-8000-000000000003"}
        assert count(session, LineageEvent) == 2
        assert count(session, ColumnEdge) == edges_before  # the graph stays
        assert count(session, LineageJob) == 2
    # The edges still answer with their provenance; the removed run reads as no run, not as an error.
    graph = (
        await client.get(
            "/api/v1/lineage/graph",
            params={"namespace": HIVE, "name": "raw.orders", "field": "order_id", "direction": "downstream"},
        )
    ).json()
    assert graph["edges"] and all(e["origin"] == "openlineage" for e in graph["edges"])
    # The log still answers what was sent, byte for byte as JSON (stored compressed).
    events = (await client.get("/api/v1/lineage/events")).json()["items"]
    assert events[0]["event"] == today

    # A second pass a month later finds the run kept as its job's latest, and keeps the newest event.
    again = run_retention(factory, policy, now=utcnow() + 2 * MONTH)
    assert again.runs == 0 and again.events == 1
    with session_scope(factory) as session:
        assert count(session, LineageRun) == 2


async def test_the_event_log_answers_unusual_json_exactly(client: httpx.AsyncClient) -> None:
    event = lineage_event("COMPLETE", job="unicode_job", run_id="00000000-0000-4000-8000-00000000000a")
    event["run"]["facets"]["custom"] = {
        "_producer": "https://example.com/p",
        "_schemaURL": "https://example.com/s.json",
        "text": 'straße ✓ \u2028 "quoted" \\ back',
        "numbers": [0, -1, 1.5, 1e300, 9007199254740991],
        "nested": {"empty": {}, "list": [], "null": None, "bool": False},
    }
    await post(client, event)
    items = (await client.get("/api/v1/lineage/events")).json()["items"]
    assert items[-1]["event"] == event
