"""A dataset is found by the names producers use for it: a Spark job wrote ``sales.daily_revenue`` by its storage
path (``s3://acme-lake/landing/zone7/dailyrev``) and named the table in a symlinks facet; someone who only knows
the path, from a Spark UI or a bucket listing, types a piece of it into search and finds the table."""

from __future__ import annotations

import uuid

import httpx
import orjson
import pytest
from fastapi import FastAPI

pytestmark = pytest.mark.anyio

HIVE = "hive://metastore.prod:9083"


async def test_a_word_of_a_storage_path_finds_the_table_it_is_filed_under(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    output = {
        "namespace": "s3://acme-lake",
        "name": "landing/zone7/dailyrev",
        "facets": {
            "symlinks": {"identifiers": [{"namespace": HIVE, "name": "sales.daily_revenue", "type": "TABLE"}]},
            "schema": {"fields": [{"name": "day", "type": "date"}, {"name": "revenue", "type": "decimal(18,2)"}]},
        },
    }
    event = {
        "eventType": "COMPLETE",
        "eventTime": "2026-12-01T04:00:00Z",
        "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.24.2/integration/spark",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "spark", "name": "daily_revenue.execute_insert_into_hadoop_fs_relation_command"},
        "inputs": [],
        "outputs": [output],
    }
    sent = await client.post(
        "/api/v1/lineage", content=orjson.dumps(event), headers={"content-type": "application/json"}
    )
    assert sent.status_code == 201, sent.text
    app.state.search_indexer.catch_up()
    for query in ("zone7", "dailyrev"):
        found = (await client.get("/api/v1/search", params={"q": query})).json()
        assert [(h["namespace"], h["name"]) for h in found["items"]][:1] == [(HIVE, "sales.daily_revenue")], query


async def test_a_name_a_later_job_uses_is_searchable_at_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    """The table is known first (a dbt run reads it by its Hive name); a Spark backfill writes it by a path a week
    later. The path's words find the table as soon as the indexer catches up, without waiting for another change
    to the table."""
    dbt = {
        "eventType": "COMPLETE",
        "eventTime": "2026-12-01T04:00:00Z",
        "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.24.2/integration/dbt",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "dbt", "name": "marts.finance.revenue"},
        "inputs": [{"namespace": HIVE, "name": "sales.refunds", "facets": {}}],
        "outputs": [],
    }
    backfill = {
        **dbt,
        "eventTime": "2026-12-08T04:00:00Z",
        "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.24.2/integration/spark",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "spark", "name": "refunds_backfill.execute_insert_into_hadoop_fs_relation_command"},
        "inputs": [],
        "outputs": [
            {
                "namespace": "s3://acme-lake",
                "name": "backfill/q3rebuild/refundz",
                "facets": {
                    "symlinks": {"identifiers": [{"namespace": HIVE, "name": "sales.refunds", "type": "TABLE"}]}
                },
            }
        ],
    }
    for event in (dbt, backfill):
        sent = await client.post(
            "/api/v1/lineage", content=orjson.dumps(event), headers={"content-type": "application/json"}
        )
        assert sent.status_code == 201, sent.text
        app.state.search_indexer.catch_up()
    found = (await client.get("/api/v1/search", params={"q": "q3rebuild"})).json()
    assert [(h["namespace"], h["name"]) for h in found["items"]] == [(HIVE, "sales.refunds")]
    changes = (await client.get("/api/v1/change-events", params={"kind": "metadata_updated"})).json()["items"]
    assert [c["payload"] for c in changes if c["name"] == "sales.refunds"] == [
        {"by": "lineage", "changed": ["aliases"]}
    ]
