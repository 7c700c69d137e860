"""Two datasets that are one, merged by an admin and unmerged again.

The scenario: a Glue Spark job (an OpenLineage integration too old to send a symlinks facet) cleans orders and
writes them by their S3 path; a dbt project reads the same table by its Hive name and builds a revenue mart. The
catalog holds two datasets for one table, so the impact of the raw orders stops at the S3 path and the mart looks
unrelated to it. A data steward documented and tagged the S3 one. An admin merges the S3 dataset into the Hive one;
the next nightly run, still naming the path, lands on the merged dataset; then the merge is undone.
"""

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
KAFKA = "kafka://broker.prod:9092"
CLEAN_PATH = "warehouse/sales/orders_clean"


async def _send(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
    answer = await client.post(
        "/api/v1/lineage/batch", content=orjson.dumps(events), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 201, answer.text


def _glue_run(minutes: float, *, extra_column: bool = False, job: str = "glue.clean_orders") -> list[dict[str, Any]]:
    columns = ["order_id", "customer_id", "amount", "day"]
    mapping = {
        "order_id": [(KAFKA, "orders", "order_id")],
        "customer_id": [(KAFKA, "orders", "customer_id")],
        "amount": [(KAFKA, "orders", "amount_cents")],
        "day": [(KAFKA, "orders", "created_at")],
    }
    if extra_column:  # the job starts writing the currency too: a column the Hive table does not have
        columns.append("currency")
        mapping["currency"] = [(KAFKA, "orders", "currency")]
    topic = ["order_id", "customer_id", "amount_cents", "created_at", "currency"]
    io = {
        "inputs": [dataset(KAFKA, "orders", schema=schema(*topic))],
        "outputs": [dataset(S3, CLEAN_PATH, schema=schema(*columns), columnLineage=column_lineage(mapping))],
    }
    run = str(uuid.uuid4())
    return [
        run_event("START", job=job, run_id=run, minutes=minutes, job_namespace="glue", **io),
        run_event("COMPLETE", job=job, run_id=run, minutes=minutes + 4, job_namespace="glue", **io),
    ]


def _dbt_run(minutes: float) -> list[dict[str, Any]]:
    io = {
        "inputs": [dataset(HIVE, "sales.orders_clean", schema=schema("order_id", "customer_id", "amount", "day"))],
        "outputs": [
            dataset(
                HIVE,
                "marts.daily_revenue",
                schema=schema("day", "revenue"),
                columnLineage=column_lineage(
                    {"day": [(HIVE, "sales.orders_clean", "day")], "revenue": [(HIVE, "sales.orders_clean", "amount")]}
                ),
            )
        ],
    }
    return [run_event("COMPLETE", job="marts.daily_revenue", job_namespace="dbt", minutes=minutes, **io)]


async def _by_name(client: httpx.AsyncClient, namespace: str, name: str) -> httpx.Response:
    return await client.get("/api/v1/datasets/by-name", params={"namespace": namespace, "name": name})


async def _impact_names(client: httpx.AsyncClient) -> set[str]:
    impact = await client.get(
        "/api/v1/lineage/impact", params={"namespace": KAFKA, "name": "orders", "field": "amount_cents"}
    )
    assert impact.status_code == 200, impact.text
    return {d["name"] for d in impact.json()["datasets"]}


@pytest.fixture
async def two_of_one(client: httpx.AsyncClient) -> tuple[int, int]:
    """The lake after a Glue run and a dbt run: (the Hive dataset's id, the S3 one's)."""
    await _send(client, [*_glue_run(0), *_dbt_run(10)])
    hive = (await _by_name(client, HIVE, "sales.orders_clean")).json()
    s3 = (await _by_name(client, S3, CLEAN_PATH)).json()
    assert hive["id"] != s3["id"]
    etag = (await client.get(f"/api/v1/datasets/{s3['id']}")).headers["etag"]
    edit = await client.patch(
        f"/api/v1/datasets/{s3['id']}",
        json={
            "description": "Orders after dedup and currency normalisation.",
            "tags": ["finance", "tier-1"],
            "owners": [{"name": "sales-data", "role": "technical_owner"}],
            "fields": {"customer_id": {"description": "The buyer.", "tags": ["pii"]}},
        },
        headers={"if-match": etag},
    )
    assert edit.status_code == 200, edit.text
    return hive["id"], s3["id"]


async def test_merging_makes_one_node_and_undo_splits_it_again(
    client: httpx.AsyncClient, two_of_one: tuple[int, int]
) -> None:
    hive_id, s3_id = two_of_one
    assert await _impact_names(client) == {CLEAN_PATH}  # the dbt mart looks unrelated to the raw orders

    merged = await client.post(
        f"/api/v1/datasets/{hive_id}/merges", json={"duplicate_id": s3_id, "reason": "Glue writes the Hive table"}
    )
    assert merged.status_code == 201, merged.text
    merge = merged.json()
    assert merge["into_id"] == hive_id and merge["duplicate_id"] == s3_id and merge["undone_at"] is None
    assert merge["moved"]["column_edges"] == 4 and merge["moved"]["jobs"] == 1 and merge["unmoved_columns"] == []

    # Every name reaches the one dataset, in reads and in lineage; the impact of the raw topic now spans both jobs.
    by_path = await _by_name(client, S3, CLEAN_PATH)
    assert by_path.status_code == 200 and by_path.json()["id"] == hive_id
    assert await _impact_names(client) == {"sales.orders_clean", "marts.daily_revenue"}
    upstream = await client.get(
        "/api/v1/lineage/graph",
        params={"namespace": HIVE, "name": "marts.daily_revenue", "field": "revenue", "direction": "upstream"},
    )
    assert ("orders", "amount_cents") in {(n["name"], n["field"]) for n in upstream.json()["nodes"]}
    aliases = (await client.get(f"/api/v1/datasets/{hive_id}/aliases")).json()["items"]
    assert {"namespace": S3, "name": CLEAN_PATH} in aliases

    # What the steward wrote on the S3 dataset filled in the Hive one.
    hive = (await client.get(f"/api/v1/datasets/{hive_id}")).json()
    assert hive["description"] == "Orders after dedup and currency normalisation."
    assert {"finance", "tier-1"} <= set(hive["tags"]) and hive["owners"][0]["name"] == "sales-data"
    buyer = next(f for f in hive["fields"] if f["path"] == "customer_id")
    assert buyer["description"] == "The buyer." and buyer["tags"] == ["pii"]

    # The duplicate answers where it went.
    gone = await client.get(f"/api/v1/datasets/{s3_id}")
    assert gone.status_code == 404 and gone.json()["error"]["detail"]["merged_into"] == hive_id
    kept = await client.get(f"/api/v1/datasets/{s3_id}", params={"include_deleted": "true"})
    assert kept.json()["merged_into"] == hive_id

    # The next nightly run and a backfill job still name the path: they land on the merged dataset, no third
    # dataset appears.
    await _send(client, [*_glue_run(60), *_glue_run(70, job="glue.backfill_orders")])
    listed = (await client.get("/api/v1/datasets", params={"q": "orders_clean", "limit": 50})).json()
    assert [d["id"] for d in listed["items"] if "orders_clean" in d["name"]] == [hive_id]

    undone = await client.post(f"/api/v1/dataset-merges/{merge['id']}/undo")
    assert undone.status_code == 200, undone.text
    assert undone.json()["undone_by"] and undone.json()["undone_at"]
    # The S3 dataset is itself again, with what the steward wrote; the Hive one lost only what the merge copied.
    s3 = await client.get(f"/api/v1/datasets/{s3_id}")
    assert s3.status_code == 200 and s3.json()["merged_into"] is None
    assert s3.json()["description"] == "Orders after dedup and currency normalisation."
    assert (await _by_name(client, S3, CLEAN_PATH)).json()["id"] == s3_id
    hive = (await client.get(f"/api/v1/datasets/{hive_id}")).json()
    assert hive["description"] is None and hive["tags"] == [] and hive["owners"] == []
    assert next(f for f in hive["fields"] if f["path"] == "customer_id")["tags"] == []
    # The edges the merge moved went back (the nightly run confirmed them meanwhile); the backfill job's, recorded
    # through the path while merged, stay with the Hive dataset (documented): the impact reaches both names.
    assert await _impact_names(client) == {CLEAN_PATH, "sales.orders_clean", "marts.daily_revenue"}

    again = await client.post(f"/api/v1/dataset-merges/{merge['id']}/undo")
    assert again.status_code == 409 and "undone" in again.json()["error"]["message"]
    feed = (await client.get("/api/v1/change-events", params={"kind": ["merged", "unmerged"]})).json()["items"]
    assert [(c["kind"], c["entity_id"]) for c in feed] == [
        ("merged", min(hive_id, s3_id)),
        ("merged", max(hive_id, s3_id)),
        ("unmerged", min(hive_id, s3_id)),
        ("unmerged", max(hive_id, s3_id)),
    ]
    assert feed[0]["payload"]["merge_id"] == merge["id"] and feed[0]["payload"]["duplicate"] == s3_id


async def test_a_column_only_the_duplicate_has_keeps_its_lineage_there(client: httpx.AsyncClient) -> None:
    await _send(client, [*_glue_run(0, extra_column=True), *_dbt_run(10)])
    hive_id = (await _by_name(client, HIVE, "sales.orders_clean")).json()["id"]
    s3_id = (await _by_name(client, S3, CLEAN_PATH)).json()["id"]
    merged = await client.post(f"/api/v1/datasets/{hive_id}/merges", json={"duplicate_id": s3_id})
    assert merged.status_code == 201, merged.text
    assert merged.json()["unmoved_columns"] == ["currency"] and merged.json()["moved"]["column_edges"] == 4
    currency = await client.get(
        "/api/v1/lineage/impact", params={"namespace": KAFKA, "name": "orders", "field": "currency"}
    )
    assert currency.status_code == 200
    assert [(d["id"], d["name"]) for d in currency.json()["datasets"]] == [(s3_id, CLEAN_PATH)]


async def test_merges_refuse_what_would_split_or_hide(client: httpx.AsyncClient, two_of_one: tuple[int, int]) -> None:
    hive_id, s3_id = two_of_one
    mart_id = (await _by_name(client, HIVE, "marts.daily_revenue")).json()["id"]
    itself = await client.post(f"/api/v1/datasets/{hive_id}/merges", json={"duplicate_id": hive_id})
    assert itself.status_code == 400 and "itself" in itself.json()["error"]["message"]
    missing = await client.post(f"/api/v1/datasets/{hive_id}/merges", json={"duplicate_id": 987654})
    assert missing.status_code == 404
    first = await client.post(f"/api/v1/datasets/{hive_id}/merges", json={"duplicate_id": s3_id})
    assert first.status_code == 201
    twice = await client.post(f"/api/v1/datasets/{mart_id}/merges", json={"duplicate_id": s3_id})
    assert twice.status_code == 409 and twice.json()["error"]["detail"]["merged_into"] == hive_id
    into_merged = await client.post(f"/api/v1/datasets/{s3_id}/merges", json={"duplicate_id": mart_id})
    assert into_merged.status_code == 409 and "merge into that one" in into_merged.json()["error"]["message"]

    # A later merge of the same dataset must be undone first; the first merge's names then follow the chain.
    later = await client.post(f"/api/v1/datasets/{mart_id}/merges", json={"duplicate_id": hive_id})
    assert later.status_code == 201
    assert (await _by_name(client, S3, CLEAN_PATH)).json()["id"] == mart_id  # one step, not two
    blocked = await client.post(f"/api/v1/dataset-merges/{first.json()['id']}/undo")
    assert blocked.status_code == 409 and blocked.json()["error"]["detail"]["undo_first"] == later.json()["id"]
    assert (await client.post(f"/api/v1/dataset-merges/{later.json()['id']}/undo")).status_code == 200
    assert (await _by_name(client, S3, CLEAN_PATH)).json()["id"] == hive_id
    assert (await client.post(f"/api/v1/dataset-merges/{first.json()['id']}/undo")).status_code == 200
    assert (await _by_name(client, S3, CLEAN_PATH)).json()["id"] == s3_id
    listed = (await client.get(f"/api/v1/datasets/{hive_id}/merges")).json()["items"]
    assert [m["id"] for m in listed] == [later.json()["id"], first.json()["id"]]
    assert all(m["undone_at"] for m in listed)
