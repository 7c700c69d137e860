"""Real producers send a job's facets once and then leave them out: Airflow puts the ``sql`` facet on START and
not on COMPLETE, a late START can arrive after its COMPLETE, a streaming job's JobEvents repeat the declaration
without the query. Every such event is applied (the job's stored facets are what lineage from SQL reads), one by
one, in any order and in batches; and an ``eventTime`` without an offset is read as UTC with a warning, as
Marquez takes it. On SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx
import orjson
import pytest
from ol_events import PRODUCER, at, dataset, run_event, schema
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from headwater.lineage.models import LineageJob

pytestmark = pytest.mark.anyio

PG = "postgres://warehouse:5432"
QUERY = "INSERT INTO shop.public.daily SELECT country, SUM(amount) AS total FROM shop.public.orders GROUP BY country"
SQL = {"sql": {"_producer": PRODUCER, "query": QUERY, "dialect": "postgres"}}


def _inputs() -> list[dict[str, Any]]:
    return [dataset(PG, "shop.public.orders", schema=schema("order_id", "country", ("amount", "double")))]


def _outputs() -> list[dict[str, Any]]:
    return [dataset(PG, "shop.public.daily", schema=schema("country", ("total", "double")))]


def _run(event_type: str, run_id: str, minutes: float, *, sql: bool, job: str = "airflow_daily.load") -> dict:
    return run_event(
        event_type,
        job=job,
        job_namespace="airflow",
        run_id=run_id,
        minutes=minutes,
        job_facets=dict(SQL) if sql else {},
        inputs=_inputs(),
        outputs=_outputs(),
    )


def _job_event(minutes: float, *, sql: bool, job: str = "flink_orders") -> dict[str, Any]:
    return {
        "eventTime": at(minutes),
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent",
        "job": {"namespace": "flink", "name": job, "facets": dict(SQL) if sql else {}},
        "inputs": _inputs(),
        "outputs": _outputs(),
    }


async def _post(client: httpx.AsyncClient, body: Any, path: str = "/api/v1/lineage") -> httpx.Response:
    return await client.post(path, content=orjson.dumps(body), headers={"content-type": "application/json"})


async def _total_comes_from_amount(client: httpx.AsyncClient) -> bool:
    impact = await client.get(
        "/api/v1/lineage/impact", params={"namespace": PG, "name": "shop.public.orders", "field": "amount"}
    )
    assert impact.status_code == 200, impact.text
    return ("shop.public.daily", "total") in {(c["name"], c["field"]) for c in impact.json()["columns"]}


async def test_a_complete_without_the_sql_facet_its_start_carried_is_applied(client: httpx.AsyncClient) -> None:
    run_id = str(uuid.uuid4())
    assert (await _post(client, _run("START", run_id, 0, sql=True))).status_code == 201
    complete = await _post(client, _run("COMPLETE", run_id, 5, sql=False))
    assert complete.status_code == 201, complete.text
    assert complete.json()["applied"] == 1
    run = (await client.get(f"/api/v1/lineage/runs/{run_id}")).json()
    assert run["state"] == "COMPLETE"
    # The job's stored query still gives the run its column lineage.
    assert await _total_comes_from_amount(client)


async def test_a_later_run_without_the_sql_facet_reads_the_stored_query(client: httpx.AsyncClient) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    assert (await _post(client, _run("COMPLETE", first, 0, sql=True, job="once"))).status_code == 201
    later = await _post(client, [_run("START", second, 60, sql=False, job="once")])
    assert later.status_code == 201, later.text
    later = await _post(client, _run("COMPLETE", second, 65, sql=False, job="once"))
    assert later.status_code == 201, later.text
    assert (await client.get(f"/api/v1/lineage/runs/{second}")).json()["state"] == "COMPLETE"


async def test_a_late_start_without_sql_after_a_complete_with_it_is_applied(client: httpx.AsyncClient) -> None:
    run_id = str(uuid.uuid4())
    assert (await _post(client, _run("COMPLETE", run_id, 5, sql=True))).status_code == 201
    start = await _post(client, _run("START", run_id, 0, sql=False))
    assert start.status_code == 201, start.text
    run = (await client.get(f"/api/v1/lineage/runs/{run_id}")).json()
    assert run["state"] == "COMPLETE" and run["started_at"].startswith("2026-03-01T12:00")
    assert await _total_comes_from_amount(client)


async def test_a_late_start_is_the_only_event_with_the_query_and_the_job_keeps_it(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    run_id = str(uuid.uuid4())
    assert (await _post(client, _run("COMPLETE", run_id, 5, sql=False, job="late"))).status_code == 201
    assert not await _total_comes_from_amount(client)
    assert (await _post(client, _run("START", run_id, 0, sql=True, job="late"))).status_code == 201
    assert await _total_comes_from_amount(client)
    # The older event filled in what the job did not know, so the job's next run without the facet reads it.
    with Session(engine) as session:
        job = session.scalars(select(LineageJob).where(LineageJob.name == "late")).one()
        assert job.sql == QUERY and job.facets["sql"]["dialect"] == "postgres"


async def test_two_job_events_the_second_without_sql_are_applied(client: httpx.AsyncClient) -> None:
    assert (await _post(client, _job_event(0, sql=True))).status_code == 201
    second = await _post(client, _job_event(1, sql=False))
    assert second.status_code == 201, second.text
    again = await _post(client, _job_event(2, sql=False))
    assert again.status_code == 201, again.text
    assert await _total_comes_from_amount(client)


def _mixed_stream(tag: str) -> list[dict[str, Any]]:
    run_a, run_b = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}/a")), str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}/b"))
    return [
        _run("START", run_a, 0, sql=True, job=f"{tag}.load"),
        _run("COMPLETE", run_a, 5, sql=False, job=f"{tag}.load"),
        _run("START", run_b, 60, sql=False, job=f"{tag}.load"),
        _run("COMPLETE", run_b, 65, sql=True, job=f"{tag}.load"),
        _job_event(0, sql=True, job=f"{tag}.stream"),
        _job_event(1, sql=False, job=f"{tag}.stream"),
    ]


@pytest.mark.parametrize("order", ["forward", "reverse", "rotated"])
async def test_events_missing_an_earlier_facet_are_taken_in_any_order_one_by_one(
    client: httpx.AsyncClient, order: str
) -> None:
    events = _mixed_stream(f"one-{order}")
    events = {"forward": events, "reverse": events[::-1], "rotated": events[3:] + events[:3]}[order]
    for index, event in enumerate(events):
        response = await _post(client, event)
        assert response.status_code == 201, (index, response.text)
    assert await _total_comes_from_amount(client)


@pytest.mark.parametrize("permutation", list(itertools.islice(itertools.permutations(range(6)), 0, 720, 97)))
async def test_events_missing_an_earlier_facet_are_taken_in_any_order_in_one_batch(
    client: httpx.AsyncClient, permutation: tuple[int, ...]
) -> None:
    events = _mixed_stream("batch-" + "".join(map(str, permutation)))
    response = await _post(client, [events[i] for i in permutation], "/api/v1/lineage/batch")
    assert response.status_code == 201, response.text
    assert response.json()["applied"] == len(events)
    assert await _total_comes_from_amount(client)


async def test_an_event_time_without_an_offset_is_read_as_utc_and_says_so(client: httpx.AsyncClient) -> None:
    run_id = str(uuid.uuid4())
    naive = _run("START", run_id, 0, sql=False, job="naive")
    naive["eventTime"] = "2026-03-01T12:00:00.123456"
    response = await _post(client, naive)
    assert response.status_code == 201, response.text
    warnings = response.json()["warnings"]
    assert len(warnings) == 1 and "UTC" in warnings[0] and "eventTime" in warnings[0], warnings
    run = (await client.get(f"/api/v1/lineage/runs/{run_id}")).json()
    assert run["started_at"].startswith("2026-03-01T12:00:00.123456") and run["started_at"].endswith(("Z", "+00:00"))
    log = (await client.get("/api/v1/lineage/events")).json()["items"]
    stored = [item for item in log if item["run_id"] == run_id]
    assert [f"event: {w}" for w in stored[0]["warnings"]] == warnings
    assert stored[0]["event_time"].startswith("2026-03-01T12:00:00.123456")
    # An aware time says nothing.
    aware = await _post(client, _run("COMPLETE", run_id, 5, sql=False, job="naive"))
    assert aware.status_code == 201 and aware.json()["warnings"] == []
