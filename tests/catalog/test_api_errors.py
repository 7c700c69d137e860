"""Bad input on every catalog endpoint gets a 4xx whose message names the problem, and changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

DATASET = {"namespace": "kafka://k:9092", "name": "playback.events", "fields": [{"name": "a", "type": "int"}]}
BIG = 10**30


async def _seed(client: httpx.AsyncClient) -> int:
    response = await client.post("/api/v1/datasets", json=DATASET)
    assert response.status_code == 201
    await client.post(
        "/api/v1/sources",
        json={
            "name": "lake",
            "kind": "iceberg",
            "namespace": "iceberg://lake",
            "config": {"uri": "http://127.0.0.1:8181"},
        },
    )
    return int(response.json()["id"])


def _cursor_for(sort: str) -> str:
    from headwater.pagination import encode_cursor

    return encode_cursor(sort, ["x", 1])


# (method, url, kwargs, expected status, words the message must contain)
CASES: list[tuple[str, str, dict[str, Any], int, list[str]]] = [
    # sources
    ("POST", "/api/v1/sources", {"json": {"name": "x", "kind": "iceberg"}}, 422, ["namespace", "required"]),
    ("POST", "/api/v1/sources", {"json": {"name": "x", "kind": "oracle", "namespace": "a"}}, 422, ["kind"]),
    ("POST", "/api/v1/sources", {"json": {"name": "bad name!", "kind": "manual", "namespace": "a"}}, 422, ["name"]),
    (
        "POST",
        "/api/v1/sources",
        {"json": {"name": "x", "kind": "manual", "namespace": "a", "colour": 1}},
        422,
        ["colour", "not a known field"],
    ),
    (
        "POST",
        "/api/v1/sources",
        {"json": {"name": "x", "kind": "manual", "namespace": "not a namespace"}},
        422,
        ["namespace", "OpenLineage"],
    ),
    (
        "POST",
        "/api/v1/sources",
        {
            "json": {
                "name": "lake",
                "kind": "iceberg",
                "namespace": "iceberg://lake",
                "config": {"uri": "http://127.0.0.1:8181"},
            }
        },
        409,
        ["lake", "already exists"],
    ),
    (
        "POST",
        "/api/v1/sources",
        {"json": {"name": "x", "kind": "manual", "namespace": "a", "secrets": {"k": 5}}},
        422,
        ["secrets.k"],
    ),
    ("GET", "/api/v1/sources?kind=oracle", {}, 422, ["kind"]),
    ("GET", "/api/v1/sources?limit=0", {}, 422, ["limit"]),
    ("GET", "/api/v1/sources?sort=colour", {}, 400, ["sort", "colour", "name"]),
    ("GET", "/api/v1/sources?cursor=%%%", {}, 400, ["cursor"]),
    ("GET", "/api/v1/sources/nope", {}, 404, ["nope"]),
    ("PATCH", "/api/v1/sources/nope", {"json": {"description": "x"}}, 404, ["nope"]),
    ("PATCH", "/api/v1/sources/lake", {"json": {"kind": "hive"}}, 422, ["kind", "not a known field"]),
    ("PATCH", "/api/v1/sources/lake", {"json": {"config": "string"}}, 422, ["config"]),
    ("DELETE", "/api/v1/sources/nope", {}, 404, ["nope"]),
    ("DELETE", "/api/v1/sources/manual", {}, 409, ["still has 1 dataset"]),
    # datasets: register
    ("POST", "/api/v1/datasets", {"json": {**DATASET, "name": ""}}, 422, ["name"]),
    ("POST", "/api/v1/datasets", {"json": {**DATASET, "kind": "spreadsheet"}}, 422, ["kind"]),
    ("POST", "/api/v1/datasets", {"json": {**DATASET, "fields": "a,b"}}, 422, ["fields"]),
    (
        "POST",
        "/api/v1/datasets",
        {"json": {**DATASET, "fields": [{"name": "a.b", "type": "int"}]}},
        422,
        ["a.b", "nest"],
    ),
    ("POST", "/api/v1/datasets", {"json": {**DATASET, "fields": [{"name": "a"}]}}, 422, ["fields.0.type", "required"]),
    (
        "POST",
        "/api/v1/datasets",
        {"json": {**DATASET, "name": "dup", "fields": [{"name": "a", "type": "int"}, {"name": "a", "type": "long"}]}},
        400,
        ["'a'", "more than once"],
    ),
    ("POST", "/api/v1/datasets", {"json": {**DATASET, "tags": ["has space"]}}, 422, ["tags.0"]),
    (
        "POST",
        "/api/v1/datasets",
        {"json": {**DATASET, "owners": [{"name": "bob", "role": "boss"}]}},
        422,
        ["role", "boss"],
    ),
    ("POST", "/api/v1/datasets", {"json": {**DATASET, "size": 3}}, 422, ["size", "not a known field"]),
    ("POST", "/api/v1/datasets", {"json": {**DATASET, "source": "nope"}}, 404, ["nope"]),
    ("POST", "/api/v1/datasets", {"json": {**DATASET, "source": "lake"}}, 409, ["iceberg", "manual source"]),
    ("POST", "/api/v1/datasets", {"json": DATASET}, 409, ["already exists with id"]),
    (
        "POST",
        "/api/v1/datasets",
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        422,
        ["not valid JSON"],
    ),
    ("POST", "/api/v1/datasets", {"json": [1, 2]}, 422, ["dictionary"]),
    (
        "POST",
        "/api/v1/datasets",
        {"json": {**DATASET, "name": "big", "source_description": "x" * 70_000}},
        413,
        ["larger than"],
    ),
    # datasets: list and read
    ("GET", "/api/v1/datasets?kind=spreadsheet", {}, 422, ["kind"]),
    ("GET", "/api/v1/datasets?limit=100000", {}, 422, ["limit"]),
    ("GET", "/api/v1/datasets?cursor=bm90LWpzb24", {}, 400, ["cursor"]),
    ("GET", f"/api/v1/datasets?sort=id&cursor={_cursor_for('name')}", {}, 400, ["sort 'name'", "not 'id'"]),
    ("GET", f"/api/v1/datasets?sort=id&cursor={_cursor_for('id')}", {}, 400, ["cursor", "wrong type"]),
    ("GET", "/api/v1/datasets?sort=size", {}, 400, ["size"]),
    ("GET", "/api/v1/datasets?source=nope", {}, 404, ["nope"]),
    ("GET", "/api/v1/datasets?include_deleted=maybe", {}, 422, ["include_deleted"]),
    ("GET", "/api/v1/datasets/by-name?namespace=kafka://k:9092", {}, 422, ["name", "required"]),
    ("GET", "/api/v1/datasets/by-name?namespace=kafka://k:9092&name=nope", {}, 404, ["nope"]),
    ("GET", "/api/v1/datasets/abc", {}, 422, ["dataset_id"]),
    ("GET", "/api/v1/datasets/0", {}, 422, ["dataset_id"]),
    ("GET", f"/api/v1/datasets/{BIG}", {}, 422, ["dataset_id"]),
    ("GET", "/api/v1/datasets/424242", {}, 404, ["424242"]),
    # datasets: update, schema, delete
    ("PATCH", "/api/v1/datasets/424242", {"json": {"description": "x"}, "headers": {"If-Match": "*"}}, 404, ["424242"]),
    ("PATCH", "/api/v1/datasets/{id}", {"json": {"description": "x"}}, 428, ["If-Match"]),
    (
        "PATCH",
        "/api/v1/datasets/{id}",
        {"json": {"description": "a\u0000b"}, "headers": {"If-Match": "*"}},
        422,
        ["description", "NUL"],
    ),
    ("POST", "/api/v1/datasets", {"json": {**DATASET, "name": "nul", "description": "\u0000"}}, 422, ["NUL"]),
    (
        "PATCH",
        "/api/v1/datasets/{id}",
        {"json": {"description": "x"}, "headers": {"If-Match": '"{id}.99"'}},
        412,
        ["changed since"],
    ),
    (
        "PATCH",
        "/api/v1/datasets/{id}",
        {"json": {"description": "x"}, "headers": {"If-Match": "garbage"}},
        412,
        ["garbage"],
    ),
    ("PATCH", "/api/v1/datasets/{id}", {"json": {"tags": "pii"}, "headers": {"If-Match": "*"}}, 422, ["tags"]),
    (
        "PATCH",
        "/api/v1/datasets/{id}",
        {"json": {"name": "rename"}, "headers": {"If-Match": "*"}},
        422,
        ["name", "not a known field"],
    ),
    (
        "PATCH",
        "/api/v1/datasets/{id}",
        {"json": {"fields": {"zzz": {"description": "x"}}}, "headers": {"If-Match": "*"}},
        400,
        ["zzz"],
    ),
    (
        "PATCH",
        "/api/v1/datasets/{id}",
        {"json": {"owners": [{"name": "a"}, {"name": "a", "role": "data_steward"}]}, "headers": {"If-Match": "*"}},
        400,
        ["'a'", "different roles"],
    ),
    ("PUT", "/api/v1/datasets/{id}/schema", {"json": {}}, 422, ["fields", "required"]),
    ("PUT", "/api/v1/datasets/424242/schema", {"json": {"fields": []}}, 404, ["424242"]),
    ("DELETE", "/api/v1/datasets/{id}", {}, 422, ["reason", "required"]),
    ("DELETE", "/api/v1/datasets/{id}?reason=", {}, 422, ["reason"]),
    ("DELETE", "/api/v1/datasets/424242?reason=x", {}, 404, ["424242"]),
    ("GET", "/api/v1/datasets/424242/schema-versions", {}, 404, ["424242"]),
    ("GET", "/api/v1/datasets/{id}/schema-versions?order=random", {}, 422, ["order"]),
    ("GET", "/api/v1/datasets/{id}/schema-versions/7", {}, 404, ["no schema version 7"]),
    ("GET", "/api/v1/datasets/{id}/schema-versions/zero", {}, 422, ["version"]),
    # change feed
    ("GET", "/api/v1/change-events?after=-1", {}, 422, ["after"]),
    ("GET", "/api/v1/change-events?limit=0", {}, 422, ["limit"]),
    ("GET", "/api/v1/change-events?kind=exploded", {}, 422, ["kind"]),
    ("GET", f"/api/v1/change-events?after={BIG}", {}, 422, ["after"]),
    # the router itself
    ("GET", "/api/v1/nothing-here", {}, 404, ["no such endpoint", "/api/v1/nothing-here", "/docs"]),
    ("POST", "/api/v1/change-events", {"json": {}}, 405, ["method not allowed", "POST"]),
]


def _fill(value: Any, dataset_id: int) -> Any:
    if isinstance(value, str):
        return value.replace("{id}", str(dataset_id))
    if isinstance(value, dict):
        return {k: _fill(v, dataset_id) for k, v in value.items()}
    return value


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status", "words"), CASES, ids=[f"{c[0]} {c[1]} {c[3]}" for c in CASES]
)
async def test_bad_input_gets_an_actionable_4xx(
    client: httpx.AsyncClient, method: str, url: str, kwargs: dict[str, Any], status: int, words: list[str]
) -> None:
    dataset_id = await _seed(client)
    before = (await client.get("/api/v1/change-events", params={"limit": 1000})).json()["items"]
    response = await client.request(method, _fill(url, dataset_id), **_fill(kwargs, dataset_id))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"]
    for word in words:
        assert word.lower() in response.text.lower(), f"{word!r} missing from {response.text}"
    after = (await client.get("/api/v1/change-events", params={"limit": 1000})).json()["items"]
    assert after == before, "a refused request must not change the catalog"
    assert (await client.get(f"/api/v1/datasets/{dataset_id}")).json()["revision"] == 1


async def test_oversized_body_without_content_length_is_refused(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"name": "x", "source_description": "'
        for _ in range(20):
            yield b"y" * 8192
        yield b'"}'

    response = await client.post("/api/v1/datasets", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "HEADWATER_MAX_BODY_BYTES" in response.json()["error"]["message"]
    assert (await client.get("/api/v1/datasets")).json()["total"] == 0
