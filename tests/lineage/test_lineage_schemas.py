"""Schemas that come from lineage events follow them: a schema facet states the whole schema at its run, so
columns leave, come back and are renamed (by a field id or by the event's own column lineage) in new schema
versions; events delivered late, alone or in a batch, never roll a newer schema back. On SQLite and PostgreSQL,
through ``POST /api/v1/lineage``."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from ol_events import column_lineage, dataset, run_event, schema

pytestmark = pytest.mark.anyio

HIVE = "hive://metastore:9083"
SESSIONS = "curated.sessions"


async def post(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    response = await client.post(
        "/api/v1/lineage", content=orjson.dumps(body), headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text
    return response


def _write(minutes: float, *columns: str | tuple[str, str] | dict[str, Any], **facets: Any) -> dict[str, Any]:
    """A COMPLETE event of the job writing curated.sessions with this schema (dicts are raw schema fields)."""
    fields = [c if isinstance(c, dict) else schema(c)["fields"][0] for c in columns]
    return run_event(
        "COMPLETE",
        job="sessions_daily",
        minutes=minutes,
        inputs=[dataset(HIVE, "raw.playback", schema=schema("member_id", "ts", "title"))],
        outputs=[dataset(HIVE, SESSIONS, schema={**schema(), "fields": fields}, **facets)],
    )


async def _dataset(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/v1/datasets/by-name", params={"namespace": HIVE, "name": SESSIONS})
    assert response.status_code == 200, response.text
    return response.json()


async def _paths(client: httpx.AsyncClient) -> list[str]:
    return [f["path"] for f in (await _dataset(client))["fields"]]


async def _versions(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    found = await _dataset(client)
    page = (await client.get(f"/api/v1/datasets/{found['id']}/schema-versions", params={"limit": 100})).json()
    return sorted(page["items"], key=lambda v: v["version"])


async def _describe(client: httpx.AsyncClient, path: str, text: str) -> None:
    found = await _dataset(client)
    response = await client.patch(
        f"/api/v1/datasets/{found['id']}",
        content=orjson.dumps({"fields": {path: {"description": text, "tags": ["pii"]}}}),
        headers={"content-type": "application/json", "if-match": f'"{found["id"]}.{found["revision"]}"'},
    )
    assert response.status_code == 200, response.text


async def test_a_dropped_column_leaves_and_a_new_one_arrives(client: httpx.AsyncClient) -> None:
    await post(client, _write(0, "a", "b"))
    await post(client, _write(10, "a"))
    assert await _paths(client) == ["a"]
    await post(client, _write(20, "a", "c"))
    assert await _paths(client) == ["a", "c"]
    versions = await _versions(client)
    assert [[f["path"] for f in v["fields"]] for v in versions] == [["a", "b"], ["a"], ["a", "c"]]
    assert versions[1]["diff"]["removed"] == ["b"] and versions[2]["diff"]["added"] == ["c"]


async def test_a_dropped_column_can_come_back(client: httpx.AsyncClient) -> None:
    await post(client, _write(0, "a", "b"))
    await post(client, _write(10, "a"))
    await post(client, _write(20, "a", "b"))
    assert await _paths(client) == ["a", "b"]
    assert len(await _versions(client)) == 3


async def test_late_events_never_roll_a_newer_schema_back(client: httpx.AsyncClient) -> None:
    # Delivered newest first, one by one: the older statements change nothing.
    await post(client, _write(20, "a", "c"))
    await post(client, _write(0, "a", "b"))
    await post(client, _write(10, "a"))
    assert await _paths(client) == ["a", "c"]
    assert len(await _versions(client)) == 1


async def test_a_late_event_does_not_undo_a_restatement_of_the_schema(client: httpx.AsyncClient) -> None:
    await post(client, _write(0, "a", "b"))
    await post(client, _write(10, "a"))
    await post(client, _write(30, "a"))  # the same schema again: no new version, but newer
    await post(client, _write(20, "a", "b"))  # delivered late: older than the restatement
    assert await _paths(client) == ["a"]
    # The same inside one batch.
    await post(client, [_write(40, "a", "d"), _write(35, "a")])
    assert await _paths(client) == ["a", "d"]
    assert len(await _versions(client)) == 3


async def test_a_batch_out_of_order_ends_at_its_newest_schema(client: httpx.AsyncClient) -> None:
    await post(client, [_write(10, "a"), _write(20, "a", "c"), _write(0, "a", "b")])
    assert await _paths(client) == ["a", "c"]
    assert [[f["path"] for f in v["fields"]] for v in await _versions(client)] == [["a"], ["a", "c"]]
    # A late event that only names a column through its lineage does not bring a dropped one back either.
    late = _write(5, "a", "b")
    del late["outputs"][0]["facets"]["schema"]
    late["outputs"][0]["facets"]["columnLineage"] = column_lineage({"b": [(HIVE, "raw.playback", "title")]})
    await post(client, late)
    assert await _paths(client) == ["a", "c"]


async def test_a_rename_a_field_id_states_keeps_what_people_wrote(client: httpx.AsyncClient) -> None:
    first = _write(
        0,
        {"name": "member_id", "type": "bigint", "id": 1},
        {"name": "secs", "type": "int", "id": 2},
        columnLineage=column_lineage({"secs": [(HIVE, "raw.playback", "ts")]}, subtype="TRANSFORMATION"),
    )
    await post(client, first)
    await _describe(client, "secs", "seconds watched")
    await post(
        client,
        _write(10, {"name": "member_id", "type": "bigint", "id": 1}, {"name": "watch_seconds", "type": "int", "id": 2}),
    )
    fields = {f["path"]: f for f in (await _dataset(client))["fields"]}
    assert list(fields) == ["member_id", "watch_seconds"]
    assert fields["watch_seconds"]["description"] == "seconds watched" and fields["watch_seconds"]["tags"] == ["pii"]
    diff = (await _versions(client))[-1]["diff"]
    assert diff["renamed"] == [{"field_id": 2, "old_path": "secs", "new_path": "watch_seconds"}]
    assert diff["removed"] == [] and diff["added"] == []
    # The column edge into the field follows it to its new name.
    impact = (
        await client.get("/api/v1/lineage/impact", params={"namespace": HIVE, "name": "raw.playback", "field": "ts"})
    ).json()
    assert [(c["name"], c["field"]) for c in impact["columns"]] == [(SESSIONS, "watch_seconds")]


async def test_a_rename_the_events_column_lineage_states_keeps_what_people_wrote(client: httpx.AsyncClient) -> None:
    await post(client, _write(0, "member_id", "secs"))
    await _describe(client, "secs", "seconds watched")
    # ALTER-like rewrite: the job reads the table and writes it back with the column renamed.
    rename = _write(
        10,
        "member_id",
        "watch_seconds",
        columnLineage=column_lineage(
            {"member_id": [(HIVE, SESSIONS, "member_id")], "watch_seconds": [(HIVE, SESSIONS, "secs")]}
        ),
    )
    rename["inputs"] = [dataset(HIVE, SESSIONS)]
    body = await post(client, rename)
    fields = {f["path"]: f for f in (await _dataset(client))["fields"]}
    assert list(fields) == ["member_id", "watch_seconds"]
    assert fields["watch_seconds"]["description"] == "seconds watched"
    diff = (await _versions(client))[-1]["diff"]
    assert diff["renamed"] == [{"field_id": None, "old_path": "secs", "new_path": "watch_seconds"}]
    assert body.json()["applied"] == 1


async def test_a_column_computed_from_a_dropped_one_is_not_a_rename(client: httpx.AsyncClient) -> None:
    await post(client, _write(0, "member_id", "secs"))
    await _describe(client, "secs", "seconds watched")
    derived = _write(
        10,
        "member_id",
        "minutes",
        columnLineage=column_lineage({"minutes": [(HIVE, SESSIONS, "secs")]}, subtype="TRANSFORMATION"),
    )
    derived["inputs"] = [dataset(HIVE, SESSIONS)]
    await post(client, derived)
    fields = {f["path"]: f for f in (await _dataset(client))["fields"]}
    assert list(fields) == ["member_id", "minutes"] and fields["minutes"]["description"] is None
    diff = (await _versions(client))[-1]["diff"]
    assert (diff["added"], diff["removed"], diff["renamed"]) == (["minutes"], ["secs"], [])
