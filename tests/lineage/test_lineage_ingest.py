"""OpenLineage ingestion over the API: events logged and applied, duplicates and out-of-order events,
parent runs, symlinks, schema facets, malformed events, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import uuid
from typing import Any

import httpx
import orjson
import pytest
from ol_events import PRODUCER, at, column_lineage, dataset, run_event, schema

pytestmark = pytest.mark.anyio

HIVE = "hive://metastore:9083"
FILE = "file"


async def post(client: httpx.AsyncClient, body: Any, path: str = "/api/v1/lineage") -> httpx.Response:
    return await client.post(path, content=orjson.dumps(body), headers={"content-type": "application/json"})


async def run_state(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/lineage/runs/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _etl(run_id: str, event_type: str, minutes: float) -> dict[str, Any]:
    return run_event(
        event_type,
        job="etl.orders_daily",
        run_id=run_id,
        minutes=minutes,
        inputs=[dataset(HIVE, "raw.orders", schema=schema("order_id", "amount", "country"))],
        outputs=[
            dataset(
                HIVE,
                "curated.orders_daily",
                schema=schema("country", ("total", "double")),
                columnLineage=column_lineage(
                    {"country": [(HIVE, "raw.orders", "country")], "total": [(HIVE, "raw.orders", "amount")]},
                    subtype="AGGREGATION",
                    dataset=[(HIVE, "raw.orders", "order_id", "FILTER")],
                ),
            )
        ],
    )


async def test_a_run_is_logged_applied_and_its_datasets_join_the_catalog(client: httpx.AsyncClient) -> None:
    run_id = str(uuid.uuid4())
    response = await post(client, _etl(run_id, "START", 0))
    assert response.status_code == 201, response.text
    assert response.json()["applied"] == 1
    assert (await post(client, _etl(run_id, "COMPLETE", 5))).status_code == 201

    run = await run_state(client, run_id)
    assert run["state"] == "COMPLETE" and run["job_name"] == "etl.orders_daily"
    assert run["started_at"].startswith("2026-03-01T12:00") and run["ended_at"].startswith("2026-03-01T12:05")

    # Unknown datasets are created in the lineage source, with the schema facet's fields and change events.
    found = await client.get("/api/v1/datasets/by-name", params={"namespace": HIVE, "name": "curated.orders_daily"})
    assert found.status_code == 200
    assert [f["path"] for f in found.json()["fields"]] == ["country", "total"]
    assert found.json()["source"] == "lineage"
    changes = (await client.get("/api/v1/change-events", params={"entity_type": "dataset"})).json()["items"]
    assert {c["name"] for c in changes if c["kind"] == "created"} == {"raw.orders", "curated.orders_daily"}

    impact = (
        await client.get("/api/v1/lineage/impact", params={"namespace": HIVE, "name": "raw.orders", "field": "amount"})
    ).json()
    assert [(c["name"], c["field"], c["distance"]) for c in impact["columns"]] == [("curated.orders_daily", "total", 1)]
    assert impact["jobs"][0]["name"] == "etl.orders_daily" and impact["isPartial"] is False

    # The dataset-wide filter column reaches every output column, as INDIRECT/FILTER.
    graph = (
        await client.get(
            "/api/v1/lineage/graph",
            params={"namespace": HIVE, "name": "raw.orders", "field": "order_id", "direction": "downstream"},
        )
    ).json()
    assert {(e["target"].split("#")[1], e["transformation_type"], e["subtype"]) for e in graph["edges"]} == {
        ("country", "INDIRECT", "FILTER"),
        ("total", "INDIRECT", "FILTER"),
    }
    edge = graph["edges"][0]
    assert edge["origin"] == "openlineage" and edge["producer"] == PRODUCER and edge["last_run_id"] == run_id

    events = (await client.get("/api/v1/lineage/events")).json()["items"]
    assert [e["event_type"] for e in events] == ["START", "COMPLETE"]
    assert events[1]["event"]["run"]["runId"] == run_id


async def test_the_same_event_twice_changes_nothing(client: httpx.AsyncClient) -> None:
    event = _etl(str(uuid.uuid4()), "COMPLETE", 1)
    first = (await post(client, event)).json()
    # Key order does not make it a different event.
    again = (await post(client, dict(reversed(list(event.items()))))).json()
    assert (first["applied"], first["duplicates"]) == (1, 0)
    assert (again["applied"], again["duplicates"]) == (0, 1)
    assert len((await client.get("/api/v1/lineage/events")).json()["items"]) == 1
    run = await run_state(client, event["run"]["runId"])
    assert run["event_count"] == 1


async def test_out_of_order_events_end_in_the_right_state(client: httpx.AsyncClient) -> None:
    run_id = str(uuid.uuid4())
    for event_type, minutes in (("COMPLETE", 10), ("RUNNING", 5), ("START", 0)):
        assert (await post(client, _etl(run_id, event_type, minutes))).status_code == 201
    run = await run_state(client, run_id)
    assert run["state"] == "COMPLETE"
    assert run["started_at"].startswith("2026-03-01T12:00") and run["ended_at"].startswith("2026-03-01T12:10")
    # An older FAIL arriving late does not replace the newer COMPLETE; a newer ABORT does.
    await post(client, _etl(run_id, "FAIL", 8))
    assert (await run_state(client, run_id))["state"] == "COMPLETE"
    await post(client, _etl(run_id, "ABORT", 12))
    assert (await run_state(client, run_id))["state"] == "ABORT"

    edges = (
        await client.get(
            "/api/v1/lineage/graph",
            params={"namespace": HIVE, "name": "raw.orders", "field": "amount", "direction": "downstream"},
        )
    ).json()["edges"]
    assert len(edges) == 1
    assert edges[0]["first_seen"].startswith("2026-03-01T12:00") and edges[0]["last_seen"].startswith(
        "2026-03-01T12:12"
    )


async def test_a_spark_application_stream_links_child_jobs_to_their_parent_run(client: httpx.AsyncClient) -> None:
    app_run = str(uuid.uuid4())
    app_job = "daily_sessions_app"
    batch: list[dict[str, Any]] = [run_event("START", job=app_job, run_id=app_run, minutes=0)]
    children = []
    for index, (source, target) in enumerate(
        [("raw.events", "stage.sessions"), ("stage.sessions", "curated.sessions")]
    ):
        child = str(uuid.uuid4())
        children.append(child)
        job = f"{app_job}.execute_insert_into_hadoop_fs_relation_command.{target.replace('.', '_')}"
        io = {
            "inputs": [
                dataset(
                    FILE,
                    f"/warehouse/{source.replace('.', '/')}",
                    symlinks={"identifiers": [{"namespace": HIVE, "name": source, "type": "TABLE"}]},
                    schema=schema("user_id", "ts"),
                )
            ],
            "outputs": [
                dataset(
                    FILE,
                    f"/warehouse/{target.replace('.', '/')}",
                    symlinks={"identifiers": [{"namespace": HIVE, "name": target, "type": "TABLE"}]},
                    schema=schema("user_id", "ts"),
                    columnLineage=column_lineage(
                        {c: [(FILE, f"/warehouse/{source.replace('.', '/')}", c)] for c in ("user_id", "ts")}
                    ),
                )
            ],
        }
        batch.append(run_event("START", job=job, run_id=child, minutes=1 + index, parent=(app_job, app_run), **io))
        batch.append(run_event("COMPLETE", job=job, run_id=child, minutes=2 + index, parent=(app_job, app_run), **io))
    batch.append(run_event("COMPLETE", job=app_job, run_id=app_run, minutes=5))
    response = await post(client, batch, "/api/v1/lineage/batch")
    assert response.status_code == 201, response.text
    assert response.json()["applied"] == len(batch)

    parent = await run_state(client, app_run)
    assert parent["state"] == "COMPLETE" and sorted(parent["children"]) == sorted(children)
    assert (await run_state(client, children[0]))["parent_run_id"] == app_run

    # The file paths resolved to their Hive tables through the symlinks facet: lineage spans both jobs.
    impact = (
        await client.get("/api/v1/lineage/impact", params={"namespace": HIVE, "name": "raw.events", "field": "ts"})
    ).json()
    assert [(c["name"], c["distance"]) for c in impact["columns"]] == [("stage.sessions", 1), ("curated.sessions", 2)]
    assert impact["columns"][1]["path"] == [
        f"{HIVE}/raw.events#ts",
        f"{HIVE}/stage.sessions#ts",
        f"{HIVE}/curated.sessions#ts",
    ]
    # No second dataset for the path: the name the job used reads the Hive table (one dataset, one node).
    by_path = await client.get("/api/v1/datasets/by-name", params={"namespace": FILE, "name": "/warehouse/raw/events"})
    assert by_path.status_code == 200 and (by_path.json()["namespace"], by_path.json()["name"]) == (HIVE, "raw.events")


async def test_a_known_catalog_dataset_is_matched_not_duplicated(client: httpx.AsyncClient) -> None:
    registered = await client.post(
        "/api/v1/datasets",
        json={
            "name": "raw.orders",
            "namespace": HIVE,
            "fields": [
                {"name": "order_id", "type": "bigint"},
                {"name": "amount", "type": "decimal(10,2)"},
                {"name": "country", "type": "string"},
            ],
            "owners": [{"name": "team:orders"}],
        },
    )
    assert registered.status_code == 201, registered.text
    await post(client, _etl(str(uuid.uuid4()), "COMPLETE", 1))
    again = (await client.get(f"/api/v1/datasets/{registered.json()['id']}")).json()
    # A federated/manual dataset's schema belongs to its source: the event's schema facet did not touch it.
    assert [(f["path"], f["type"]) for f in again["fields"]] == [
        ("order_id", "bigint"),
        ("amount", "decimal(10,2)"),
        ("country", "string"),
    ]
    impact = (await client.get("/api/v1/lineage/impact", params={"dataset_id": registered.json()["id"]})).json()
    assert [d["name"] for d in impact["datasets"]] == ["curated.orders_daily"]
    assert impact["owners"] == []  # the owners listed are those of affected (downstream) datasets


async def test_dataset_and_job_events(client: httpx.AsyncClient) -> None:
    dataset_event = {
        "eventTime": at(0),
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent",
        "dataset": dataset("kafka://broker:9092", "orders", schema=schema("order_id", "amount")),
    }
    job_event = {
        "eventTime": at(1),
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent",
        "job": {"namespace": "flink", "name": "orders_to_lake", "facets": {}},
        "inputs": [dataset("kafka://broker:9092", "orders")],
        "outputs": [
            dataset(
                HIVE,
                "raw.orders",
                columnLineage=column_lineage({"amount": [("kafka://broker:9092", "orders", "amount")]}),
            )
        ],
    }
    response = await post(client, [dataset_event, job_event], "/api/v1/lineage/batch")
    assert response.status_code == 201, response.text
    topic = (
        await client.get("/api/v1/datasets/by-name", params={"namespace": "kafka://broker:9092", "name": "orders"})
    ).json()
    assert topic["kind"] == "topic" and [f["path"] for f in topic["fields"]] == ["order_id", "amount"]
    graph = (
        await client.get("/api/v1/lineage/graph", params={"dataset_id": topic["id"], "direction": "downstream"})
    ).json()
    assert [e["origin"] for e in graph["edges"]] == ["job"]  # a JobEvent is a job's declaration


async def test_gzip_bodies_as_the_client_compresses_them(client: httpx.AsyncClient) -> None:
    run_id = str(uuid.uuid4())
    body = gzip.compress(orjson.dumps(_etl(run_id, "COMPLETE", 1)))
    response = await client.post(
        "/api/v1/lineage", content=body, headers={"content-type": "application/json", "content-encoding": "gzip"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["applied"] == 1
    # The decompressed event was ingested whole: its run, both datasets with their fields, the column edges, the log.
    run = await run_state(client, run_id)
    assert run["state"] == "COMPLETE" and run["job_name"] == "etl.orders_daily"
    for name, paths in (
        ("raw.orders", ["order_id", "amount", "country"]),
        ("curated.orders_daily", ["country", "total"]),
    ):
        found = await client.get("/api/v1/datasets/by-name", params={"namespace": HIVE, "name": name})
        assert found.status_code == 200, found.text
        assert [f["path"] for f in found.json()["fields"]] == paths
    graph = (
        await client.get(
            "/api/v1/lineage/graph",
            params={"namespace": HIVE, "name": "raw.orders", "field": "amount", "direction": "downstream"},
        )
    ).json()
    assert [(e["target"].split("#")[1], e["last_run_id"]) for e in graph["edges"]] == [("total", run_id)]
    events = (await client.get("/api/v1/lineage/events")).json()["items"]
    assert [(e["event_type"], e["event"]["run"]["runId"]) for e in events] == [("COMPLETE", run_id)]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_what_its_encoding_says_is_refused(client: httpx.AsyncClient, encoding: str) -> None:
    plain = orjson.dumps(_etl(str(uuid.uuid4()), "COMPLETE", 1))
    for body in (plain, gzip.compress(plain)[:-8]):  # not compressed at all; compressed, then cut short
        response = await client.post(
            "/api/v1/lineage", content=body, headers={"content-type": "application/json", "content-encoding": encoding}
        )
        assert response.status_code == 400, response.text
        assert f"not valid {encoding} data" in response.json()["error"]["message"]
    assert (await client.get("/api/v1/lineage/events")).json()["items"] == []
    assert (await client.get("/api/v1/datasets")).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "empty"),
        (b"[]", 400, "no events"),
        (b'{"hello": 1}', 400, "not an OpenLineage event"),
        (b'"text"', 400, "JSON object"),
    ],
)
async def test_bodies_that_are_not_events_are_refused(
    client: httpx.AsyncClient, body: bytes, status: int, names: str
) -> None:
    response = await client.post("/api/v1/lineage", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert names in response.json()["error"]["message"]


def _broken(change: str) -> dict[str, Any]:
    event = _etl(str(uuid.uuid4()), "COMPLETE", 1)
    if change == "run_id":
        event["run"]["runId"] = "not-a-uuid"
    elif change == "event_time":
        event["eventTime"] = "yesterday"
    elif change == "event_type":
        event["eventType"] = "FINISHED"
    elif change == "producer":
        del event["producer"]
    elif change == "facet":
        event["outputs"][0]["facets"]["columnLineage"]["fields"]["total"]["inputFields"][0]["transformations"][0][
            "type"
        ] = "SIDEWAYS"
    return event


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ("run_id", "event.run.runId"),
        ("event_time", "event.eventTime"),
        ("event_type", "event.eventType"),
        ("producer", "event.producer"),
        ("facet", "event.outputs[0].facets.columnLineage.fields.total.inputFields[0].transformations[0].type"),
    ],
)
async def test_invalid_events_get_422_naming_the_field(client: httpx.AsyncClient, change: str, field: str) -> None:
    response = await post(client, _broken(change))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["detail"]["field"] == field
    assert error["message"].startswith(field)


async def test_a_nul_character_anywhere_in_an_event_is_refused_naming_where(client: httpx.AsyncClient) -> None:
    event = _etl(str(uuid.uuid4()), "COMPLETE", 0)
    event["run"]["facets"]["spark_properties"] = {"properties": {"spark.app.name": "daily\u0000"}}
    answer = await client.post("/api/v1/lineage", json=event)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["detail"]["field"] == "event.run.facets.spark_properties.properties.spark.app.name"
    # A backslash followed by "u0000" is text like any other.
    event["run"]["facets"]["spark_properties"] = {"properties": {"spark.app.name": "C:\\u0000"}}
    assert (await client.post("/api/v1/lineage", json=[event])).status_code == 201
    logged = (await client.get("/api/v1/lineage/events")).json()["items"]
    assert [e["event"]["run"]["facets"]["spark_properties"]["properties"]["spark.app.name"] for e in logged] == [
        "C:\\u0000"
    ]


async def test_one_bad_event_refuses_the_whole_batch(client: httpx.AsyncClient) -> None:
    good = _etl(str(uuid.uuid4()), "COMPLETE", 1)
    response = await post(client, [good, _broken("run_id")], "/api/v1/lineage/batch")
    assert response.status_code == 422
    assert response.json()["error"]["detail"]["field"] == "events[1].run.runId"
    assert (await client.get("/api/v1/lineage/events")).json()["items"] == []
    assert (await client.get("/api/v1/datasets")).json()["total"] == 0


async def test_batch_form_also_takes_an_events_object(client: httpx.AsyncClient) -> None:
    response = await post(client, {"events": [_etl(str(uuid.uuid4()), "COMPLETE", 1)]}, "/api/v1/lineage/batch")
    assert response.status_code == 201 and response.json()["applied"] == 1
    refused = await post(client, {"nope": []}, "/api/v1/lineage/batch")
    assert refused.status_code == 400 and "events" in refused.json()["error"]["message"]
