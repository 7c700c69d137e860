"""GraphQL's limits through the real app: a query's worst-case cost is refused before it runs, an answer over the
size cap and a request past its time budget are clear errors that keep nothing, on both databases."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import get_named_type, get_nullable_type, is_list_type, is_object_type, parse
from sqlalchemy import text

from headwater.app import create_app
from headwater.catalog import sources
from headwater.graphql.limits import LIST_BOUNDS, estimate
from headwater.graphql.schema import schema
from headwater.settings import Settings

pytestmark = pytest.mark.anyio

FIELDS = (
    "id path name parentPath position type normalizedType nullable sourceFieldId sourceDescription description tags"
)
PAGE = "datasets(first: 100) { ... on DatasetPage { items { id namespace name description tags fields { %s } } } }"
# The query of the finding: thirty aliases of a page of datasets with every column (25 MB, 60 s, 667 MB on main).
HEAVY = "{ " + " ".join(f"a{i}: {PAGE % FIELDS}" for i in range(30)) + " }"
Limited = Callable[..., Any]


@pytest.fixture
def limited(app_settings: Settings, client: httpx.AsyncClient) -> Limited:
    """An app on the suite's database with other GraphQL limits (``client`` empties the tables afterwards)."""

    @asynccontextmanager
    async def make(**limits: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(app_settings.model_copy(update=limits), prepare=False)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://headwater.test") as http:
            yield http
        app.state.engine.dispose()

    return make


async def _catalog(client: httpx.AsyncClient, datasets: int, columns: int) -> None:
    for i in range(datasets):
        fields = [{"name": f"column_{j}", "type": "string", "description": f"column {j}"} for j in range(columns)]
        created = await client.post("/api/v1/datasets", json={"name": f"db.table_{i}", "fields": fields})
        assert created.status_code == 201, created.text


def _cost(query: str, **variables: Any) -> int:
    return estimate(schema._schema, parse(query), None, variables)


async def test_the_query_that_answered_25_mb_is_refused_before_it_runs(client: httpx.AsyncClient) -> None:
    await _catalog(client, 20, 40)
    began = time.monotonic()
    answer = await client.post("/graphql", json={"query": HEAVY})
    elapsed = time.monotonic() - began
    assert answer.status_code == 400, answer.text[:300]
    body = answer.json()
    assert body["data"] is None and len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["extensions"] == {"code": "query_too_costly", "cost": 15_003_030, "limit": 1_000_000}
    assert "15,003,030" in error["message"] and "HEADWATER_GRAPHQL_MAX_COST" in error["message"]
    assert len(answer.content) < 1000 and elapsed < 2
    one = await client.post("/graphql", json={"query": "{ " + PAGE % "name" + " }"})  # one page still answers
    assert one.status_code == 200 and len(one.json()["data"]["datasets"]["items"]) == 20


def test_every_list_of_objects_has_a_bound() -> None:
    unbounded = [
        f"{name}.{field_name}"
        for name, kind in schema._schema.type_map.items()
        if not name.startswith("__") and is_object_type(kind)
        for field_name, field in kind.fields.items()  # type: ignore[attr-defined]
        if is_list_type(get_nullable_type(field.type))
        and is_object_type(get_named_type(field.type))
        and f"{name}.{field_name}" not in LIST_BOUNDS
    ]
    assert unbounded == [], "give these lists a bound in headwater.graphql.limits.LIST_BOUNDS"


def test_the_estimate_multiplies_nested_lists_and_counts_aliases_fragments_and_variables() -> None:
    page = "datasets(first: 10) { ... on DatasetPage { items { name fields { name } } } }"
    assert _cost("{ " + page + " }") == 1 + 10 + 10 * 5000
    assert _cost("{ a: " + page + " b: " + page + " }") == 2 * (1 + 10 + 10 * 5000)
    assert _cost("{ datasets { ... on DatasetPage { items { name } } } }") == 1 + 50  # the default page
    assert _cost("{ datasets(first: 500) { ... on DatasetPage { items { name } } } }") == 1 + 100  # the maximum
    by_variable = "query($n: Int!) { datasets(first: $n) { ... on DatasetPage { items { fields { name } } } } }"
    assert _cost(by_variable, n=2) == 1 + 2 + 2 * 5000
    fragment = """
        query { datasets(first: 3) { ...page ... on Error { message } } }
        fragment page on DatasetPage { items { ...columns } }
        fragment columns on Dataset { fields { name } owners { name } }
    """
    assert _cost(fragment) == 1 + 3 + 3 * (5000 + 100)
    history = "{ dataset(id: 1) { ... on Dataset { schemaHistory(first: 2) { items { version fields } } } } }"
    assert _cost(history) == 1 + 1 + 2 + 2 * 5000
    graph = "{ lineage(node: {datasetId: 1}, maxNodes: 300) { ... on LineageGraph { nodes { id } edges { source } } } }"
    assert _cost(graph) == 1 + 300 + 300


async def test_the_cost_limit_is_a_setting(limited: Limited) -> None:
    async with limited(graphql_max_cost=100) as http:
        ok = await http.post("/graphql", json={"query": "{ datasets(first: 99) { ... on DatasetPage { total } } }"})
        assert ok.status_code == 200, ok.text
        refused = await http.post(
            "/graphql", json={"query": "{ datasets(first: 100) { ... on DatasetPage { items { name } } } }"}
        )
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["extensions"] == {"code": "query_too_costly", "cost": 101, "limit": 100}


async def test_an_answer_over_the_size_cap_is_an_error_and_keeps_nothing(
    client: httpx.AsyncClient, limited: Limited
) -> None:
    await _catalog(client, 5, 40)
    async with limited(graphql_max_result_bytes=4096) as http:
        answer = await http.post("/graphql", json={"query": "{ " + PAGE % FIELDS + " }"})
        assert answer.status_code == 400, answer.text[:300]
        error = answer.json()["errors"][0]
        assert error["extensions"]["code"] == "result_too_large" and error["extensions"]["limit"] == 4096
        assert "HEADWATER_GRAPHQL_MAX_RESULT_BYTES" in error["message"]
        assert len(answer.content) < 1000
        columns = ", ".join(f'{{name: "column_number_{j}", type: "string"}}' for j in range(300))
        mutation = f'mutation {{ registerDataset(input: {{name: "db.big", fields: [{columns}]}}) {{ ... on Dataset {{ id fields {{ name }} }} }} }}'
        refused = await http.post("/graphql", json={"query": mutation})
        assert refused.json()["errors"][0]["extensions"]["code"] == "result_too_large"
    found = await client.get("/api/v1/datasets", params={"name_prefix": "db.big"})
    assert found.json()["total"] == 0


async def test_a_request_past_its_time_budget_is_stopped_and_keeps_nothing(
    client: httpx.AsyncClient, limited: Limited
) -> None:
    await _catalog(client, 5, 10)
    async with limited(graphql_time_budget=1e-6) as http:
        answer = await http.post("/graphql", json={"query": "{ " + PAGE % "name" + " }"})
        assert answer.status_code == 400, answer.text[:300]
        error = answer.json()["errors"][0]
        assert error["extensions"]["code"] == "time_budget_exceeded"
        assert "HEADWATER_GRAPHQL_TIME_BUDGET" in error["message"]
        mutation = 'mutation { registerDataset(input: {name: "db.late"}) { ... on Dataset { id name } } }'
        late = await http.post("/graphql", json={"query": mutation})
        assert late.json()["errors"][0]["extensions"]["code"] == "time_budget_exceeded"
    found = await client.get("/api/v1/datasets", params={"name_prefix": "db.late"})
    assert found.json()["total"] == 0


def test_the_limits_default_to_what_a_single_page_needs(tmp_path: Path) -> None:
    defaults = Settings(data_dir=tmp_path)
    assert defaults.graphql_max_cost >= _cost("{ " + PAGE % "name" + " }")
    assert (defaults.graphql_max_result_bytes, defaults.graphql_time_budget) == (10 * 1024 * 1024, 30.0)


async def test_a_statement_past_the_time_budget_is_cancelled_by_postgresql(
    client: httpx.AsyncClient, limited: Limited, app_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget reaches the database as the transaction's statement_timeout, however late the transaction begins
    (headwater.graphql.routes sets it as the session begins one): one slow statement is stopped at the budget."""
    if not app_settings.resolved_database_url.startswith("postgresql"):
        pytest.skip("statement_timeout is PostgreSQL's; SQLite has the deadline check only")

    def slow(session: Any, **_kwargs: Any) -> Any:
        session.execute(text("SELECT pg_sleep(5)"))
        raise AssertionError("pg_sleep(5) finished: no statement timeout")

    monkeypatch.setattr(sources, "list_sources", slow)
    async with limited(graphql_time_budget=0.3) as http:
        began = time.monotonic()
        answer = await http.post("/graphql", json={"query": "{ sources { ... on SourceList { items { name } } } }"})
    assert time.monotonic() - began < 3
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"][0]["extensions"]["code"] == "time_budget_exceeded"
