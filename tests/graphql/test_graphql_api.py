"""The GraphQL API at /graphql through httpx + ASGITransport, on both databases: the same answers as REST,
typed error results, batched loads, mutations that leave nothing behind when they fail."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from headwater.jobs import service as jobs_service

pytestmark = pytest.mark.anyio

NS = "hive://metastore.example:9083"
PLAY = {
    "namespace": "kafka://kafka.streaming.internal:9092",
    "name": "playback.events",
    "kind": "topic",
    "format": "avro",
    "source_description": "Every play, pause, stop and seek.",
    "fields": [
        {"name": "event_id", "type": "string", "nullable": False, "field_id": 1},
        {"name": "device", "type": "struct<os:string>", "field_id": 2, "fields": [{"name": "os", "type": "string"}]},
        {"name": "member_id", "type": "long", "tags": ["pii"], "field_id": 4},
    ],
    "tags": ["streaming", "tier-1"],
    "owners": [{"name": "team:playback-data"}, {"name": "alice@streamco.example", "role": "data_steward"}],
}
DATASET_FIELDS = """
    __typename
    ... on Dataset {
        id namespace name kind source sourceKind format tags revision fieldCount description
        owners { name role }
        fields { id path name parentPath type normalizedType nullable sourceFieldId tags }
    }
    ... on Error { message code field }
"""


async def gql(client: httpx.AsyncClient, query: str, status: int = 200, **variables: Any) -> dict[str, Any]:
    """POST a GraphQL request; its JSON body, after checking the status."""
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def register(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/v1/datasets", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@contextmanager
def statements(app: FastAPI) -> Iterator[list[str]]:
    """The SQL statements the app's engine runs inside the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(app.state.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(app.state.engine, "before_cursor_execute", record)


# ---------------------------------------------------------------------------------------------- catalog


async def test_a_dataset_by_id_and_by_name_answers_as_rest_does(client: httpx.AsyncClient) -> None:
    created = await register(client, PLAY)
    by_name = await gql(
        client,
        f"query($ns: String!, $n: String!) {{ dataset(namespace: $ns, name: $n) {{ {DATASET_FIELDS} }} }}",
        ns=PLAY["namespace"],
        n=PLAY["name"],
    )
    by_id = await gql(client, f"query($id: ID!) {{ dataset(id: $id) {{ {DATASET_FIELDS} }} }}", id=str(created["id"]))
    assert "errors" not in by_name and by_name == by_id
    dataset = by_id["data"]["dataset"]
    assert dataset["__typename"] == "Dataset"
    assert dataset["id"] == str(created["id"]) and dataset["kind"] == "TOPIC" and dataset["sourceKind"] == "MANUAL"
    assert dataset["tags"] == created["tags"] and dataset["revision"] == created["revision"]
    assert dataset["owners"] == created["owners"]
    assert (
        [f["path"] for f in dataset["fields"]]
        == [f["path"] for f in created["fields"]]
        == [
            "event_id",
            "device",
            "device.os",
            "member_id",
        ]
    )
    member = dataset["fields"][-1]
    assert member["tags"] == ["pii"] and member["sourceFieldId"] == 4 and member["normalizedType"] == "long"
    assert all(f["id"].isdigit() for f in dataset["fields"])


async def test_errors_are_typed_results_naming_the_argument(client: httpx.AsyncClient) -> None:
    query = f"query($id: ID) {{ dataset(id: $id) {{ {DATASET_FIELDS} }} }}"
    missing = (await gql(client, query, id="987654321"))["data"]["dataset"]
    assert missing["__typename"] == "NotFoundError" and "987654321" in missing["message"]
    assert missing["code"] == "not_found"
    malformed = (await gql(client, query, id="12; DROP TABLE datasets"))["data"]["dataset"]
    assert malformed["__typename"] == "InvalidInputError" and malformed["field"] == "id"
    assert "positive integer id" in malformed["message"]
    unnamed = (await gql(client, query))["data"]["dataset"]
    assert unnamed["__typename"] == "InvalidInputError" and "namespace and name" in unnamed["message"]


async def test_a_page_of_datasets_loads_every_datasets_fields_in_one_query(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    for i in range(5):
        await register(client, {**PLAY, "name": f"playback.events_{i}", "tags": [f"t{i}"]})
    query = """query($after: String) {
        datasets(first: 3, after: $after, filter: {namespace: "kafka://kafka.streaming.internal:9092"}) {
            ... on DatasetPage { total nextCursor items { name fields { path } } }
            ... on Error { message }
        }
    }"""
    with statements(app) as seen:
        first = (await gql(client, query))["data"]["datasets"]
    assert first["total"] == 5 and [d["name"] for d in first["items"]] == [f"playback.events_{i}" for i in range(3)]
    assert all(len(d["fields"]) == 4 for d in first["items"])
    field_reads = [s for s in seen if "FROM fields" in s]
    assert len(field_reads) == 1, field_reads  # not one per dataset
    second = (await gql(client, query, after=first["nextCursor"]))["data"]["datasets"]
    assert [d["name"] for d in second["items"]] == ["playback.events_3", "playback.events_4"]
    assert second["nextCursor"] is None
    bad = (await gql(client, query, after="not-a-cursor"))["data"]["datasets"]
    assert "cursor" in bad["message"]


async def test_update_dataset_guards_the_revision_and_keeps_nothing_when_refused(client: httpx.AsyncClient) -> None:
    created = await register(client, PLAY)
    mutation = """mutation($id: ID!, $input: DatasetMetadataInput!, $rev: Int!) {
        updateDataset(id: $id, input: $input, expectedRevision: $rev) {
            __typename
            ... on Dataset { description tags revision owners { name role } fields { path description tags } }
            ... on Error { message field }
        }
    }"""
    change = {
        "description": "Playback events, deduplicated upstream.",
        "tags": ["streaming", "gold"],
        "fields": [{"path": "member_id", "description": "Who played", "tags": ["pii", "member"]}],
    }
    updated = (await gql(client, mutation, id=str(created["id"]), input=change, rev=created["revision"]))["data"]
    answer = updated["updateDataset"]
    assert answer["__typename"] == "Dataset", answer
    assert answer["description"] == change["description"] and answer["tags"] == ["gold", "streaming"]
    assert answer["revision"] == created["revision"] + 1
    member = next(f for f in answer["fields"] if f["path"] == "member_id")
    assert member == {"path": "member_id", "description": "Who played", "tags": ["pii", "member"]}
    rest = (await client.get(f"/api/v1/datasets/{created['id']}")).json()
    assert rest["description"] == change["description"] and rest["revision"] == answer["revision"]

    stale = await gql(client, mutation, id=str(created["id"]), input={"description": "lost"}, rev=created["revision"])
    assert stale["data"]["updateDataset"]["__typename"] == "PreconditionFailedError"
    invalid = await gql(client, mutation, id=str(created["id"]), input={"tags": [""]}, rev=answer["revision"])
    refused = invalid["data"]["updateDataset"]
    assert refused["__typename"] == "InvalidInputError" and refused["field"].startswith("input.tags"), refused
    bad_field_tag = {"fields": [{"path": "member_id", "tags": ["ok", ""]}]}
    refused = (await gql(client, mutation, id=str(created["id"]), input=bad_field_tag, rev=answer["revision"]))["data"]
    assert refused["updateDataset"]["field"] == "input.fields.member_id.tags.1", refused  # a path stays as it is
    unknown_field = await gql(
        client,
        mutation,
        id=str(created["id"]),
        input={"description": "x", "fields": [{"path": "nope"}]},
        rev=answer["revision"],
    )
    assert unknown_field["data"]["updateDataset"]["__typename"] == "InvalidInputError"
    after = (await client.get(f"/api/v1/datasets/{created['id']}")).json()
    assert after["description"] == change["description"] and after["revision"] == answer["revision"]


async def test_an_unexpected_failure_rolls_back_the_whole_request_and_hides_its_text(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await register(client, PLAY)

    def broken(*_args: Any, **_kwargs: Any) -> Any:  # a bug: nothing a client can provoke on purpose
        raise RuntimeError("secret internals")

    monkeypatch.setattr(jobs_service, "request_kill", broken)
    body = await gql(
        client,
        """mutation($id: ID!, $rev: Int!) {
            updateDataset(id: $id, input: {description: "half-written"}, expectedRevision: $rev) { __typename }
            killJob(id: "job-1") { __typename }
        }""",
        id=str(created["id"]),
        rev=created["revision"],
    )
    assert body["data"] is None  # what updateDataset answered was rolled back with the rest: no data is answered
    assert [e["message"] for e in body["errors"]] == ["an unexpected error occurred; it has been logged"]
    assert "secret" not in str(body)
    after = (await client.get(f"/api/v1/datasets/{created['id']}")).json()
    assert after["description"] is None and after["revision"] == created["revision"]


async def test_sources_list_the_manual_source(client: httpx.AsyncClient) -> None:
    await register(client, PLAY)
    body = await gql(client, "{ sources { ... on SourceList { items { name kind status } } } }")
    assert [(s["name"], s["kind"]) for s in body["data"]["sources"]["items"]] == [("manual", "MANUAL")]


# ---------------------------------------------------------------------------------------------- search


async def test_search_hits_carry_their_dataset_loaded_for_the_whole_page(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await register(client, PLAY)
    await register(client, {**PLAY, "name": "playback.sessions", "tags": ["sessions"]})
    await register(client, {**PLAY, "name": "billing.invoices", "tags": ["finance"]})
    app.state.search_indexer.catch_up()
    query = """query($q: String, $filter: SearchFilter) {
        search(query: $q, filter: $filter) {
            __typename
            ... on SearchPage {
                total
                items { name match dataset { name fields { path } } }
                facets { name values { value count } }
            }
            ... on Error { message field }
        }
    }"""
    with statements(app) as seen:
        page = (await gql(client, query, q="playback.events"))["data"]["search"]
    assert page["__typename"] == "SearchPage"
    assert page["items"][0]["name"] == "playback.events" and page["items"][0]["match"] == "EXACT"
    assert page["items"][0]["dataset"]["fields"][0]["path"] == "event_id"
    assert len([s for s in seen if "FROM fields" in s]) == 1
    tags = next(f for f in page["facets"] if f["name"] == "tag")
    assert {"value": "streaming", "count": page["total"]} in tags["values"]
    filtered = (await gql(client, query, q="playback", filter={"tag": ["sessions"]}))["data"]["search"]
    assert [i["name"] for i in filtered["items"]] == ["playback.sessions"]
    bad = await gql(client, query.replace("search(query: $q,", 'search(query: $q, sort: "loudest",'), q="x")
    assert bad["data"]["search"]["__typename"] == "InvalidInputError" and bad["data"]["search"]["field"] == "sort"
    suggest = await gql(client, '{ suggest(prefix: "billing") { ... on Suggestions { items { text } } } }')
    assert suggest["data"]["suggest"]["items"][0]["text"] == "billing.invoices"


# --------------------------------------------------------------------------------------------- lineage


def _event(job: str, source: str, target: str, minutes: int) -> dict[str, Any]:
    def ds(name: str, lineage: dict[str, Any] | None = None) -> dict[str, Any]:
        facets: dict[str, Any] = {
            "schema": {"fields": [{"name": "id", "type": "long"}, {"name": "v", "type": "string"}]}
        }
        if lineage:
            facets["columnLineage"] = lineage
        return {"namespace": NS, "name": name, "facets": facets}

    lineage = {
        "fields": {
            c: {"inputFields": [{"namespace": NS, "name": source, "field": c, "transformations": [{"type": "DIRECT"}]}]}
            for c in ("id", "v")
        }
    }
    when = dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=minutes)
    return {
        "eventType": "COMPLETE",
        "eventTime": when.isoformat(),
        "producer": "https://example.com/tests",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "spark", "name": job},
        "inputs": [ds(source)],
        "outputs": [ds(target, lineage)],
    }


async def test_lineage_impact_and_path_answer_as_rest_does(client: httpx.AsyncClient) -> None:
    hops = ["raw.plays", "curated.plays", "agg.daily", "report.weekly"]
    for i, (source, target) in enumerate(zip(hops, hops[1:], strict=False)):
        response = await client.post("/api/v1/lineage", json=_event(f"job_{i}", source, target, i))
        assert response.status_code == 201, response.text
    rest = (
        await client.get("/api/v1/lineage/impact", params={"namespace": NS, "name": "raw.plays", "field": "v"})
    ).json()
    impact = await gql(
        client,
        """query($node: NodeInput!) {
            impact(node: $node) {
                ... on Impact { total isPartial columns { name field distance path } datasets { name distance }
                                jobs { name distance } }
                ... on Error { message field }
            }
        }""",
        node={"namespace": NS, "name": "raw.plays", "field": "v"},
    )
    answer = impact["data"]["impact"]
    assert answer["total"] == rest["total"] and answer["isPartial"] is False
    assert [(c["name"], c["field"], c["distance"]) for c in answer["columns"]] == [
        ("curated.plays", "v", 1),
        ("agg.daily", "v", 2),
        ("report.weekly", "v", 3),
    ]
    assert answer["columns"] == [{k: c[k] for k in ("name", "field", "distance", "path")} for c in rest["columns"]]
    assert [j["name"] for j in answer["jobs"]] == ["job_0", "job_1", "job_2"]

    upstream = await gql(
        client,
        """query($node: NodeInput!) {
            lineage(node: $node, direction: UPSTREAM, depth: 2) {
                ... on LineageGraph { isPartial nodes { name field distance } edges { source target origin producer } }
            }
        }""",
        node={"namespace": NS, "name": "report.weekly", "field": "id"},
    )
    graph = upstream["data"]["lineage"]
    assert {(n["name"], n["distance"]) for n in graph["nodes"]} >= {("agg.daily", -1), ("curated.plays", -2)}
    assert graph["isPartial"] is True  # raw.plays lies beyond depth 2
    assert {e["origin"] for e in graph["edges"]} == {"openlineage"}

    path = await gql(
        client,
        """query($source: NodeInput!, $target: NodeInput!) {
            path(source: $source, target: $target) { ... on LineagePath { found path } }
        }""",
        source={"namespace": NS, "name": "raw.plays"},
        target={"namespace": NS, "name": "report.weekly"},
    )
    assert path["data"]["path"]["found"] is True and len(path["data"]["path"]["path"]) == 4

    unknown = await gql(
        client,
        '{ impact(node: {namespace: "nowhere", name: "x"}) { ... on Error { __typename message field } } }',
    )
    assert (
        unknown["data"]["impact"]["__typename"] == "NotFoundError" and "nowhere" in unknown["data"]["impact"]["message"]
    )
    too_deep = await gql(
        client,
        "query($node: NodeInput!) { impact(node: $node, depth: 0) { ... on Error { field } } }",
        node={"namespace": NS, "name": "raw.plays"},
    )
    assert too_deep["data"]["impact"]["field"] == "depth"
    as_of = await gql(
        client,
        """query($node: NodeInput!) {
            impact(node: $node, filter: {asOf: "2026-03-01T00:00:30"}) { ... on Impact { columns { name } } }
        }""",
        node={"namespace": NS, "name": "raw.plays", "field": "v"},
    )
    assert [c["name"] for c in as_of["data"]["impact"]["columns"]] == ["curated.plays"]


# ------------------------------------------------------------------------------------------------ jobs


async def _shell_cluster(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/clusters", json={"name": "local", "type": "shell", "tags": ["sched:test"], "max_concurrent_jobs": 4}
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/commands", json={"name": "sh", "executable": ["/bin/sh", "-c"], "tags": ["type:sh"]})
    assert r.status_code == 201, r.text


JOB = "__typename ... on Job { id name user status cluster command tags transitions { toStatus } } ... on Error { message field }"


async def test_submit_read_and_kill_a_job(client: httpx.AsyncClient) -> None:
    await _shell_cluster(client)
    submit = f"mutation($input: JobSubmitInput!) {{ submitJob(input: $input) {{ {JOB} }} }}"
    request = {
        "id": "gql-job-1",
        "name": "daily-report",
        "user": "alice",
        "commandArgs": ["sleep 30"],
        "clusterCriteria": [["sched:test"]],
        "commandCriteria": ["type:sh"],
        "tags": ["team:growth"],
    }
    job = (await gql(client, submit, input=request))["data"]["submitJob"]
    assert job["__typename"] == "Job", job
    assert (job["id"], job["status"], job["cluster"], job["command"]) == ("gql-job-1", "RESOLVED", "local", "sh")
    assert job["tags"] == ["team:growth"] and job["transitions"][-1]["toStatus"] == "RESOLVED"
    rest = (await client.get("/api/v1/jobs/gql-job-1")).json()
    assert rest["status"] == "RESOLVED" and rest["user"] == "alice"

    again = (await gql(client, submit, input=request))["data"]["submitJob"]
    assert again["__typename"] == "ConflictError" and "gql-job-1" in again["message"]
    invalid = (await gql(client, submit, input={**request, "id": "gql-job-2", "clusterCriteria": []}))["data"]
    assert invalid["submitJob"]["__typename"] == "InvalidInputError"
    assert invalid["submitJob"]["field"].startswith("input.clusterCriteria")

    listed_query = (
        '{ jobs(filter: {user: "alice"}) { ... on JobPage { total items { id lineageRun { runId state } } } } }'
    )
    listed = await gql(client, listed_query)
    assert listed["data"]["jobs"]["total"] == 1 and listed["data"]["jobs"]["items"][0]["lineageRun"] is None
    # The job's run reports lineage under the job's run id (as the Spark and Flink integrations do).
    run_id = rest["run_id"]
    start = {**_event("daily-report", "raw.plays", "curated.plays", 0), "eventType": "START", "run": {"runId": run_id}}
    assert (await client.post("/api/v1/lineage", json=start)).status_code == 201
    listed = await gql(client, listed_query)
    assert listed["data"]["jobs"]["items"][0]["lineageRun"] == {"runId": run_id, "state": "START"}
    run = await gql(client, "query($id: String!) { lineageRun(id: $id) { ... on Run { jobName state } } }", id=run_id)
    assert run["data"]["lineageRun"] == {"jobName": "daily-report", "state": "START"}
    no_run = await gql(client, '{ lineageRun(id: "nope") { __typename } }')
    assert no_run["data"]["lineageRun"]["__typename"] == "NotFoundError"

    killed = (await gql(client, f'mutation {{ killJob(id: "gql-job-1") {{ {JOB} }} }}'))["data"]["killJob"]
    assert killed["status"] == "KILLED"
    missing = (await gql(client, f'{{ job(id: "no-such-job") {{ {JOB} }} }}'))["data"]["job"]
    assert missing["__typename"] == "NotFoundError"


# ------------------------------------------------------------------------------------------------ HTTP


async def test_requests_that_cannot_run_get_a_4xx_naming_the_problem(client: httpx.AsyncClient) -> None:
    not_json = await client.post("/graphql", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
    no_query = await client.post("/graphql", json={"variables": {}})
    assert no_query.status_code == 400 and no_query.json()["error"]["detail"]["field"] == "query"
    syntax = await gql(client, "{ dataset(id: ", status=400)
    assert syntax["data"] is None and "Syntax Error" in syntax["errors"][0]["message"]
    unknown = await gql(client, "{ dataset(id: 1) { ... on Dataset { colour } } }", status=400)
    assert "colour" in unknown["errors"][0]["message"]
    # The schema has no cycles; introspection does (a type's fields have types), and its nesting is bounded.
    too_deep = "{ __schema { types { " + "fields { type { " * 6 + "name" + " } }" * 6 + " } } }"
    deep = await gql(client, too_deep, status=400)
    assert deep["errors"][0]["message"] == "Maximum introspection depth exceeded"
    mutation_by_get = await client.get("/graphql", params={"query": 'mutation { killJob(id: "x") { __typename } }'})
    assert mutation_by_get.status_code == 405, mutation_by_get.text
    by_get = await client.get("/graphql", params={"query": "{ sources { ... on SourceList { items { name } } } }"})
    assert by_get.status_code == 200 and by_get.json() == {"data": {"sources": {"items": []}}}
    ide = await client.get("/graphql", headers={"accept": "text/html"})
    assert ide.status_code == 200 and "graphiql" in ide.text.lower()


async def test_schema_history_and_a_bad_argument_of_a_nested_field(client: httpx.AsyncClient) -> None:
    created = await register(client, PLAY)
    renamed = [
        {"name": "event_uuid", "type": "string", "nullable": False, "field_id": 1},  # event_id, renamed
        {"name": "member_id", "type": "string", "field_id": 4},  # long -> string
        {"name": "country", "type": "string", "field_id": 5},
    ]
    response = await client.put(f"/api/v1/datasets/{created['id']}/schema", json={"fields": renamed})
    assert response.status_code == 200, response.text
    history = """query($id: ID!, $first: Int!) { dataset(id: $id) { ... on Dataset {
        name
        schemaHistory(first: $first) { total nextCursor items { version
            diff { added removed renamed { fieldId oldPath newPath } retyped { path oldType newType } } } }
    } } }"""
    body = await gql(client, history, id=str(created["id"]), first=1)
    page = body["data"]["dataset"]["schemaHistory"]
    assert page["total"] == 2 and page["nextCursor"] is not None
    newest = page["items"][0]
    assert newest["version"] == 2
    assert newest["diff"]["renamed"] == [{"fieldId": 1, "oldPath": "event_id", "newPath": "event_uuid"}]
    assert newest["diff"]["retyped"] == [{"path": "member_id", "oldType": "long", "newType": "string"}]
    assert newest["diff"]["added"] == ["country"] and set(newest["diff"]["removed"]) == {"device", "device.os"}

    # A bad argument of a nested field answers an error naming it; the rest of the answer stands.
    bad = await gql(client, history, id=str(created["id"]), first=0)
    assert bad["data"]["dataset"]["name"] == "playback.events"
    assert bad["errors"][0]["message"] == "first must be between 1 and 100, got 0"
    assert bad["errors"][0]["extensions"] == {"code": "invalid_input", "field": "first"}
    # ... and does not undo a mutation that succeeded before it.
    mutation = """mutation($id: ID!, $rev: Int!) {
        updateDataset(id: $id, input: {description: "kept"}, expectedRevision: $rev) {
            ... on Dataset { description schemaHistory(first: 0) { total } }
        }
    }"""
    current = (await client.get(f"/api/v1/datasets/{created['id']}")).json()
    answer = await gql(client, mutation, id=str(created["id"]), rev=current["revision"])
    assert answer["errors"][0]["extensions"]["field"] == "first"
    assert (await client.get(f"/api/v1/datasets/{created['id']}")).json()["description"] == "kept"


async def test_register_a_dataset_with_nested_fields_and_refusals_naming_the_input(client: httpx.AsyncClient) -> None:
    mutation = f"mutation($input: DatasetInput!) {{ registerDataset(input: $input) {{ {DATASET_FIELDS} }} }}"
    given = {
        "namespace": NS,
        "name": "raw.sessions",
        "kind": "TABLE",
        "format": "iceberg",
        "partitioning": [{"column": "started_at", "transform": "day"}],
        "fields": [
            {"name": "session_id", "type": "string", "nullable": False, "sourceFieldId": 1},
            {"name": "device", "type": "struct", "fields": [{"name": "os", "type": "string", "tags": ["dim"]}]},
        ],
        "owners": [{"name": "team:sessions"}, {"name": "dana@example.com", "role": "data_steward"}],
        "tags": ["raw"],
    }
    created = (await gql(client, mutation, input=given))["data"]["registerDataset"]
    assert created["__typename"] == "Dataset", created
    assert [(f["path"], f["sourceFieldId"]) for f in created["fields"]] == [
        ("session_id", 1),
        ("device", None),
        ("device.os", None),
    ]
    assert created["owners"] == [
        {"name": "dana@example.com", "role": "data_steward"},
        {"name": "team:sessions", "role": "technical_owner"},
    ]
    rest = (await client.get(f"/api/v1/datasets/{created['id']}")).json()
    assert rest["partitioning"] == [{"column": "started_at", "transform": "day"}]
    again = (await gql(client, mutation, input=given))["data"]["registerDataset"]
    assert again["__typename"] == "ConflictError" and "raw.sessions" in again["message"]
    dotted = {"namespace": NS, "name": "raw.other", "fields": [{"name": "a.b", "type": "string"}]}
    refused = (await gql(client, mutation, input=dotted))["data"]["registerDataset"]
    assert refused["__typename"] == "InvalidInputError" and refused["field"] == "input.fields.0", refused
    assert "nest it under 'fields'" in refused["message"]
    bad_role = {"namespace": NS, "name": "raw.other", "owners": [{"name": "x", "role": "boss"}]}
    refused = (await gql(client, mutation, input=bad_role))["data"]["registerDataset"]
    assert refused["field"] == "input.owners.0.role" and "boss" in refused["message"]
    assert (
        await client.get("/api/v1/datasets/by-name", params={"namespace": NS, "name": "raw.other"})
    ).status_code == 404


async def test_clusters_commands_and_the_attempts_of_a_job_that_ran(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Any
) -> None:
    from headwater.jobs.worker import JobWorker

    await _shell_cluster(client)
    listing = await gql(
        client,
        """{ clusters { ... on ClusterPage { total items { name type status tags maxConcurrentJobs } } }
             commands { ... on CommandPage { items { name executable tags } } } }""",
    )
    assert listing["data"]["clusters"] == {
        "total": 1,
        "items": [{"name": "local", "type": "SHELL", "status": "UP", "tags": ["sched:test"], "maxConcurrentJobs": 4}],
    }
    assert listing["data"]["commands"]["items"] == [
        {"name": "sh", "executable": ["/bin/sh", "-c"], "tags": ["type:sh"]}
    ]
    bad_sort = await gql(client, '{ clusters(sort: "colour") { ... on Error { field } } }')
    assert bad_sort["data"]["clusters"]["field"] == "sort"

    submit = """mutation { submitJob(input: {id: "gql-ran", name: "echo", user: "alice", commandArgs: ["echo hi"],
                clusterCriteria: [["sched:test"]], commandCriteria: ["type:sh"]}) { ... on Job { id } } }"""
    assert (await gql(client, submit))["data"]["submitJob"] == {"id": "gql-ran"}
    worker = JobWorker(app.state.sessionmaker, data_dir=tmp_path / "data", heartbeat_interval=0.2, kill_grace=2.0)
    try:
        worker.drain(timeout=30)
    finally:
        worker.shutdown()
    ran = await gql(
        client,
        '{ job(id: "gql-ran") { ... on Job { status attempts { attempt exitCode outcome pid } '
        "transitions { toStatus } } } }",
    )
    job = ran["data"]["job"]
    assert job["status"] == "SUCCEEDED", job
    assert [(a["attempt"], a["exitCode"], a["outcome"]) for a in job["attempts"]] == [(1, 0, "SUCCEEDED")]
    assert job["attempts"][0]["pid"] > 0 and job["transitions"][-1]["toStatus"] == "SUCCEEDED"


async def test_the_change_feed_is_followed_by_position(client: httpx.AsyncClient) -> None:
    created = await register(client, PLAY)
    patch = await client.patch(
        f"/api/v1/datasets/{created['id']}",
        json={"description": "changed"},
        headers={"If-Match": f'"{created["id"]}.{created["revision"]}"'},
    )
    assert patch.status_code == 200, patch.text
    feed = """query($after: ID!, $kinds: [ChangeKind!]) {
        changeEvents(after: $after, first: 1, kinds: $kinds) {
            ... on ChangeFeed { nextAfter items { id kind entityType entityId name payload } }
            ... on Error { message field }
        }
    }"""
    first = (await gql(client, feed, after="0"))["data"]["changeEvents"]
    assert [(e["kind"], e["entityId"], e["name"]) for e in first["items"]] == [
        ("CREATED", str(created["id"]), "playback.events")
    ]
    second = (await gql(client, feed, after=first["nextAfter"]))["data"]["changeEvents"]
    assert [e["kind"] for e in second["items"]] == ["METADATA_UPDATED"]
    assert int(second["items"][0]["id"]) > int(first["items"][0]["id"]) == int(first["nextAfter"])
    end = (await gql(client, feed, after=second["nextAfter"]))["data"]["changeEvents"]
    assert end == {"nextAfter": second["nextAfter"], "items": []}
    only_updates = (await gql(client, feed, after="0", kinds=["METADATA_UPDATED"]))["data"]["changeEvents"]
    assert [e["kind"] for e in only_updates["items"]] == ["METADATA_UPDATED"]
    bad = (await gql(client, feed, after="soon"))["data"]["changeEvents"]
    assert bad["field"] == "after"


async def test_sql_lineage_read_applied_and_edges_declared_by_hand(client: httpx.AsyncClient) -> None:
    for name in ("raw.plays", "curated.plays", "agg.daily"):
        body = {
            "namespace": NS,
            "name": name,
            "fields": [{"name": "id", "type": "long"}, {"name": "v", "type": "string"}],
        }
        await register(client, body)
    sql = "INSERT INTO curated.plays SELECT id, upper(v) AS v FROM raw.plays"
    read = """query($sql: String!, $ns: String) { sqlLineage(sql: $sql, namespace: $ns, dialect: SPARK) {
        __typename
        ... on SqlLineage { appliedEdges statements { kind target { name } inputs { name } columns { field inputs } } }
        ... on Error { message field }
    } }"""
    lineage = (await gql(client, read, sql=sql, ns=NS))["data"]["sqlLineage"]
    assert lineage["appliedEdges"] == 0 and lineage["statements"][0]["target"] == {"name": "curated.plays"}
    columns = {c["field"]: c["inputs"] for c in lineage["statements"][0]["columns"]}
    assert [(i["name"], i["field"]) for i in columns["v"]] == [("raw.plays", "v")]
    broken = (await gql(client, read, sql="SELECT a,\nFROM t WHERE (", ns=NS))["data"]["sqlLineage"]
    assert broken["__typename"] == "InvalidInputError" and "line" in broken["message"]
    assert (await gql(client, read, sql="", ns=NS))["data"]["sqlLineage"]["field"] == "sql"

    apply = """mutation($sql: String!, $ns: String) {
        applySqlLineage(sql: $sql, namespace: $ns, jobName: "curate_plays") { ... on SqlLineage { appliedEdges } }
    }"""
    assert (await gql(client, apply, sql=sql, ns=NS))["data"]["applySqlLineage"]["appliedEdges"] == 2
    impact = await gql(
        client,
        "query($node: NodeInput!) { impact(node: $node) { ... on Impact { columns { name field } jobs { name } } } }",
        node={"namespace": NS, "name": "raw.plays", "field": "v"},
    )
    assert impact["data"]["impact"] == {
        "columns": [{"name": "curated.plays", "field": "v"}],
        "jobs": [{"name": "curate_plays"}],
    }

    declare = """mutation($input: ManualEdgeInput!) { declareLineageEdge(input: $input) {
        __typename ... on ManualEdge { id level created origin source target } ... on Error { message field }
    } }"""
    edge = {
        "source": {"namespace": NS, "name": "curated.plays", "field": "id"},
        "target": {"namespace": NS, "name": "agg.daily", "field": "id"},
        "subtype": "AGGREGATION",
    }
    first = (await gql(client, declare, input=edge))["data"]["declareLineageEdge"]
    assert (first["__typename"], first["level"], first["created"], first["origin"]) == (
        "ManualEdge",
        "column",
        True,
        "manual",
    )
    again = (await gql(client, declare, input=edge))["data"]["declareLineageEdge"]
    assert again["created"] is False and again["id"] == first["id"]
    known_from_sql = {
        **edge,
        "source": {"namespace": NS, "name": "raw.plays", "field": "v"},
        "target": {"namespace": NS, "name": "curated.plays", "field": "v"},
        "jobName": "curate_plays",
        "subtype": columns["v"][0]["subtype"],  # the same edge as the SQL's: same ends, job, type and subtype
    }
    conflict = (await gql(client, declare, input=known_from_sql))["data"]["declareLineageEdge"]
    assert conflict["__typename"] == "ConflictError" and "already known from sql" in conflict["message"], conflict
    unknown = {**edge, "target": {"namespace": NS, "name": "nowhere", "field": "id"}}
    assert (await gql(client, declare, input=unknown))["data"]["declareLineageEdge"]["__typename"] == "NotFoundError"

    withdraw = """mutation($id: ID!) { withdrawLineageEdge(level: COLUMN, id: $id) {
        __typename ... on Withdrawn { id level } ... on Error { message } } }"""
    withdrawn = (await gql(client, withdraw, id=first["id"]))["data"]["withdrawLineageEdge"]
    assert withdrawn == {"__typename": "Withdrawn", "id": first["id"], "level": "column"}
    twice = (await gql(client, withdraw, id=first["id"]))["data"]["withdrawLineageEdge"]
    assert twice["__typename"] == "NotFoundError"


async def test_inputs_that_once_escaped_as_unexpected_errors_are_typed_refusals(client: httpx.AsyncClient) -> None:
    await register(client, PLAY)
    refusal = "__typename ... on Error { message field }"
    unicode_digit = (await gql(client, f'{{ dataset(id: "²") {{ {refusal} }} }}'))["data"]["dataset"]
    assert unicode_digit["__typename"] == "InvalidInputError" and unicode_digit["field"] == "id"
    many_digits = (await gql(client, f'{{ dataset(id: "{"9" * 5000}") {{ {refusal} }} }}'))["data"]["dataset"]
    assert many_digits["__typename"] == "InvalidInputError"
    nul = "a\u0000b"
    suggest = (await gql(client, f"query($p: String!) {{ suggest(prefix: $p) {{ {refusal} }} }}", p=nul))["data"]
    assert suggest["suggest"]["field"] == "prefix"
    search = (await gql(client, f"query($q: String) {{ search(query: $q) {{ {refusal} }} }}", q=nul))["data"]
    assert search["search"]["field"] == "q"
    run = (await gql(client, f"query($id: String!) {{ lineageRun(id: $id) {{ {refusal} }} }}", id=nul))["data"]
    assert run["lineageRun"]["__typename"] in ("InvalidInputError", "NotFoundError")  # PostgreSQL / SQLite
    # A cursor is not signed: one made up with a key beyond 64 bits is refused, not passed to the database.
    forged = base64.urlsafe_b64encode(orjson.dumps({"s": "id", "k": [2**63, 2**63]})).decode().rstrip("=")
    paged = await gql(client, f'{{ datasets(sort: "id", after: "{forged}") {{ {refusal} }} }}')
    assert paged["data"]["datasets"]["field"] == "cursor"
    assert (await client.get("/api/v1/search", params={"q": nul})).status_code == 400


async def test_cross_site_and_alias_heavy_requests_are_refused(client: httpx.AsyncClient) -> None:
    register_mutation = '{"query": "mutation { registerDataset(input: {name: \\"x.y\\"}) { __typename } }"}'
    # A browser sends text/plain to another site without asking it first: never run a mutation from one.
    plain = await client.post("/graphql", content=register_mutation, headers={"content-type": "text/plain"})
    assert plain.status_code == 415 and "application/json" in plain.json()["error"]["message"]
    assert (await client.get("/api/v1/datasets")).json()["total"] == 0
    as_json = await client.post("/graphql", content=register_mutation, headers={"content-type": "application/json"})
    assert as_json.status_code == 200 and as_json.json()["data"]["registerDataset"]["__typename"] == "Dataset"
    aliases = " ".join(f"a{i}: sources {{ __typename }}" for i in range(31))
    heavy = await gql(client, "{ " + aliases + " }", status=400)
    assert "aliases" in heavy["errors"][0]["message"].lower()
    assert "errors" not in await gql(
        client, "{ " + " ".join(f"a{i}: sources {{ __typename }}" for i in range(30)) + " }"
    )


async def test_a_page_of_jobs_reads_their_lineage_runs_in_two_queries(client: httpx.AsyncClient, app: FastAPI) -> None:
    await _shell_cluster(client)
    for i in range(4):
        body = {
            "name": f"job-{i}",
            "user": "carol",
            "command_args": ["true"],
            "cluster_criteria": [["sched:test"]],
            "command_criteria": ["type:sh"],
        }
        job = (await client.post("/api/v1/jobs", json=body)).json()
        start = {**_event(f"job-{i}", "raw.plays", "curated.plays", i), "eventType": "START"}
        start["run"] = {"runId": job["run_id"]}
        assert (await client.post("/api/v1/lineage", json=start)).status_code == 201
    query = (
        '{ jobs(filter: {user: "carol"}) { ... on JobPage { items { name lineageRun { jobName state children } } } } }'
    )
    with statements(app) as seen:
        items = (await gql(client, query))["data"]["jobs"]["items"]
    assert sorted((i["name"], i["lineageRun"]["jobName"], i["lineageRun"]["state"]) for i in items) == [
        (f"job-{i}", f"job-{i}", "START") for i in range(4)
    ]
    assert len([s for s in seen if "FROM lineage_runs" in s]) == 2, seen  # the runs, then their children
