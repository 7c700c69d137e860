"""One dataset, one node, whatever name a producer used: a Spark job on EMR writes its tables by their S3 paths
and names the Hive tables in symlinks facets; a dbt run and a dashboard refresh name the same tables by their Hive
names. Every edge that looks a dataset up by name (by-name reads, lineage graph, impact, path, declared edges,
GraphQL) answers the one dataset for either name."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest
from ol_events import column_lineage, dataset, run_event, schema

pytestmark = pytest.mark.anyio

HIVE = "hive://metastore.prod:9083"
S3 = "s3://acme-lake"


def _table(name: str, path: str, *columns: str, **facets: Any) -> dict[str, Any]:
    """A dataset as Spark's OpenLineage listener names a Hive table it reads or writes: by its storage path,
    with the table in the symlinks facet."""
    symlinks = {"identifiers": [{"namespace": HIVE, "name": name, "type": "TABLE"}]}
    return dataset(S3, path, symlinks=symlinks, schema=schema(*columns), **facets)


async def _send(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
    body = orjson.dumps(events)
    answer = await client.post("/api/v1/lineage/batch", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 201, answer.text


@pytest.fixture
async def lake(client: httpx.AsyncClient) -> None:
    """raw.orders -> (Spark, by path) -> sales.daily_revenue -> (dbt, by Hive name) -> marts.revenue_kpis."""
    run = str(uuid.uuid4())
    spark_io = {
        "inputs": [_table("raw.orders", "warehouse/raw/orders", "order_id", "amount", "day")],
        "outputs": [
            _table(
                "sales.daily_revenue",
                "warehouse/sales/daily_revenue",
                "day",
                "revenue",
                columnLineage=column_lineage(
                    {"day": [(S3, "warehouse/raw/orders", "day")], "revenue": [(S3, "warehouse/raw/orders", "amount")]}
                ),
            )
        ],
    }
    dbt_run = str(uuid.uuid4())
    dbt_io = {
        "inputs": [dataset(HIVE, "sales.daily_revenue", schema=schema("day", "revenue"))],
        "outputs": [
            dataset(
                HIVE,
                "marts.revenue_kpis",
                schema=schema("day", "revenue_7d"),
                columnLineage=column_lineage({"revenue_7d": [(HIVE, "sales.daily_revenue", "revenue")]}),
            )
        ],
    }
    await _send(
        client,
        [
            run_event("START", job="daily_revenue.insert", run_id=run, minutes=0, **spark_io),
            run_event("COMPLETE", job="daily_revenue.insert", run_id=run, minutes=3, **spark_io),
            run_event("COMPLETE", job="marts.revenue_kpis", job_namespace="dbt", run_id=dbt_run, minutes=5, **dbt_io),
        ],
    )


@pytest.mark.usefixtures("lake")
async def test_a_storage_path_and_its_hive_name_read_the_same_dataset(client: httpx.AsyncClient) -> None:
    by_table = await client.get("/api/v1/datasets/by-name", params={"namespace": HIVE, "name": "sales.daily_revenue"})
    by_path = await client.get(
        "/api/v1/datasets/by-name", params={"namespace": S3, "name": "warehouse/sales/daily_revenue"}
    )
    assert by_table.status_code == by_path.status_code == 200, by_path.text
    assert by_path.json()["id"] == by_table.json()["id"] and by_path.json()["name"] == "sales.daily_revenue"
    missing = await client.get("/api/v1/datasets/by-name", params={"namespace": S3, "name": "warehouse/nope"})
    assert missing.status_code == 404
    query = """query($ns: String!, $name: String!) { dataset(namespace: $ns, name: $name) {
        ... on Dataset { id name } ... on Error { message } } }"""
    answer = await client.post(
        "/graphql", json={"query": query, "variables": {"ns": S3, "name": "warehouse/sales/daily_revenue"}}
    )
    assert answer.json()["data"]["dataset"] == {"id": str(by_table.json()["id"]), "name": "sales.daily_revenue"}


@pytest.mark.usefixtures("lake")
async def test_lineage_impact_and_path_start_from_either_name_and_span_both_producers(
    client: httpx.AsyncClient,
) -> None:
    # Upstream of the dbt mart, asked by the name dbt used, reaches the raw table Spark read by its path.
    graph = await client.get(
        "/api/v1/lineage/graph",
        params={"namespace": HIVE, "name": "marts.revenue_kpis", "field": "revenue_7d", "direction": "upstream"},
    )
    assert graph.status_code == 200, graph.text
    reached = {(n["name"], n["field"]) for n in graph.json()["nodes"]}
    assert {("sales.daily_revenue", "revenue"), ("raw.orders", "amount")} <= reached
    # Impact of the raw table asked by its S3 path (the name the Spark job used) reaches the dbt mart.
    impact = await client.get(
        "/api/v1/lineage/impact", params={"namespace": S3, "name": "warehouse/raw/orders", "field": "amount"}
    )
    assert impact.status_code == 200, impact.text
    assert {d["name"] for d in impact.json()["datasets"]} == {"sales.daily_revenue", "marts.revenue_kpis"}
    path = await client.get(
        "/api/v1/lineage/path",
        params={
            "from_namespace": S3,
            "from_name": "warehouse/raw/orders",
            "to_namespace": HIVE,
            "to_name": "marts.revenue_kpis",
        },
    )
    assert path.status_code == 200, path.text


@pytest.mark.usefixtures("lake")
async def test_an_edge_declared_by_a_storage_path_lands_on_the_table(client: httpx.AsyncClient) -> None:
    body = {
        "source": {"namespace": S3, "name": "warehouse/sales/daily_revenue", "field": "revenue"},
        "target": {"namespace": HIVE, "name": "marts.revenue_kpis", "field": "day"},
        "job_name": "hand_fix",
    }
    declared = await client.post("/api/v1/lineage/edges", json=body)
    assert declared.status_code == 201, declared.text
    assert declared.json()["source"] == f"{HIVE}/sales.daily_revenue#revenue"
    # Registering a dataset under a name that is already another dataset's is refused, naming that dataset.
    taken = await client.post(
        "/api/v1/datasets",
        json={"namespace": S3, "name": "warehouse/sales/daily_revenue", "fields": [{"name": "x", "type": "int"}]},
    )
    assert taken.status_code == 409, taken.text
    assert "sales.daily_revenue" in taken.json()["error"]["message"]


async def test_an_admin_declares_another_bootstrap_host_a_name_of_the_topic_and_events_land_on_it(
    client: httpx.AsyncClient,
) -> None:
    # The catalog knows the topic by one broker; a Flink job's events name it by another of the cluster's brokers.
    topic = {
        "namespace": "kafka://broker-1.prod:9092",
        "name": "orders",
        "fields": [{"name": "order_id", "type": "long"}],
    }
    registered = await client.post("/api/v1/datasets", json=topic)
    assert registered.status_code == 201, registered.text
    topic_id, url = registered.json()["id"], f"/api/v1/datasets/{registered.json()['id']}/aliases"
    other = {"namespace": "kafka://broker-2.prod:9092", "name": "orders"}
    declared = await client.put(url, json=other)
    assert declared.status_code == 200 and declared.json()["items"] == [other], declared.text
    assert (await client.put(url, json=other)).json()["items"] == [other]  # declaring it again changes nothing
    flink_run = str(uuid.uuid4())
    event = run_event(
        "COMPLETE",
        job="orders_enrichment",
        job_namespace="flink",
        run_id=flink_run,
        inputs=[dataset("kafka://broker-2.prod:9092", "orders", schema=schema(("order_id", "long")))],
        outputs=[dataset(HIVE, "stream.orders_enriched", schema=schema(("order_id", "long")))],
    )
    await _send(client, [event])
    found = (await client.get("/api/v1/datasets", params={"namespace": "kafka://broker-2.prod:9092"})).json()
    assert found["total"] == 0  # no second dataset for the other broker's name
    upstream = await client.get(
        "/api/v1/lineage/graph",
        params={"namespace": HIVE, "name": "stream.orders_enriched", "direction": "upstream", "depth": 1},
    )
    assert topic_id in {n["id"] for n in upstream.json()["nodes"] if n["kind"] == "dataset"}
    # A name another dataset already has is refused, naming it; the topic's own name is not an alias.
    taken = await client.put(url, json={"namespace": HIVE, "name": "stream.orders_enriched"})
    assert taken.status_code == 409 and "already names dataset" in taken.json()["error"]["message"]
    own = await client.put(url, json={"namespace": "kafka://broker-1.prod:9092", "name": "orders"})
    assert own.status_code == 409
    removed = await client.delete(url, params=other)
    assert removed.status_code == 204
    assert (await client.get(url)).json()["items"] == []
    assert (await client.delete(url, params=other)).status_code == 404
    changes = (await client.get("/api/v1/change-events", params={"entity_id": topic_id})).json()["items"]
    assert sum(1 for c in changes if "aliases" in (c.get("payload") or {}).get("changed", [])) == 2
