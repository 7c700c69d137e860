"""Edges declared by hand through ``POST /api/v1/lineage/edges`` and withdrawn through ``DELETE``: validated
against the catalog, shown by the queries with origin ``manual``, untouched by OpenLineage retirement, and
visible to as-of queries for the time they were declared; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from ol_events import BASE, column_lineage, dataset, run_event, schema

pytestmark = pytest.mark.anyio

NS = "postgres://db:5432"
URL = "/api/v1/lineage/edges"


async def _dataset(client: httpx.AsyncClient, name: str, *columns: str) -> None:
    answer = await client.post(
        "/api/v1/datasets",
        json={"namespace": NS, "name": name, "fields": [{"name": c, "type": "string"} for c in columns]},
    )
    assert answer.status_code == 201, answer.text


def _end(name: str, field: str | None = None) -> dict[str, Any]:
    return {"namespace": NS, "name": name, **({"field": field} if field else {})}


async def test_a_declared_column_edge_is_shown_with_its_provenance(client: httpx.AsyncClient) -> None:
    await _dataset(client, "sales.orders", "id", "amount")
    await _dataset(client, "finance.export", "order_id", "total")
    body = {
        "source": _end("sales.orders", "amount"),
        "target": _end("finance.export", "total"),
        "subtype": "transformation",
        "description": "copied by the finance team's nightly script",
        "producer": "alice@example.com",
    }
    answer = await client.post(URL, json=body)
    assert answer.status_code == 201, answer.text
    edge = answer.json()
    assert edge["level"] == "column" and edge["created"] is True
    assert edge["source"] == f"{NS}/sales.orders#amount" and edge["target"] == f"{NS}/finance.export#total"
    assert edge["origin"] == "manual" and edge["producer"] == "alice@example.com"
    assert edge["transformation_type"] == "DIRECT" and edge["subtype"] == "TRANSFORMATION"
    assert edge["job"] == "headwater/manual" and edge["retired_at"] is None

    graph = await client.get(
        "/api/v1/lineage/graph",
        params={"namespace": NS, "name": "sales.orders", "field": "amount", "direction": "downstream"},
    )
    assert graph.status_code == 200, graph.text
    [shown] = graph.json()["edges"]
    assert (shown["source"], shown["target"], shown["origin"], shown["producer"]) == (
        edge["source"],
        edge["target"],
        "manual",
        "alice@example.com",
    )
    impact = await client.get(
        "/api/v1/lineage/impact", params={"namespace": NS, "name": "sales.orders", "field": "amount"}
    )
    assert [(c["name"], c["field"]) for c in impact.json()["columns"]] == [("finance.export", "total")]
    only_events = await client.get(
        "/api/v1/lineage/impact",
        params={"namespace": NS, "name": "sales.orders", "field": "amount", "origin": "openlineage"},
    )
    assert only_events.json()["columns"] == []

    # Declaring it again refreshes it: one edge, same id, not created.
    again = await client.post(URL, json=body)
    assert again.status_code == 201
    assert again.json()["id"] == edge["id"] and again.json()["created"] is False


async def test_a_declared_dataset_edge_joins_dataset_walks(client: httpx.AsyncClient) -> None:
    await _dataset(client, "crm.accounts", "id")
    await _dataset(client, "bi.accounts", "id")
    answer = await client.post(
        URL, json={"source": _end("crm.accounts"), "target": _end("bi.accounts"), "job_name": "weekly-copy"}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["level"] == "dataset" and answer.json()["job"] == "headwater/weekly-copy"
    impact = await client.get("/api/v1/lineage/impact", params={"namespace": NS, "name": "crm.accounts"})
    assert [d["name"] for d in impact.json()["datasets"]] == ["bi.accounts"]
    assert [j["name"] for j in impact.json()["jobs"]] == ["weekly-copy"]


@pytest.mark.parametrize(
    ("change", "status", "field", "words"),
    [
        ({"source": _end("nope.table", "amount")}, 404, "source.name", "no dataset named 'nope.table'"),
        ({"target": _end("finance.export", "nope")}, 404, "target.field", "has no column 'nope'"),
        ({"target": _end("finance.export")}, 422, "target.field", "name a field on both ends or on neither"),
        ({"source": _end("finance.export", "total")}, 422, "target", "cannot join a node to itself"),
        ({"transformation_type": "SIDEWAYS"}, 422, "transformation_type", ""),
        ({"colour": "red"}, 422, "colour", "not a known field"),
    ],
)
async def test_declarations_naming_unknown_things_are_refused(
    client: httpx.AsyncClient, change: dict[str, Any], status: int, field: str, words: str
) -> None:
    await _dataset(client, "sales.orders", "id", "amount")
    await _dataset(client, "finance.export", "order_id", "total")
    body = {"source": _end("sales.orders", "amount"), "target": _end("finance.export", "total"), **change}
    answer = await client.post(URL, json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert words in error["message"]
    assert field in (error.get("detail") or {}).get("field", "") or field in error["message"]
    edges = await client.get("/api/v1/lineage/graph", params={"namespace": NS, "name": "sales.orders"})
    assert edges.json()["edges"] == []  # nothing half-written


async def test_a_dataset_edge_refuses_column_details(client: httpx.AsyncClient) -> None:
    await _dataset(client, "a.one", "x")
    await _dataset(client, "a.two", "x")
    answer = await client.post(URL, json={"source": _end("a.one"), "target": _end("a.two"), "subtype": "IDENTITY"})
    assert answer.status_code == 422
    assert answer.json()["error"]["detail"]["field"] == "subtype"


async def test_withdrawing_retires_the_edge_and_as_of_still_shows_it(client: httpx.AsyncClient) -> None:
    await _dataset(client, "sales.orders", "id", "amount")
    await _dataset(client, "finance.export", "order_id", "total")
    declared = await client.post(
        URL, json={"source": _end("sales.orders", "amount"), "target": _end("finance.export", "total")}
    )
    edge = declared.json()
    between = dt.datetime.fromisoformat(edge["last_seen"]) + dt.timedelta(microseconds=1)

    gone = await client.delete(f"{URL}/column/{edge['id']}")
    assert gone.status_code == 204, gone.text
    query = {"namespace": NS, "name": "sales.orders", "field": "amount"}
    now = await client.get("/api/v1/lineage/impact", params=query)
    assert now.json()["columns"] == []
    then = await client.get("/api/v1/lineage/impact", params={**query, "as_of": between.isoformat()})
    assert [c["field"] for c in then.json()["columns"]] == ["total"]

    twice = await client.delete(f"{URL}/column/{edge['id']}")
    assert twice.status_code == 404 and "no active" in twice.json()["error"]["message"]
    assert (await client.delete(f"{URL}/dataset/{edge['id']}")).status_code == 404
    assert (await client.delete(f"{URL}/table/{edge['id']}")).status_code == 422

    # Declaring it again brings it back.
    back = await client.post(
        URL, json={"source": _end("sales.orders", "amount"), "target": _end("finance.export", "total")}
    )
    assert back.json()["id"] == edge["id"] and back.json()["retired_at"] is None
    assert [c["field"] for c in (await client.get("/api/v1/lineage/impact", params=query)).json()["columns"]] == [
        "total"
    ]


async def test_edges_from_events_are_not_withdrawn_or_overwritten_by_hand(client: httpx.AsyncClient) -> None:
    ns = "hive://metastore:9083"
    event = run_event(
        "COMPLETE",
        job="etl",
        inputs=[dataset(ns, "db.src", schema=schema("a"))],
        outputs=[dataset(ns, "db.dst", schema=schema("a"), columnLineage=column_lineage({"a": [(ns, "db.src", "a")]}))],
    )
    assert (await client.post("/api/v1/lineage", json=event)).status_code == 201
    graph = await client.get(
        "/api/v1/lineage/graph", params={"namespace": ns, "name": "db.src", "field": "a", "direction": "downstream"}
    )
    assert [e["origin"] for e in graph.json()["edges"]] == ["openlineage"]
    same = {
        "source": {"namespace": ns, "name": "db.src", "field": "a"},
        "target": {"namespace": ns, "name": "db.dst", "field": "a"},
        "job_namespace": "spark",
        "job_name": "etl",
        "subtype": "IDENTITY",
    }
    clash = await client.post(URL, json=same)
    assert clash.status_code == 409 and "already known from openlineage" in clash.json()["error"]["message"]
    edge_id = clash.json()["error"]["detail"]["edge_id"]
    refused = await client.delete(f"{URL}/column/{edge_id}")
    assert refused.status_code == 409 and "only edges declared by hand" in refused.json()["error"]["message"]


async def test_openlineage_retirement_leaves_declared_edges_alone(client: httpx.AsyncClient) -> None:
    ns = "hive://metastore:9083"

    def complete(minutes: float, columns: dict[str, list[tuple[str, str, str]]]) -> dict[str, Any]:
        return run_event(
            "COMPLETE",
            job="etl",
            minutes=minutes,
            inputs=[dataset(ns, "db.src", schema=schema("a", "b"))],
            outputs=[dataset(ns, "db.dst", schema=schema("a", "b"), columnLineage=column_lineage(columns))],
        )

    assert (await client.post("/api/v1/lineage", json=complete(0, {"a": [(ns, "db.src", "a")]}))).status_code == 201
    # A person adds b -> b to the same job (the producer does not report it).
    declared = await client.post(
        URL,
        json={
            "source": {"namespace": ns, "name": "db.src", "field": "b"},
            "target": {"namespace": ns, "name": "db.dst", "field": "b"},
            "job_namespace": "spark",
            "job_name": "etl",
        },
    )
    assert declared.status_code == 201, declared.text
    # A later run (after the declaration) states its column lineage again without b -> b: the event's own
    # edges are re-stated, the declared one is not retired.
    later = (dt.datetime.now(dt.UTC) - BASE).total_seconds() / 60 + 10
    assert (await client.post("/api/v1/lineage", json=complete(later, {"a": [(ns, "db.src", "a")]}))).status_code == 201
    graph = await client.get("/api/v1/lineage/graph", params={"namespace": ns, "name": "db.dst", "field": "b"})
    assert [(e["origin"], e["retired_at"]) for e in graph.json()["edges"]] == [("manual", None)]
