"""Late federation against a real Hive Metastore: a Spark job (its event built by the openlineage-python client)
writes a Hive table before any sync has seen it, so lineage files it in the ``lineage`` source under the Hive
connector's own namespace (``hive://host:port``, name ``database.table``); someone describes it; the table then
appears in the metastore and the Hive sync adopts it: one dataset, the Hive source's, its schema Hive's, the
description and the column edges kept, an ``adopted`` change event; a second sync changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import column_lineage_dataset, schema_dataset
from openlineage.client.serde import Serde
from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog import sync

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

KAFKA = "kafka://broker-1.internal:9092"
TOPIC = "shop.order_events"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.30.0/integration/spark"


def _schema(*columns: tuple[str, str]) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name=name, type=kind) for name, kind in columns]
    )


def _spark_load(namespace: str, table: str) -> dict[str, Any]:
    """The COMPLETE event of a Spark streaming job writing order events from Kafka into the Hive table."""
    lineage = column_lineage_dataset.ColumnLineageDatasetFacet(
        fields={
            out: column_lineage_dataset.Fields(
                inputFields=[
                    column_lineage_dataset.InputField(
                        namespace=KAFKA,
                        name=TOPIC,
                        field=src,
                        transformations=[column_lineage_dataset.Transformation(type="DIRECT", subtype="IDENTITY")],
                    )
                ]
            )
            for out, src in (("order_id", "id"), ("customer_id", "customer"), ("amount", "total"))
        }
    )
    event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-03-01T12:00:00.000Z",
        run=Run(runId=str(uuid.uuid4())),
        job=Job(namespace="spark", name="orders_to_hive.execute_insert_into_hive_table"),
        producer=PRODUCER,
        inputs=[
            InputDataset(
                namespace=KAFKA,
                name=TOPIC,
                facets={"schema": _schema(("id", "long"), ("customer", "long"), ("total", "double"))},
            )
        ],
        outputs=[
            OutputDataset(
                namespace=namespace,
                name=table,
                facets={
                    "schema": _schema(("order_id", "long"), ("customer_id", "long"), ("amount", "double")),
                    "columnLineage": lineage,
                },
            )
        ],
    )
    return dict(Serde.to_dict(event))


async def post(client: httpx.AsyncClient, path: str, body: Any) -> httpx.Response:
    return await client.post(path, content=orjson.dumps(body), headers={"content-type": "application/json"})


async def _by_name(client: httpx.AsyncClient, namespace: str, name: str) -> dict[str, Any]:
    response = await client.get("/api/v1/datasets/by-name", params={"namespace": namespace, "name": name})
    assert response.status_code == 200, response.text
    return response.json()


async def _changes(client: httpx.AsyncClient, dataset_id: int) -> list[dict[str, Any]]:
    items = (await client.get("/api/v1/change-events", params={"entity_type": "dataset", "limit": 1000})).json()
    return [c for c in items["items"] if c["entity_id"] == dataset_id]


async def test_a_hive_table_lineage_saw_first_is_adopted_by_the_hive_sync(
    client: httpx.AsyncClient, sync_factory: sessionmaker[Session], hive_metastore: Any
) -> None:
    from hive_test_server import create_database, create_table

    database = f"shop_{uuid.uuid4().hex[:8]}"  # its own database: the metastore is shared by a worker's tests
    table = f"{database}.orders"
    namespace = f"hive://127.0.0.1:{hive_metastore.port}"  # what the Hive connector names its datasets
    event = _spark_load(namespace, table)
    assert (await post(client, "/api/v1/lineage", event)).status_code == 201
    seen = await _by_name(client, namespace, table)
    assert seen["source"] == "lineage" and [f["path"] for f in seen["fields"]] == ["order_id", "customer_id", "amount"]
    patch = {"description": "Orders as the shop wrote them, one row per order", "tags": ["commerce"]}
    response = await client.patch(
        f"/api/v1/datasets/{seen['id']}", content=orjson.dumps(patch),
        headers={"content-type": "application/json", "if-match": f'"{seen["id"]}.{seen["revision"]}"'},
    )  # fmt: skip
    assert response.status_code == 200, response.text

    with hive_metastore.client() as metastore:
        create_database(metastore, database, owner_team="commerce")
        create_table(
            metastore,
            database,
            "orders",
            [("order_id", "bigint"), ("customer_id", "bigint"), ("amount", "decimal(10,2)")],
            partition_keys=[("dt", "string")],
        )
    source = {"name": "metastore", "kind": "hive", "namespace": "hive://warehouse"}
    source["config"] = hive_metastore.config(databases=[database])
    created = await post(client, "/api/v1/sources", source)
    assert created.status_code == 201, created.text
    run = sync.run_sync(sync_factory, source_name="metastore")
    assert (run.status, run.failed, run.added, run.errors) == ("succeeded", 0, 1, [])

    adopted = await _by_name(client, namespace, table)
    assert adopted["id"] == seen["id"] and adopted["source"] == "metastore" and adopted["source_kind"] == "hive"
    # Hive's schema (its types, its partition column), what the person wrote kept.
    fields = [(f["path"], f["type"]) for f in adopted["fields"]]
    assert fields == [("order_id", "bigint"), ("customer_id", "bigint"), ("amount", "decimal(10,2)"), ("dt", "string")]
    assert adopted["description"] == "Orders as the shop wrote them, one row per order"
    assert adopted["tags"] == ["commerce"] and adopted["format"] == "parquet"
    listed = (await client.get("/api/v1/datasets", params={"namespace": namespace, "limit": 100})).json()["items"]
    assert [(d["id"], d["name"]) for d in listed] == [(seen["id"], table)]  # one dataset, not two
    adoption = [c for c in await _changes(client, seen["id"]) if c["kind"] == "adopted"]
    assert [c["payload"] for c in adoption] == [{"source": "metastore", "from_source": "lineage", "was_deleted": False}]

    # The column edges Spark stated still reach the table's columns.
    impact = await client.get("/api/v1/lineage/impact", params={"namespace": KAFKA, "name": TOPIC, "field": "total"})
    assert [(c["name"], c["field"]) for c in impact.json()["columns"]] == [(table, "amount")]

    # A second sync finds nothing to change and writes no change event.
    before = await _changes(client, seen["id"])
    again = sync.run_sync(sync_factory, source_name="metastore")
    assert (again.status, again.failed, again.added, again.changed, again.unchanged) == ("succeeded", 0, 0, 0, 1)
    assert await _changes(client, seen["id"]) == before
    assert (await _by_name(client, namespace, table))["revision"] == adopted["revision"]
