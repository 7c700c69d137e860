"""Each cause of a server error that fuzzing found (issue 14, finding 5), as a request through the HTTP API that
must now get a correct answer or a 4xx naming the problem, on both databases."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.orm import Session

from headwater.catalog.schemas import DatasetCreate
from headwater.catalog.service import register_dataset
from headwater.jobs.applications import create_application
from headwater.jobs.models import ClusterType
from headwater.jobs.schemas import ApplicationCreate, ClusterCreate, CommandCreate
from headwater.jobs.service import create_cluster, create_command


def seed_fuzz_targets(session: Session) -> None:
    """Rows the fuzzer's generated ids and names can hit: a dataset without columns, a cluster, a command and an
    application (flushes; the caller commits)."""
    register_dataset(session, data=DatasetCreate(name="no_columns"))
    create_application(session, data=ApplicationCreate(name="a"))
    create_cluster(session, data=ClusterCreate(name="c", type=ClusterType.SHELL, tags=["a"]))
    create_command(session, data=CommandCreate(name="s", executable=["/bin/true"], applications=["a"]))
    session.flush()


pytestmark = pytest.mark.anyio


# --------------------------------------------------------------------- impact of a dataset without columns


async def test_impact_of_a_dataset_without_columns_is_empty_not_a_server_error(client: httpx.AsyncClient) -> None:
    target = await client.post("/api/v1/datasets", json={"name": "no_columns"})
    assert target.status_code == 201, target.text
    dataset_id = target.json()["id"]
    # A dataset-level edge out of it still counts: its downstream dataset is found, and no column is.
    namespace = target.json()["namespace"]
    assert (await client.post("/api/v1/datasets", json={"name": "downstream"})).status_code == 201
    edge = await client.post(
        "/api/v1/lineage/edges",
        json={
            "source": {"namespace": namespace, "name": "no_columns"},
            "target": {"namespace": namespace, "name": "downstream"},
        },
    )
    assert edge.status_code == 201, edge.text

    rest = await client.get("/api/v1/lineage/impact", params={"dataset_id": dataset_id})
    assert rest.status_code == 200, rest.text
    assert rest.json()["columns"] == []
    assert [d["name"] for d in rest.json()["datasets"]] == ["downstream"]

    gql = await client.post(
        "/graphql",
        json={
            "query": "query($node: NodeInput!) { impact(node: $node) { ... on Impact { total columns { name } } "
            "... on Error { message } } }",
            "variables": {"node": {"datasetId": str(dataset_id)}},
        },
    )
    assert gql.status_code == 200, gql.text
    assert "errors" not in gql.json(), gql.text
    assert gql.json()["data"]["impact"] == {"total": rest.json()["total"], "columns": []}

    page = await client.get("/ui/impact", params={"dataset_id": dataset_id})
    assert page.status_code == 200, page.text
    assert "no_columns" in page.text


# ----------------------------------------------------------------------------- PATCH with explicit nulls

NOT_NULLABLE = {
    "clusters": ["status", "tags", "config", "max_concurrent_jobs"],
    "commands": ["executable", "status", "tags", "cluster_criteria", "applications"],
    "applications": ["status", "tags", "dependencies", "configs", "environment"],
}


async def _seed_jobs_catalog(client: httpx.AsyncClient) -> None:
    for path, body in (
        ("applications", {"name": "a", "version": "1", "type": "shell", "description": "an app"}),
        ("clusters", {"name": "c", "type": "shell", "tags": ["t"], "config": {"k": 1}, "description": "a cluster"}),
        ("commands", {"name": "s", "executable": ["/bin/true"], "applications": ["a"], "description": "a command"}),
    ):
        created = await client.post(f"/api/v1/{path}", json=body)
        assert created.status_code == 201, created.text


@pytest.mark.parametrize(
    ("path", "name", "field"),
    [
        (p, {"clusters": "c", "commands": "s", "applications": "a"}[p], f)
        for p, fields in NOT_NULLABLE.items()
        for f in fields
    ],
)
async def test_null_for_a_field_that_cannot_be_empty_is_a_422_naming_it(
    client: httpx.AsyncClient, path: str, name: str, field: str
) -> None:
    await _seed_jobs_catalog(client)
    before = (await client.get(f"/api/v1/{path}/{name}")).json()

    answer = await client.patch(f"/api/v1/{path}/{name}", json={field: None})

    assert answer.status_code == 422, answer.text
    assert field in answer.json()["error"]["message"]
    assert "null" in answer.json()["error"]["message"]
    assert (await client.get(f"/api/v1/{path}/{name}")).json() == before


@pytest.mark.parametrize(
    ("path", "name", "fields"),
    [
        ("clusters", "c", ["description", "max_memory_mb", "default_job_memory_mb"]),
        ("commands", "s", ["description", "memory_mb"]),
        ("applications", "a", ["version", "type", "description"]),
    ],
)
async def test_null_for_a_nullable_field_empties_it_and_omitted_fields_keep_their_value(
    client: httpx.AsyncClient, path: str, name: str, fields: list[str]
) -> None:
    await _seed_jobs_catalog(client)
    before = (await client.get(f"/api/v1/{path}/{name}")).json()

    answer = await client.patch(f"/api/v1/{path}/{name}", json=dict.fromkeys(fields))

    assert answer.status_code == 200, answer.text
    after = answer.json()
    assert all(after[f] is None for f in fields)
    unchanged = {k: v for k, v in before.items() if k not in {*fields, "updated_at"}}
    assert {k: after[k] for k in unchanged} == unchanged


# ---------------------------------------------------------------- numbers JSON cannot carry, in configs


@pytest.mark.parametrize(
    "raw_value",
    [
        "18446744073709551616",
        "-18446744073709551617",
        "9007199254740993",
        "NaN",
        "Infinity",
        "-Infinity",
        '[1, {"deep": 1e400}]',
    ],
)
@pytest.mark.parametrize("target", ["cluster", "cluster_patch", "source", "source_patch"])
async def test_a_config_with_a_number_json_clients_cannot_hold_is_a_422(
    client: httpx.AsyncClient, raw_value: str, target: str
) -> None:
    await _seed_jobs_catalog(client)
    created = await client.post(
        "/api/v1/sources", json={"name": "pg", "kind": "manual", "namespace": "manual://pg", "config": {}}
    )
    assert created.status_code == 201, created.text
    config = '{"n": ' + raw_value + "}"
    method, url, body = {
        "cluster": ("POST", "/api/v1/clusters", '{"name": "c2", "type": "shell", "config": ' + config + "}"),
        "cluster_patch": ("PATCH", "/api/v1/clusters/c", '{"config": ' + config + "}"),
        "source": (
            "POST",
            "/api/v1/sources",
            '{"name": "s2", "kind": "manual", "namespace": "m://s2", "config": ' + config + "}",
        ),
        "source_patch": ("PATCH", "/api/v1/sources/pg", '{"config": ' + config + "}"),
    }[target]

    answer = await client.request(method, url, content=body, headers={"content-type": "application/json"})

    assert answer.status_code == 422, answer.text
    message = answer.json()["error"]["message"]
    assert "config" in message and ("2**53" in message or "not a JSON number" in message), message
    assert (await client.get("/api/v1/clusters/c")).json()["config"] == {"k": 1}
    assert (await client.get("/api/v1/sources/pg")).json()["config"] == {}


async def test_integers_up_to_2_53_in_a_config_are_kept_exactly(client: httpx.AsyncClient) -> None:
    config = {"max": 2**53, "min": -(2**53), "f": 1.5, "nested": [{"n": None}]}
    created = await client.post("/api/v1/clusters", json={"name": "c", "type": "shell", "config": config})
    assert created.status_code == 201, created.text
    assert (await client.get("/api/v1/clusters/c")).json()["config"] == config


# ----------------------------------------------------------------------- ids the database cannot store


@pytest.mark.parametrize("field_id", [2**31, -(2**31) - 1, 2**63, 2**64])
async def test_a_field_id_beyond_32_bits_is_a_422(client: httpx.AsyncClient, field_id: int) -> None:
    answer = await client.post(
        "/api/v1/datasets", json={"name": "t", "fields": [{"name": "a", "type": "int", "field_id": field_id}]}
    )
    assert answer.status_code == 422, answer.text
    assert "field_id" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/lineage/impact?field_id=9223372036854775808",
        "/api/v1/lineage/impact?dataset_id=18446744073709551616",
        "/api/v1/datasets/9223372036854775808",
        "/api/v1/changes?after=9223372036854775808",
        "/api/v1/lineage/events?after=9223372036854775808",
    ],
)
async def test_an_id_beyond_64_bits_in_a_url_is_a_4xx(client: httpx.AsyncClient, url: str) -> None:
    answer = await client.get(url)
    assert 400 <= answer.status_code < 500, answer.text


# ------------------------------------------------------------------------------------- deeply nested SQL

DEEP = "(" * 50 + "amount" + ")" * 50


async def test_sql_nested_fifty_deep_is_a_400_saying_so(client: httpx.AsyncClient) -> None:
    answer = await client.post("/api/v1/lineage/sql", json={"sql": f"SELECT {DEEP} AS x FROM raw.events"})
    assert answer.status_code == 400, answer.text
    assert "nests too deeply" in answer.json()["error"]["message"]
    assert answer.json()["error"]["detail"]["field"] == "sql"


async def test_an_event_whose_sql_facet_nests_too_deep_is_stored_with_its_sql_lineage_marked_unparsable(
    client: httpx.AsyncClient,
) -> None:
    run_id = str(uuid.uuid4())
    event = {
        "eventType": "COMPLETE",
        "eventTime": "2026-01-01T00:00:00Z",
        "producer": "https://example.com/producer",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id},
        "job": {
            "namespace": "jobs",
            "name": "deep",
            "facets": {"sql": {"query": f"INSERT INTO out SELECT {DEEP} AS x FROM src"}},
        },
        "inputs": [{"namespace": "pg://db", "name": "src"}],
        "outputs": [{"namespace": "pg://db", "name": "out"}],
    }

    answer = await client.post("/api/v1/lineage", json=event)

    assert answer.status_code in (200, 201), answer.text
    assert any("unparsable" in w and "nests too deeply" in w for w in answer.json()["warnings"]), answer.text
    run = await client.get(f"/api/v1/lineage/runs/{run_id}")
    assert run.status_code == 200 and run.json()["state"] == "COMPLETE"
    logged = (await client.get("/api/v1/lineage/events")).json()["items"]
    assert [item["run_id"] for item in logged] == [run_id]
    assert any("unparsable" in w for w in logged[0]["warnings"])
    datasets = (await client.get("/api/v1/datasets", params={"limit": 10})).json()["items"]
    assert {d["name"] for d in datasets} >= {"src", "out"}
