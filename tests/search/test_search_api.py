"""The search API over HTTP: results, filters, facets, pages, suggest, status, and bad input (4xx naming it)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

pytestmark = pytest.mark.anyio


async def register(client: httpx.AsyncClient, name: str, **extra: object) -> int:
    """Register a dataset through the API; its id."""
    body = {"name": name, "fields": [{"name": "id", "type": "long"}, {"name": "title_id", "type": "long"}], **extra}
    response = await client.post("/api/v1/datasets", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def test_search_finds_ranks_filters_and_pages(client: httpx.AsyncClient, app: FastAPI) -> None:
    await register(client, "analytics.title_daily_views", tags=["kpi"], description="Views per title per day")
    await register(client, "analytics.title_daily_views_backup")
    await register(client, "raw.play_events", tags=["pii"], format="avro", kind="topic")
    app.state.search_indexer.catch_up()

    response = await client.get("/api/v1/search", params={"q": "title_daily_views"})
    assert response.status_code == 200
    body = response.json()
    assert [i["name"] for i in body["items"]] == ["analytics.title_daily_views", "analytics.title_daily_views_backup"]
    assert body["items"][0]["match"] == 0 and "<mark>title</mark>" in body["items"][0]["highlights"]["name"][0]
    assert body["total"] == 2
    assert {f["value"]: f["count"] for f in body["facets"]["tag"]} == {"kpi": 1}

    response = await client.get("/api/v1/search", params={"q": "events", "tag": "pii", "kind": "topic"})
    assert [i["name"] for i in response.json()["items"]] == ["raw.play_events"]

    first = (await client.get("/api/v1/search", params={"sort": "name", "limit": 2})).json()
    second = (
        await client.get("/api/v1/search", params={"sort": "name", "limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [i["name"] for i in first["items"] + second["items"]] == [
        "analytics.title_daily_views",
        "analytics.title_daily_views_backup",
        "raw.play_events",
    ]
    assert second["next_cursor"] is None

    columns = (await client.get("/api/v1/search", params={"q": "title_id", "type": "column"})).json()
    assert {i["dataset_name"] for i in columns["items"]} == {
        "analytics.title_daily_views",
        "analytics.title_daily_views_backup",
        "raw.play_events",
    }


async def test_suggest_and_status(client: httpx.AsyncClient, app: FastAPI) -> None:
    await register(client, "analytics.title_daily_views")
    status = (await client.get("/api/v1/search/status")).json()
    assert status["backend"] == "sql" and status["lag"] == 1 and not status["in_sync"]
    assert status["catalog"] == {"datasets": 1, "columns": 2}
    app.state.search_indexer.catch_up()
    status = (await client.get("/api/v1/search/status")).json()
    assert status["lag"] == 0 and status["in_sync"] and status["documents"] == {"dataset": 1, "column": 2}
    response = await client.get("/api/v1/search/suggest", params={"prefix": "analytics.t"})
    assert response.status_code == 200
    assert [s["text"] for s in response.json()["items"]] == ["analytics.title_daily_views"]


@pytest.mark.parametrize(
    ("params", "status", "named"),
    [
        ({"sort": "popularity"}, 400, "sort"),
        ({"cursor": "not-a-cursor"}, 400, "cursor"),
        ({"limit": "0"}, 422, "limit"),
        ({"limit": "101"}, 422, "limit"),
        ({"kind": "spreadsheet"}, 422, "kind"),
        ({"type": "job"}, 422, "type"),
        ({"q": "x" * 513}, 422, "q"),
        ({"facets": "maybe"}, 422, "facets"),
    ],
)
async def test_bad_search_input_is_a_4xx_naming_the_field(
    client: httpx.AsyncClient, params: dict[str, str], status: int, named: str
) -> None:
    response = await client.get("/api/v1/search", params=params)
    assert response.status_code == status, response.text
    assert named in response.json()["error"]["message"]


async def test_a_cursor_from_another_sort_is_refused(client: httpx.AsyncClient, app: FastAPI) -> None:
    for i in range(3):
        await register(client, f"db.t{i}")
    app.state.search_indexer.catch_up()
    page = (await client.get("/api/v1/search", params={"sort": "name", "limit": 1})).json()
    response = await client.get("/api/v1/search", params={"sort": "-name", "cursor": page["next_cursor"]})
    assert response.status_code == 400 and "cursor" in response.json()["error"]["message"]


async def test_bad_suggest_input(client: httpx.AsyncClient) -> None:
    for params in ({}, {"prefix": ""}, {"prefix": "   "}, {"prefix": "a", "limit": "0"}):
        response = await client.get("/api/v1/search/suggest", params=params)
        assert 400 <= response.status_code < 500, (params, response.text)
        assert "prefix" in response.json()["error"]["message"] or "limit" in response.json()["error"]["message"]


async def test_typed_syntax_and_partial_answers_through_rest_graphql_and_the_ui(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await register(client, "crm.customers", tags=["pii"], owners=[{"name": "alice"}], description="Customer e-mails")
    await register(client, "marketing.email_sends", kind="topic", description="Every e-mail sent")
    await register(client, "billing.subscription_cancellations", description="One row per cancelled subscription")
    app.state.search_indexer.catch_up()

    body = (await client.get("/api/v1/search", params={"q": "tag:pii owner:alice mails"})).json()
    assert [i["name"] for i in body["items"]] == ["crm.customers"] and not body["partial"]
    assert [i["name"] for i in (await client.get("/api/v1/search", params={"q": "kind:topic"})).json()["items"]] == [
        "marketing.email_sends"
    ]
    partial = (await client.get("/api/v1/search", params={"q": "who cancelled"})).json()
    assert partial["partial"] and partial["dropped"] == ["who"] and partial["searched"] == "cancelled"
    assert partial["suggestions"] == ["cancelled"]
    assert [i["name"] for i in partial["items"]] == ["billing.subscription_cancellations"]

    query = """query($q: String) { search(query: $q) { ... on SearchPage {
        partial dropped searched suggestions items { name } } } }"""
    response = await client.post("/graphql", json={"query": query, "variables": {"q": "who cancelled"}})
    page = response.json()["data"]["search"]
    assert page["partial"] and page["dropped"] == ["who"] and page["suggestions"] == ["cancelled"]
    assert [i["name"] for i in page["items"]] == ["billing.subscription_cancellations"]
    typed = await client.post("/graphql", json={"query": query, "variables": {"q": "tag:pii"}})
    assert [i["name"] for i in typed.json()["data"]["search"]["items"]] == ["crm.customers"]

    ui = await client.get("/ui", params={"q": "who cancelled"})
    assert ui.status_code == 200 and "No dataset matches every word" in ui.text and "<del>who</del>" in ui.text
    assert 'href="/ui?q=cancelled&amp;type=dataset"' in ui.text  # the suggested query, one click away
    assert "tag:pii" in ui.text and "owner:alice" in ui.text  # the syntax help line
    narrowed = await client.get("/ui", params={"q": "tag:pii mails"})
    assert "crm.customers" in narrowed.text and "marketing.email_sends" not in narrowed.text
