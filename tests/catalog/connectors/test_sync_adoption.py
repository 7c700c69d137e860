"""Late federation: a Spark job writes a table before any sync has seen it, so lineage files it in the ``lineage``
source; a real sync of the Iceberg catalog that holds the table then adopts it (same id, edges, history and what
people wrote; the source's schema wins), on SQLite and PostgreSQL. A dataset another federated source holds is
still a reported conflict."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import column_lineage_dataset, schema_dataset
from openlineage.client.serde import Serde
from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog import sync

pytestmark = pytest.mark.anyio

HIVE = "hive://metastore:9083"
LANDING = "s3://landing"
LANDED = "orders/2026-03-01"
ORDERS = "warehouse.sales.orders"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.30.0/integration/spark"


class Lake:
    """An Iceberg SQL catalog (pyiceberg, SQLite file) whose namespace ``warehouse.sales`` holds no table yet."""

    def __init__(self, root: Path) -> None:
        from pyiceberg.catalog.sql import SqlCatalog

        root.mkdir(parents=True, exist_ok=True)
        self.uri = f"sqlite:///{root / 'catalog.db'}"
        self.catalog = SqlCatalog("lake", uri=self.uri, warehouse=f"file://{root / 'warehouse'}")
        self.catalog.create_namespace("warehouse")
        self.catalog.create_namespace("warehouse.sales")

    def config(self) -> dict[str, Any]:
        """The Headwater source config of this catalog."""
        return {"type": "sql", "uri": self.uri, "catalog_name": "lake"}

    def create_orders(self) -> None:
        """The table as the catalog has it: typed more precisely than Spark's event said, one column more."""
        from pyiceberg.schema import Schema
        from pyiceberg.types import DecimalType, LongType, NestedField, TimestamptzType

        self.catalog.create_table(
            ORDERS,
            Schema(
                NestedField(1, "order_id", LongType(), required=True),
                NestedField(2, "customer_id", LongType()),
                NestedField(3, "amount", DecimalType(10, 2), doc="order total in EUR"),
                NestedField(4, "placed_at", TimestamptzType()),
            ),
        )


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    """An Iceberg catalog for this test."""
    yield Lake(tmp_path / "lake")


async def post(client: httpx.AsyncClient, path: str, body: Any) -> httpx.Response:
    return await client.post(path, content=orjson.dumps(body), headers={"content-type": "application/json"})


def _schema(*columns: tuple[str, str]) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name=name, type=kind) for name, kind in columns]
    )


def _spark_load(minute: int, *columns: tuple[str, str]) -> dict[str, Any]:
    """The COMPLETE event of the Spark job loading landed files into warehouse.sales.orders, as the OpenLineage
    client builds it."""
    columns = columns or (("order_id", "bigint"), ("customer_id", "bigint"), ("amount", "double"))
    lineage = column_lineage_dataset.ColumnLineageDatasetFacet(
        fields={
            out: column_lineage_dataset.Fields(
                inputFields=[
                    column_lineage_dataset.InputField(
                        namespace=LANDING,
                        name=LANDED,
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
        eventTime=f"2026-03-01T{12 + minute // 60:02d}:{minute % 60:02d}:00.000Z",
        run=Run(runId=str(uuid.uuid4())),
        job=Job(namespace="spark", name="load_orders.execute_insert_into_hadoop_fs_relation_command"),
        producer=PRODUCER,
        inputs=[
            InputDataset(
                namespace=LANDING,
                name=LANDED,
                facets={"schema": _schema(("id", "bigint"), ("customer", "bigint"), ("total", "double"))},
            )
        ],
        outputs=[
            OutputDataset(namespace=HIVE, name=ORDERS, facets={"schema": _schema(*columns), "columnLineage": lineage})
        ],
    )
    return dict(Serde.to_dict(event))


async def _by_name(client: httpx.AsyncClient, name: str = ORDERS, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/datasets/by-name", params={"namespace": HIVE, "name": name, **params})
    assert response.status_code == 200, response.text
    return response.json()


async def _add_iceberg_source(client: httpx.AsyncClient, lake: Lake, name: str) -> None:
    body = {"name": name, "kind": "iceberg", "namespace": HIVE, "config": lake.config()}
    response = await post(client, "/api/v1/sources", body)
    assert response.status_code == 201, response.text


async def _changes(client: httpx.AsyncClient, dataset_id: int) -> list[dict[str, Any]]:
    items = (await client.get("/api/v1/change-events", params={"entity_type": "dataset", "limit": 1000})).json()
    return [c for c in items["items"] if c["entity_id"] == dataset_id]


async def test_a_table_lineage_saw_first_is_adopted_by_the_sync_that_finds_it(
    client: httpx.AsyncClient, sync_factory: sessionmaker[Session], lake: Lake
) -> None:
    assert (await post(client, "/api/v1/lineage", _spark_load(0))).status_code == 201
    seen = await _by_name(client)
    assert seen["source"] == "lineage" and [f["path"] for f in seen["fields"]] == ["order_id", "customer_id", "amount"]
    # What people write while only lineage knows the table.
    patch = {
        "description": "One row per order, loaded hourly",
        "tags": ["finance", "gold"],
        "owners": [{"name": "team:orders", "role": "business_owner"}],
        "fields": {"amount": {"description": "what the customer paid", "tags": ["money"]}},
    }
    response = await client.patch(
        f"/api/v1/datasets/{seen['id']}", content=orjson.dumps(patch),
        headers={"content-type": "application/json", "if-match": f'"{seen["id"]}.{seen["revision"]}"'},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    restricted = await client.put(f"/api/v1/datasets/{seen['id']}/restriction", json={"groups": ["finance"]})
    assert restricted.status_code == 200, restricted.text

    lake.create_orders()
    await _add_iceberg_source(client, lake, "warehouse")
    run = sync.run_sync(sync_factory, source_name="warehouse")
    assert (run.status, run.failed, run.added, run.errors) == ("succeeded", 0, 1, [])

    adopted = await _by_name(client)
    assert adopted["id"] == seen["id"] and adopted["source"] == "warehouse" and adopted["source_kind"] == "iceberg"
    # The source's schema wins (its types, its extra column, its field ids); what people wrote stays.
    fields = {f["path"]: f for f in adopted["fields"]}
    assert list(fields) == ["order_id", "customer_id", "amount", "placed_at"]
    assert fields["amount"]["type"].startswith("decimal") and fields["amount"]["field_id"] == 3
    assert fields["amount"]["description"] == "what the customer paid" and fields["amount"]["tags"] == ["money"]
    assert adopted["description"] == "One row per order, loaded hourly" and adopted["tags"] == ["finance", "gold"]
    assert [o["name"] for o in adopted["owners"]] == ["team:orders"]
    restriction = (await client.get(f"/api/v1/datasets/{seen['id']}/restriction")).json()
    assert restriction["groups"] == ["finance"]

    # History: the lineage schema, then the source's; the change feed says who adopted it from whom.
    versions = (await client.get(f"/api/v1/datasets/{seen['id']}/schema-versions")).json()["items"]
    assert sorted(v["version"] for v in versions) == [1, 2]
    adoption = [c for c in await _changes(client, seen["id"]) if c["kind"] == "adopted"]
    assert [c["payload"] for c in adoption] == [{"source": "warehouse", "from_source": "lineage", "was_deleted": False}]

    # The column edges Spark stated still reach the table's columns.
    impact = (
        await client.get("/api/v1/lineage/impact", params={"namespace": LANDING, "name": LANDED, "field": "total"})
    ).json()
    assert [(c["name"], c["field"]) for c in impact["columns"]] == [(ORDERS, "amount")]

    # From now on events never change its schema: a later run stating another one leaves the source's in place.
    later = _spark_load(60, ("order_id", "bigint"), ("amount", "double"), ("note", "string"))
    assert (await post(client, "/api/v1/lineage", later)).status_code == 201
    assert [f["path"] for f in (await _by_name(client))["fields"]] == ["order_id", "customer_id", "amount", "placed_at"]
    again = sync.run_sync(sync_factory, source_name="warehouse")
    assert (again.status, again.failed, again.unchanged) == ("succeeded", 0, 1)


async def test_a_deleted_lineage_dataset_is_adopted_and_restored(
    client: httpx.AsyncClient, sync_factory: sessionmaker[Session], lake: Lake
) -> None:
    assert (await post(client, "/api/v1/lineage", _spark_load(0))).status_code == 201
    seen = await _by_name(client)
    deleted = await client.delete(f"/api/v1/datasets/{seen['id']}", params={"reason": "looked like a typo"})
    assert deleted.status_code == 200, deleted.text

    lake.create_orders()
    await _add_iceberg_source(client, lake, "warehouse")
    run = sync.run_sync(sync_factory, source_name="warehouse")
    assert (run.status, run.failed, run.added) == ("succeeded", 0, 1)
    back = await _by_name(client)
    assert back["id"] == seen["id"] and back["deleted_at"] is None and back["source"] == "warehouse"
    kinds = [c["kind"] for c in await _changes(client, seen["id"])]
    assert kinds[:2] == ["created", "deleted"]
    assert kinds[2:5] == ["adopted", "restored", "schema_changed"]


async def test_a_hand_registered_dataset_is_adopted_too(
    client: httpx.AsyncClient, sync_factory: sessionmaker[Session], lake: Lake
) -> None:
    body = {
        "name": ORDERS,
        "namespace": HIVE,
        "description": "registered before the metastore was connected",
        "fields": [{"name": "order_id", "type": "bigint"}, {"name": "amount", "type": "double"}],
    }
    registered = await post(client, "/api/v1/datasets", body)
    assert registered.status_code == 201, registered.text
    lake.create_orders()
    await _add_iceberg_source(client, lake, "warehouse")
    run = sync.run_sync(sync_factory, source_name="warehouse")
    assert (run.status, run.failed) == ("succeeded", 0)
    adopted = await _by_name(client)
    assert adopted["id"] == registered.json()["id"] and adopted["source"] == "warehouse"
    assert adopted["description"] == "registered before the metastore was connected"
    adoption = [c for c in await _changes(client, adopted["id"]) if c["kind"] == "adopted"]
    assert adoption[0]["payload"]["from_source"] == "manual"


async def test_a_dataset_of_another_federated_source_is_a_reported_conflict(
    client: httpx.AsyncClient, sync_factory: sessionmaker[Session], lake: Lake
) -> None:
    lake.create_orders()
    await _add_iceberg_source(client, lake, "warehouse")
    await _add_iceberg_source(client, lake, f"shadow-{uuid.uuid4().hex[:6]}")
    first = sync.run_sync(sync_factory, source_name="warehouse")
    assert (first.status, first.added) == ("succeeded", 1)
    shadow = (await client.get("/api/v1/sources")).json()["items"]
    name = next(s["name"] for s in shadow if s["name"].startswith("shadow-"))
    second = sync.run_sync(sync_factory, source_name=name)
    assert (second.status, second.failed, second.added) == ("partial", 1, 0)
    assert "belongs to source 'warehouse'" in second.errors[0]["error"]
    assert (await _by_name(client))["source"] == "warehouse"
