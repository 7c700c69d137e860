"""The catalog REST API through httpx + ASGITransport, on both databases."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

pytestmark = pytest.mark.anyio

PLAY = {
    "namespace": "kafka://kafka.streaming.internal:9092",
    "name": "playback.events",
    "kind": "topic",
    "format": "avro",
    "source_description": "Every play, pause, stop and seek.",
    "fields": [
        {"name": "event_id", "type": "string", "nullable": False, "field_id": 1},
        {
            "name": "device",
            "type": "struct<os:string>",
            "field_id": 2,
            "fields": [{"name": "os", "type": "string", "field_id": 3}],
        },
        {"name": "member_id", "type": "long", "tags": ["pii"], "field_id": 4},
    ],
    "tags": ["streaming", "tier-1"],
    "owners": [{"name": "team:playback-data"}, {"name": "alice@streamco.example", "role": "data_steward"}],
    "properties": {"retention_days": "7"},
}


async def register(client: httpx.AsyncClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post("/api/v1/datasets", json=body or PLAY)
    assert response.status_code == 201, response.text
    return response.json()


async def test_register_and_read_back_by_id_and_by_name(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/datasets", json=PLAY)
    assert response.status_code == 201
    created = response.json()
    assert response.headers["location"] == f"/api/v1/datasets/{created['id']}"
    assert response.headers["etag"] == f'"{created["id"]}.1"'
    assert [f["path"] for f in created["fields"]] == ["event_id", "device", "device.os", "member_id"]
    assert created["source"] == "manual" and created["source_kind"] == "manual"
    assert created["tags"] == ["streaming", "tier-1"]
    assert {"name": "alice@streamco.example", "role": "data_steward"} in created["owners"]

    by_id = await client.get(f"/api/v1/datasets/{created['id']}")
    by_name = await client.get(
        "/api/v1/datasets/by-name", params={"namespace": PLAY["namespace"], "name": PLAY["name"]}
    )
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json() == created
    member = next(f for f in by_id.json()["fields"] if f["path"] == "member_id")
    assert member["tags"] == ["pii"] and member["normalized_type"] == "long"


async def test_if_none_match_answers_304(client: httpx.AsyncClient) -> None:
    created = await register(client)
    first = await client.get(f"/api/v1/datasets/{created['id']}")
    again = await client.get(f"/api/v1/datasets/{created['id']}", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["etag"] == first.headers["etag"]


async def test_patch_with_etag_then_stale_etag_is_412(client: httpx.AsyncClient) -> None:
    created = await register(client)
    url = f"/api/v1/datasets/{created['id']}"
    etag = (await client.get(url)).headers["etag"]
    patch = {
        "description": "All playback events",
        "tags": ["streaming", "certified"],
        "fields": {"device.os": {"description": "OS family", "tags": ["device"]}},
    }
    response = await client.patch(url, json=patch, headers={"If-Match": etag})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["description"] == "All playback events"
    assert body["tags"] == ["certified", "streaming"]
    os_field = next(f for f in body["fields"] if f["path"] == "device.os")
    assert os_field["description"] == "OS family" and os_field["tags"] == ["device"]
    assert response.headers["etag"] != etag

    stale = await client.patch(url, json={"description": "lost update"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert "changed since you read it" in stale.json()["error"]["message"]
    assert (await client.get(url)).json()["description"] == "All playback events"


async def test_patch_without_if_match_is_428(client: httpx.AsyncClient) -> None:
    created = await register(client)
    response = await client.patch(f"/api/v1/datasets/{created['id']}", json={"description": "x"})
    assert response.status_code == 428
    assert "If-Match" in response.json()["error"]["message"]


async def test_get_reflects_a_write_immediately_despite_the_cache(client: httpx.AsyncClient) -> None:
    created = await register(client)
    url = f"/api/v1/datasets/{created['id']}"
    await client.get(url)  # cached now
    await client.patch(url, json={"description": "changed"}, headers={"If-Match": "*"})
    assert (await client.get(url)).json()["description"] == "changed"


async def test_repeated_reads_are_answered_from_the_cache_byte_for_byte(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    created = await register(client)
    cache = app.state.dataset_cache
    url = f"/api/v1/datasets/{created['id']}"
    first, first_list = await client.get(url), await client.get("/api/v1/datasets", params={"limit": 5})
    hits = cache.hits
    second, second_list = await client.get(url), await client.get("/api/v1/datasets", params={"limit": 5})
    assert cache.hits == hits + 2
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    assert second_list.content == first_list.content
    assert second.headers["content-type"] == "application/json"
    other = await client.get("/api/v1/datasets", params={"limit": 5, "tag": "nope"})
    assert other.json()["total"] == 0, "another query string is another cache entry"


async def test_cached_list_pages_reflect_writes(client: httpx.AsyncClient) -> None:
    created = await register(client)
    first = (await client.get("/api/v1/datasets", params={"limit": 10})).json()
    assert first["items"][0]["description"] is None
    await client.patch(
        f"/api/v1/datasets/{created['id']}", json={"description": "now described"}, headers={"If-Match": "*"}
    )
    again = (await client.get("/api/v1/datasets", params={"limit": 10})).json()
    assert again["items"][0]["description"] == "now described"
    await register(client, {**PLAY, "name": "playback.more"})
    assert (await client.get("/api/v1/datasets", params={"limit": 10})).json()["total"] == 2


async def test_removing_a_source_purges_its_deleted_datasets_from_cached_pages(client: httpx.AsyncClient) -> None:
    assert (
        await client.post("/api/v1/sources", json={"name": "s1", "kind": "manual", "namespace": "s1"})
    ).status_code == 201
    created = await register(client, {**PLAY, "source": "s1"})
    await client.delete(f"/api/v1/datasets/{created['id']}", params={"reason": "gone"})
    params = {"source": "s1", "include_deleted": True}
    assert (await client.get("/api/v1/datasets", params=params)).json()["total"] == 1  # now cached
    assert (await client.delete("/api/v1/sources/s1")).status_code == 204
    after = await client.get("/api/v1/datasets", params=params)
    assert after.status_code == 404 and "s1" in after.json()["error"]["message"]
    feed = (await client.get("/api/v1/change-events", params={"kind": "deleted"})).json()["items"]
    assert [e["payload"].get("purged") for e in feed] == [None, True]


async def test_schema_history_records_the_diff(client: httpx.AsyncClient) -> None:
    created = await register(client)
    url = f"/api/v1/datasets/{created['id']}"
    fields = [
        {"name": "event_id", "type": "string", "nullable": False, "field_id": 1},
        {
            "name": "device",
            "type": "struct<os_name:string>",
            "field_id": 2,
            "fields": [{"name": "os_name", "type": "string", "field_id": 3}],
        },
        {"name": "member_id", "type": "string", "field_id": 4},
        {"name": "country", "type": "string", "field_id": 5},
    ]
    response = await client.put(f"{url}/schema", json={"fields": fields})
    assert response.status_code == 200, response.text
    assert response.json()["schema_version"] == 2
    member = next(f for f in response.json()["fields"] if f["path"] == "member_id")
    assert member["tags"] == ["pii"], "user tags survive a schema change"

    history = (await client.get(f"{url}/schema-versions")).json()
    assert [v["version"] for v in history["items"]] == [2, 1]
    diff = history["items"][0]["diff"]
    assert diff["added"] == ["country"]
    assert diff["renamed"] == [{"field_id": 3, "old_path": "device.os", "new_path": "device.os_name"}]
    assert [r["path"] for r in diff["retyped"]] == ["device", "member_id"]
    oldest = (await client.get(f"{url}/schema-versions", params={"order": "oldest", "limit": 1})).json()
    assert oldest["items"][0]["version"] == 1 and oldest["next_cursor"]
    one = await client.get(f"{url}/schema-versions/1")
    assert [f["path"] for f in one.json()["fields"]] == ["event_id", "device", "device.os", "member_id"]

    same = await client.put(f"{url}/schema", json={"fields": fields})
    assert same.json()["schema_version"] == 2, "an identical schema adds no version"


async def test_delete_needs_a_reason_and_hides_the_dataset(client: httpx.AsyncClient) -> None:
    created = await register(client)
    url = f"/api/v1/datasets/{created['id']}"
    deleted = await client.delete(url, params={"reason": "topic retired"})
    assert deleted.status_code == 200
    assert deleted.json()["delete_reason"] == "topic retired"
    gone = await client.get(url)
    assert gone.status_code == 404 and "topic retired" in gone.json()["error"]["message"]
    assert (await client.get(url, params={"include_deleted": True})).status_code == 200
    listed = (await client.get("/api/v1/datasets")).json()
    assert listed["total"] == 0
    listed_all = (await client.get("/api/v1/datasets", params={"include_deleted": True})).json()
    assert listed_all["total"] == 1


async def test_list_filters_and_cursor_pages(client: httpx.AsyncClient) -> None:
    for i in range(5):
        await register(client, {**PLAY, "name": f"playback.t{i}", "tags": ["pii"] if i % 2 else []})
    page = (await client.get("/api/v1/datasets", params={"limit": 2})).json()
    assert page["total"] == 5 and len(page["items"]) == 2
    names = [d["name"] for d in page["items"]]
    while page["next_cursor"]:
        page = (await client.get("/api/v1/datasets", params={"limit": 2, "cursor": page["next_cursor"]})).json()
        names += [d["name"] for d in page["items"]]
    assert names == [f"playback.t{i}" for i in range(5)]
    tagged = (await client.get("/api/v1/datasets", params={"tag": "pii", "kind": "topic"})).json()
    assert [d["name"] for d in tagged["items"]] == ["playback.t1", "playback.t3"]
    assert "fields" not in tagged["items"][0] and tagged["items"][0]["field_count"] == 4
    by_owner = (await client.get("/api/v1/datasets", params={"owner": "team:playback-data", "source": "manual"})).json()
    assert by_owner["total"] == 5


async def test_sources_crud_never_returns_secrets(client: httpx.AsyncClient) -> None:
    body = {
        "name": "lake",
        "kind": "iceberg",
        "namespace": "iceberg://lake",
        "config": {"uri": "http://127.0.0.1:8181"},
        "secrets": {"credential": "client:s3cr3t"},
    }
    created = await client.post("/api/v1/sources", json=body)
    assert created.status_code == 201
    assert created.json()["secret_keys"] == ["credential"]
    assert "s3cr3t" not in created.text
    patched = await client.patch("/api/v1/sources/lake", json={"description": "prod lake", "secrets": {"token": "t"}})
    assert patched.json()["secret_keys"] == ["credential", "token"] and "s3cr3t" not in patched.text
    listed = await client.get("/api/v1/sources", params={"kind": "iceberg"})
    assert [s["name"] for s in listed.json()["items"]] == ["lake"] and "s3cr3t" not in listed.text
    assert (await client.delete("/api/v1/sources/lake")).status_code == 204
    assert (await client.get("/api/v1/sources/lake")).status_code == 404


async def test_change_feed_pages_with_next_after(client: httpx.AsyncClient) -> None:
    created = await register(client)
    await client.delete(f"/api/v1/datasets/{created['id']}", params={"reason": "x"})
    first = (await client.get("/api/v1/change-events", params={"limit": 1})).json()
    assert [e["kind"] for e in first["items"]] == ["created"]
    rest = (await client.get("/api/v1/change-events", params={"after": first["next_after"]})).json()
    assert [e["kind"] for e in rest["items"]] == ["deleted"]
    assert rest["items"][0]["payload"]["reason"] == "x"
    empty = (await client.get("/api/v1/change-events", params={"after": rest["next_after"]})).json()
    assert empty == {"items": [], "next_after": rest["next_after"]}
    only_deletes = (await client.get("/api/v1/change-events", params={"kind": "deleted"})).json()
    assert len(only_deletes["items"]) == 1


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_openapi_documents_the_api(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert {"/api/v1/datasets", "/api/v1/datasets/{dataset_id}", "/api/v1/sources", "/api/v1/change-events"} <= set(
        spec["paths"]
    )
