"""What a GraphQL request costs beyond running its resolvers: a repeated catalog read is answered from the cache
until any dataset changes, documents are validated once, and a query of one root field runs without a savepoint."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from strawberry.extensions.validation_cache import _get_validate_cache
from test_graphql_api import PLAY, gql, register, statements

pytestmark = pytest.mark.anyio

DATASET = """query($id: ID!) { dataset(id: $id) { ... on Dataset { name description revision fields { id path } } } }"""
PAGE = """query { datasets(first: 10) { ... on DatasetPage { total items { name description } } } }"""


async def test_a_repeated_catalog_read_is_answered_without_the_database_until_a_dataset_changes(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    created = await register(client, PLAY)
    first = await gql(client, DATASET, id=str(created["id"]))
    page = await gql(client, PAGE)
    with statements(app) as seen:
        again = await gql(client, DATASET, id=str(created["id"]))
        page_again = await gql(client, PAGE)
    assert seen == [] and again == first and page_again == page
    assert first["data"]["dataset"]["fields"][0]["id"].isdigit()
    other = await gql(client, DATASET, id="987654321")  # another key: runs, its answer is not the first's
    assert other["data"]["dataset"] == {}

    # Any dataset's change drops every cached GraphQL answer (a page may show any dataset).
    etag = (await client.get(f"/api/v1/datasets/{created['id']}")).headers["ETag"]
    patched = await client.patch(
        f"/api/v1/datasets/{created['id']}", json={"description": "plays, pauses"}, headers={"If-Match": etag}
    )
    assert patched.status_code == 200, patched.text
    with statements(app) as seen:
        fresh = await gql(client, DATASET, id=str(created["id"]))
        fresh_page = await gql(client, PAGE)
    assert any("FROM datasets" in s for s in seen)
    assert fresh["data"]["dataset"]["description"] == "plays, pauses"
    assert fresh["data"]["dataset"]["revision"] == created["revision"] + 1
    assert [d["description"] for d in fresh_page["data"]["datasets"]["items"]] == ["plays, pauses"]


async def test_other_reads_mutations_and_failed_requests_are_not_cached(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    created = await register(client, PLAY)
    mixed = """query($id: ID!) { dataset(id: $id) { ... on Dataset { name } }
        sources { ... on SourceList { items { name } } } }"""
    await gql(client, mixed, id=str(created["id"]))
    with statements(app) as seen:
        await gql(client, mixed, id=str(created["id"]))
    assert any("FROM sources" in s for s in seen)  # a root field outside the catalog's datasets: run every time

    bad_argument = """query { dataset(id: "1") { ... on Dataset { schemaHistory(first: 0) { total } } } }"""
    for _ in range(2):
        with statements(app) as seen:
            answer = await gql(client, bad_argument.replace('"1"', f'"{created["id"]}"'))
        assert answer["errors"] and any("FROM datasets" in s for s in seen)  # an answer with errors is not kept

    rename = """mutation($id: ID!, $rev: Int!) { updateDataset(id: $id, expectedRevision: $rev,
        input: {description: "renamed"}) { ... on Dataset { revision } ... on Error { code } } }"""
    first = await gql(client, rename, id=str(created["id"]), rev=created["revision"])
    second = await gql(client, rename, id=str(created["id"]), rev=created["revision"])
    assert first["data"]["updateDataset"] == {"revision": created["revision"] + 1}
    assert second["data"]["updateDataset"] == {"code": "precondition_failed"}  # ran again: the revision moved


async def test_a_repeated_document_is_validated_once(client: httpx.AsyncClient) -> None:
    cache = _get_validate_cache(512)  # the process-wide cache headwater.graphql.schema installs
    query = """query($q: String) { search(query: $q) { ... on SearchPage { total } } }"""
    await gql(client, query, q="first")
    before = cache.cache_info()
    await gql(client, query, q="second")
    after = cache.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


async def test_a_lone_query_field_runs_without_a_savepoint_and_two_fields_each_in_their_own(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    created = await register(client, PLAY)
    lone = """query { sources { ... on SourceList { items { name } } } }"""
    with statements(app) as seen:
        await gql(client, lone)
    assert any("FROM sources" in s for s in seen) and not any("SAVEPOINT" in s for s in seen)
    two = f"""query {{ a: dataset(id: "{created["id"]}") {{ ... on Dataset {{ name }} }}
        b: sources {{ ... on SourceList {{ items {{ name }} }} }} }}"""
    with statements(app) as seen:
        answer = await gql(client, two)
    assert answer["data"]["a"] == {"name": PLAY["name"]}
    assert len([s for s in seen if s.startswith("SAVEPOINT")]) == 2
    # A lone field's typed error rolls back what it did (its transaction, not a savepoint), and still answers.
    missing = await gql(client, """query { dataset(id: "987654321") { ... on Error { code } } }""")
    assert missing["data"]["dataset"] == {"code": "not_found"}
