"""Stored dataset answers (catalog.answers): after every kind of write, a read that misses the in-process cache
answers from the stored answer exactly what building the answer afresh gives, and never a stale one."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from headwater.catalog import service
from headwater.catalog.answers import DatasetAnswer, store_answer
from headwater.catalog.fields import FlatField
from headwater.catalog.models import Dataset

pytestmark = pytest.mark.anyio

NS = "postgres://warehouse.internal:5432"


def _orders(name: str = "shop.public.orders") -> dict[str, Any]:
    return {
        "namespace": NS,
        "name": name,
        "kind": "table",
        "fields": [
            {"name": "order_id", "type": "bigint", "nullable": False, "description": "The order."},
            {"name": "amount_cents", "type": "bigint"},
            {"name": "customer_email", "type": "varchar(255)", "tags": ["contact"]},
        ],
        "tags": ["gold"],
        "owners": [{"name": "team:orders"}],
        "properties": {"retention_days": "30"},
    }


def _stored(engine: Engine, dataset_id: int) -> tuple[int, bytes] | None:
    with Session(engine) as session:
        row = session.execute(
            select(DatasetAnswer.revision, DatasetAnswer.body).where(DatasetAnswer.dataset_id == dataset_id)
        ).first()
        return None if row is None else (row.revision, bytes(row.body))


async def _cold_read_is_fresh(app: FastAPI, client: httpx.AsyncClient, engine: Engine, dataset_id: int) -> bytes:
    """GET the dataset with the in-process cache emptied: the body equals one built afresh, with the same ETag, and
    the answer it came from (or that it stored) is the current revision's."""
    url = f"/api/v1/datasets/{dataset_id}"
    app.state.dataset_cache.clear()
    cold = await client.get(url)
    assert cold.status_code == 200, cold.text
    fresh = await client.get(url, params={"include_deleted": "true"})  # never from a stored answer
    assert cold.content == fresh.content
    assert cold.headers["etag"] == fresh.headers["etag"] == f'"{dataset_id}.{fresh.json()["revision"]}"'
    assert _stored(engine, dataset_id) == (fresh.json()["revision"], fresh.content)
    return cold.content


async def test_a_write_through_the_api_stores_the_answer_it_returns_in_the_same_transaction(
    app: FastAPI, client: httpx.AsyncClient, engine: Engine
) -> None:
    created = await client.post("/api/v1/datasets", json=_orders())
    assert created.status_code == 201, created.text
    dataset_id = created.json()["id"]
    assert _stored(engine, dataset_id) == (1, created.content)
    assert await _cold_read_is_fresh(app, client, engine, dataset_id) == created.content

    patched = await client.patch(
        f"/api/v1/datasets/{dataset_id}",
        json={"description": "One row per order.", "fields": {"amount_cents": {"description": "In cents."}}},
        headers={"If-Match": created.headers["etag"]},
    )
    assert patched.status_code == 200, patched.text
    assert _stored(engine, dataset_id) == (2, patched.content)
    assert await _cold_read_is_fresh(app, client, engine, dataset_id) == patched.content

    schema = await client.put(
        f"/api/v1/datasets/{dataset_id}/schema",
        json={"fields": [*_orders()["fields"], {"name": "currency", "type": "char(3)"}]},
    )
    assert schema.status_code == 200, schema.text
    assert _stored(engine, dataset_id) == (3, schema.content)
    body = await _cold_read_is_fresh(app, client, engine, dataset_id)
    assert b'"currency"' in body


async def test_writes_that_do_not_store_an_answer_make_the_old_one_unusable(
    app: FastAPI, client: httpx.AsyncClient, engine: Engine
) -> None:
    dataset_id = (await client.post("/api/v1/datasets", json=_orders())).json()["id"]
    await _cold_read_is_fresh(app, client, engine, dataset_id)

    # A sync (or any other process) changes the schema through the service, not the API.
    with Session(engine) as session, session.begin():
        dataset = session.get_one(Dataset, dataset_id)
        snapshot = service.DatasetSnapshot(
            namespace=NS,
            name="shop.public.orders",
            fields=[
                FlatField(path="order_id", name="order_id", type="bigint", nullable=False),
                FlatField(path="total", name="total", type="numeric(12,2)"),
            ],
        )
        assert service.apply_snapshot(session, source=dataset.source, snapshot=snapshot).outcome == "schema_changed"
    body = await _cold_read_is_fresh(app, client, engine, dataset_id)
    assert b'"total"' in body and b'"amount_cents"' not in body

    # Another name of it (an alias), then a restriction: both bump the revision, neither stores an answer.
    alias = await client.put(
        f"/api/v1/datasets/{dataset_id}/aliases", json={"namespace": "hive://metastore:9083", "name": "shop.orders"}
    )
    assert alias.status_code == 200, alias.text
    await _cold_read_is_fresh(app, client, engine, dataset_id)
    restricted = await client.put(f"/api/v1/datasets/{dataset_id}/restriction", json={"groups": ["finance"]})
    assert restricted.status_code == 200, restricted.text
    await _cold_read_is_fresh(app, client, engine, dataset_id)
    lifted = await client.delete(f"/api/v1/datasets/{dataset_id}/restriction")
    assert lifted.status_code == 204, lifted.text
    await _cold_read_is_fresh(app, client, engine, dataset_id)


async def test_a_deleted_dataset_is_never_answered_from_its_stored_answer_and_a_restored_one_is_fresh(
    app: FastAPI, client: httpx.AsyncClient, engine: Engine
) -> None:
    dataset_id = (await client.post("/api/v1/datasets", json=_orders())).json()["id"]
    await _cold_read_is_fresh(app, client, engine, dataset_id)

    deleted = await client.delete(f"/api/v1/datasets/{dataset_id}", params={"reason": "replaced by orders_v2"})
    assert deleted.status_code == 200, deleted.text
    app.state.dataset_cache.clear()
    gone = await client.get(f"/api/v1/datasets/{dataset_id}")
    assert gone.status_code == 404 and "replaced by orders_v2" in gone.json()["error"]["message"]

    restored = await client.post("/api/v1/datasets", json=_orders())
    assert restored.status_code == 201 and restored.json()["id"] == dataset_id
    assert restored.json()["deleted_at"] is None
    assert await _cold_read_is_fresh(app, client, engine, dataset_id) == restored.content


async def test_a_dataset_lineage_creates_in_bulk_is_answered_fresh_on_its_first_read(
    app: FastAPI, client: httpx.AsyncClient, engine: Engine
) -> None:
    event = {
        "eventType": "COMPLETE",
        "eventTime": "2026-12-07T01:00:00Z",
        "producer": "https://example.com/nightly",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent",
        "run": {"runId": "0192c9c0-0000-7000-8000-000000000001"},
        "job": {"namespace": "airflow", "name": "nightly_revenue"},
        "inputs": [{"namespace": NS, "name": "shop.public.orders"}],
        "outputs": [
            {
                "namespace": NS,
                "name": "shop.marts.revenue_daily",
                "facets": {
                    "schema": {
                        "_producer": "https://example.com/nightly",
                        "_schemaURL": "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json",
                        "fields": [{"name": "day", "type": "date"}, {"name": "revenue_cents", "type": "bigint"}],
                    }
                },
            }
        ],
    }
    answer = await client.post("/api/v1/lineage", json=event)
    assert answer.status_code in (200, 201, 202), answer.text
    found = await client.get("/api/v1/datasets/by-name", params={"namespace": NS, "name": "shop.marts.revenue_daily"})
    dataset_id = found.json()["id"]
    assert _stored(engine, dataset_id) is None  # the bulk path stores none; the first read does
    body = await _cold_read_is_fresh(app, client, engine, dataset_id)
    assert body == found.content
    assert b'"revenue_cents"' in body


async def test_a_stored_answer_of_an_older_revision_never_replaces_a_newer_one(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    dataset_id = (await client.post("/api/v1/datasets", json=_orders())).json()["id"]
    with Session(engine) as session, session.begin():
        store_answer(session, dataset_id=dataset_id, revision=5, body=b"newer")
        store_answer(session, dataset_id=dataset_id, revision=4, body=b"older")
    assert _stored(engine, dataset_id) == (5, b"newer")
    # Revision 5 is not the dataset's (it is at 1): the stored answer is not served.
    response = await client.get(f"/api/v1/datasets/{dataset_id}")
    assert response.status_code == 200 and response.json()["revision"] == 1


async def test_a_cold_read_of_a_stored_answer_is_one_statement_outside_a_transaction_on_postgresql(
    app: FastAPI, client: httpx.AsyncClient, engine: Engine
) -> None:
    """BEGIN, the read and COMMIT are three round trips; the stored answer needs one (PostgreSQL: on SQLite there
    are no round trips to save, and the read stays in its transaction)."""
    dataset_id = (await client.post("/api/v1/datasets", json=_orders())).json()["id"]
    served: Engine = app.state.engine
    statements: list[str] = []
    autocommit: list[bool] = []  # psycopg sends BEGIN (and later COMMIT) only for a connection not in autocommit

    def on_statement(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)
        autocommit.append(bool(getattr(conn.connection.driver_connection, "autocommit", False)))

    event.listen(served, "before_cursor_execute", on_statement)
    try:
        app.state.dataset_cache.clear()
        cold = await client.get(f"/api/v1/datasets/{dataset_id}")
    finally:
        event.remove(served, "before_cursor_execute", on_statement)
    assert cold.status_code == 200 and cold.json()["id"] == dataset_id
    reads = [s for s in statements if "dataset_answers" in s]
    assert len(reads) == 1, statements
    if served.dialect.name == "postgresql":
        assert statements == reads, "a stored answer costs exactly one statement"
        assert autocommit == [True], "and no transaction: no BEGIN before it, no COMMIT after it"
        connection_level = served.raw_connection()
        try:  # the pooled connection went back without a transaction left open or its autocommit left on
            assert connection_level.driver_connection.autocommit is False  # type: ignore[union-attr]
        finally:
            connection_level.close()
