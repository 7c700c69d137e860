"""Restricted datasets end to end over REST and GraphQL: a ``customers`` table tagged ``pii`` feeds a daily
aggregate and a dashboard extract. An analyst (a viewer outside ``pii-readers``) sees the aggregate and the
extract, a placeholder upstream of them, and never ``customers`` itself: not by id, name, list, search,
suggestion, change feed, GraphQL or the cache; a pii-reader and an admin see everything."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from headwater.auth.actions import Action, Role

pytestmark = pytest.mark.anyio

Mint = Callable[..., str]
NS = "postgres://warehouse:5432"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@dataclass
class Shop:
    """The scenario's datasets and the tokens of its three readers."""

    customers: int
    daily: int
    dashboard: int
    admin: dict[str, str]
    analyst: dict[str, str]
    reader: dict[str, str]


def _dataset(name: str, columns: list[str], tags: list[str] = (), owners: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {
        "namespace": NS,
        "name": name,
        "fields": [{"name": c, "type": "string"} for c in columns],
        "tags": list(tags),
        "owners": [{"name": o} for o in owners],
        "description": f"the {name} table",
    }


async def _edge(client: httpx.AsyncClient, admin: dict[str, str], source: str, target: str, field: str | None) -> None:
    body = {
        "source": {"namespace": NS, "name": source, "field": field},
        "target": {"namespace": NS, "name": target, "field": field},
        "job_name": "nightly" if target.endswith("daily") else "dashboard_refresh",
    }
    answer = await client.post("/api/v1/lineage/edges", json=body, headers=admin)
    assert answer.status_code == 201, answer.text


@pytest.fixture
async def shop(auth_app: FastAPI, auth_client: httpx.AsyncClient, mint: Mint) -> Shop:
    admin = bearer(mint("root", roles=(Role.ADMIN,)))
    analyst = bearer(mint("ann", roles=(Role.VIEWER,), groups=("analysts",)))
    reader = bearer(mint("pia", roles=(Role.VIEWER,), groups=("analysts", "pii-readers")))
    tag = await auth_client.put("/api/v1/restricting-tags/pii", json={"groups": ["pii-readers"]}, headers=admin)
    assert tag.status_code == 200, tag.text
    ids = []
    for body in (
        _dataset("shop.public.customers", ["id", "email", "country"], tags=["pii"], owners=["team-crm"]),
        _dataset("shop.marts.customers_daily", ["country", "id"]),
        _dataset("shop.marts.customers_dashboard", ["country", "id"]),
    ):
        answer = await auth_client.post("/api/v1/datasets", json=body, headers=admin)
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    for field in ("country", "id", None):
        await _edge(auth_client, admin, "shop.public.customers", "shop.marts.customers_daily", field)
        await _edge(auth_client, admin, "shop.marts.customers_daily", "shop.marts.customers_dashboard", field)
    auth_app.state.search_indexer.catch_up()
    return Shop(ids[0], ids[1], ids[2], admin, analyst, reader)


async def test_the_analyst_gets_404_for_customers_by_id_and_by_name_as_for_a_dataset_that_does_not_exist(
    auth_client: httpx.AsyncClient, shop: Shop
) -> None:
    hidden = await auth_client.get(f"/api/v1/datasets/{shop.customers}", headers=shop.analyst)
    missing = await auth_client.get("/api/v1/datasets/999999", headers=shop.analyst)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"] == f"no dataset with id {shop.customers}"
    by_name = await auth_client.get(
        "/api/v1/datasets/by-name", params={"namespace": NS, "name": "shop.public.customers"}, headers=shop.analyst
    )
    assert by_name.status_code == 404
    assert "restrict" not in by_name.text and "pii" not in by_name.text
    for path in ("schema-versions", "schema-versions/1", "restriction"):
        answer = await auth_client.get(f"/api/v1/datasets/{shop.customers}/{path}", headers=shop.analyst)
        assert answer.status_code == 404, path
    assert (await auth_client.get(f"/api/v1/datasets/{shop.daily}", headers=shop.analyst)).status_code == 200


async def test_the_analyst_cannot_edit_customers_or_declare_lineage_for_it_and_is_told_404_not_403(
    auth_client: httpx.AsyncClient, shop: Shop, mint: Mint
) -> None:
    etag = (await auth_client.get(f"/api/v1/datasets/{shop.customers}", headers=shop.admin)).headers["ETag"]
    headers = {**shop.analyst, "If-Match": etag}
    patch = await auth_client.patch(
        f"/api/v1/datasets/{shop.customers}", json={"description": "mine now", "tags": []}, headers=headers
    )
    assert patch.status_code == 404
    # Writes no ownership could grant are refused before any look-up: the same 403 as for no dataset at all.
    delete = await auth_client.delete(f"/api/v1/datasets/{shop.customers}?reason=x", headers=shop.analyst)
    nothing = await auth_client.delete("/api/v1/datasets/999999?reason=x", headers=shop.analyst)
    assert (delete.status_code, delete.json()) == (403, nothing.json())
    lift = await auth_client.delete(f"/api/v1/datasets/{shop.customers}/restriction", headers=shop.analyst)
    assert lift.status_code == 404
    body = {
        "source": {"namespace": NS, "name": "shop.public.customers", "field": "email"},
        "target": {"namespace": NS, "name": "shop.marts.customers_daily", "field": "id"},
    }
    edge = await auth_client.post("/api/v1/lineage/edges", json=body, headers=shop.analyst)
    assert edge.status_code == 403 and "shop.public" not in edge.text  # lineage.write, which a viewer lacks
    editor = bearer(mint("ed", roles=(Role.EDITOR,), groups=("analysts",)))
    edge = await auth_client.post("/api/v1/lineage/edges", json=body, headers=editor)
    assert edge.status_code == 404
    assert "no dataset named 'shop.public.customers'" in edge.json()["error"]["message"]
    unchanged = await auth_client.get(f"/api/v1/datasets/{shop.customers}", headers=shop.admin)
    assert unchanged.json()["description"] == "the shop.public.customers table"


async def test_lists_counts_and_the_change_feed_leave_customers_out_for_the_analyst_only(
    auth_client: httpx.AsyncClient, shop: Shop
) -> None:
    for who, expected in ((shop.analyst, 2), (shop.reader, 3), (shop.admin, 3)):
        page = (await auth_client.get("/api/v1/datasets?limit=2", headers=who)).json()
        names = [d["name"] for d in page["items"]]
        assert len(names) == 2  # filtered in the query: the first page is full
        if page.get("next_cursor"):
            more = await auth_client.get(f"/api/v1/datasets?limit=2&cursor={page['next_cursor']}", headers=who)
            names += [d["name"] for d in more.json()["items"]]
        assert len(names) == expected
        assert ("shop.public.customers" in names) is (expected == 3)
    feed = (await auth_client.get("/api/v1/change-events?limit=1000", headers=shop.analyst)).json()
    assert shop.customers not in {e["entity_id"] for e in feed["items"] if e["entity_type"] == "dataset"}
    assert "customers_daily" in str(feed) and "shop.public.customers" not in str(feed)
    full = (await auth_client.get("/api/v1/change-events?limit=1000", headers=shop.reader)).json()
    assert shop.customers in {e["entity_id"] for e in full["items"]}


async def test_search_and_suggestions_never_find_customers_for_the_analyst(
    auth_client: httpx.AsyncClient, shop: Shop
) -> None:
    found = (await auth_client.get("/api/v1/search?q=customers", headers=shop.analyst)).json()
    assert {h["name"] for h in found["items"]} == {"shop.marts.customers_daily", "shop.marts.customers_dashboard"}
    assert found["total"] == 2
    assert "pii" not in str(found["facets"])  # facet counts are over what the reader may see
    suggested = (await auth_client.get("/api/v1/search/suggest?prefix=shop.p", headers=shop.analyst)).json()
    assert suggested["items"] == []
    words = (await auth_client.get("/api/v1/search/suggest?prefix=cust", headers=shop.analyst)).json()
    assert "shop.public.customers" not in {s["text"] for s in words["items"]}
    for who in (shop.reader, shop.admin):
        found = (await auth_client.get("/api/v1/search?q=customers", headers=who)).json()
        assert "shop.public.customers" in {h["name"] for h in found["items"]}
        suggested = (await auth_client.get("/api/v1/search/suggest?prefix=shop.p", headers=who)).json()
        assert [s["text"] for s in suggested["items"]] == ["shop.public.customers"]


async def test_lineage_shows_the_analyst_a_placeholder_upstream_and_keeps_the_impact_counts(
    auth_client: httpx.AsyncClient, shop: Shop
) -> None:
    params = {"dataset_id": shop.dashboard, "direction": "upstream", "depth": 3}
    graph = (await auth_client.get("/api/v1/lineage/graph", params=params, headers=shop.analyst)).json()
    nodes = {n["distance"]: n for n in graph["nodes"]}
    assert nodes[-1]["name"] == "shop.marts.customers_daily"
    placeholder = nodes[-2]
    assert placeholder["hidden"] is True and placeholder["kind"] == "restricted"
    assert placeholder["id"] is None and placeholder["dataset_id"] is None  # nothing to join answers on
    assert placeholder["name"] is None and placeholder["namespace"] is None and placeholder["field"] is None
    assert placeholder["label"] == "restricted-1" and graph["hidden"] == 1
    assert {e["source"] for e in graph["edges"]} == {"restricted-1", f"{NS}/shop.marts.customers_daily"}
    assert "shop.public.customers" not in str(graph) and "team-crm" not in str(graph)
    seen = (await auth_client.get("/api/v1/lineage/graph", params=params, headers=shop.reader)).json()
    assert seen["hidden"] == 0 and "shop.public.customers" in {n["name"] for n in seen["nodes"]}

    # Impact of a column upstream of customers is asked by the reader; the analyst may ask the aggregate's.
    impact = await auth_client.get(
        "/api/v1/lineage/impact", params={"dataset_id": shop.customers}, headers=shop.analyst
    )
    assert impact.status_code == 404
    for who in (shop.analyst, shop.reader):
        answer = (
            await auth_client.get("/api/v1/lineage/impact", params={"dataset_id": shop.daily}, headers=who)
        ).json()
        assert answer["total"] > 0 and answer["hidden"] == 0
    admin_impact = (
        await auth_client.get("/api/v1/lineage/impact", params={"dataset_id": shop.customers}, headers=shop.admin)
    ).json()
    assert {d["name"] for d in admin_impact["datasets"]} == {
        "shop.marts.customers_daily",
        "shop.marts.customers_dashboard",
    }
    path = await auth_client.get(
        "/api/v1/lineage/path",
        params={
            "from_namespace": NS,
            "from_name": "shop.public.customers",
            "to_namespace": NS,
            "to_name": "shop.marts.customers_dashboard",
        },
        headers=shop.analyst,
    )
    assert path.status_code == 404


async def test_impact_through_a_hidden_dataset_counts_it_as_a_placeholder(
    auth_client: httpx.AsyncClient, shop: Shop
) -> None:
    # Restrict the aggregate in the middle to the crm team: the analyst's impact of nothing upstream of it is
    # asked from customers by the reader, who is not in team-crm.
    put = await auth_client.put(
        f"/api/v1/datasets/{shop.daily}/restriction", json={"groups": ["team-crm"]}, headers=shop.admin
    )
    assert put.status_code == 200, put.text
    assert put.json()["groups"] == ["team-crm"] and put.json()["set_by"] == "root"
    as_reader = (
        await auth_client.get("/api/v1/lineage/impact", params={"dataset_id": shop.customers}, headers=shop.reader)
    ).json()
    as_admin = (
        await auth_client.get("/api/v1/lineage/impact", params={"dataset_id": shop.customers}, headers=shop.admin)
    ).json()
    assert as_reader["total"] == as_admin["total"]  # the shape and the counts stay honest
    assert as_reader["hidden"] == 3  # the aggregate and its two columns
    hidden = [d for d in as_reader["datasets"] if d["hidden"]]
    assert len(hidden) == 1 and hidden[0]["name"] is None and hidden[0]["id"] is None
    assert {n["kind"] for n in as_reader["datasets"] + as_reader["columns"] if n["hidden"]} == {"restricted"}
    assert str(shop.daily) not in {str(n["id"]) for n in as_reader["datasets"]}
    dashboard = next(d for d in as_reader["datasets"] if d["name"] == "shop.marts.customers_dashboard")
    assert dashboard["path"][1] == "restricted-1" or dashboard["path"][0] == "restricted-1"
    assert "customers_daily" not in str(as_reader)
    lifted = await auth_client.delete(f"/api/v1/datasets/{shop.daily}/restriction", headers=shop.admin)
    assert lifted.status_code == 204
    again = (
        await auth_client.get("/api/v1/lineage/impact", params={"dataset_id": shop.customers}, headers=shop.reader)
    ).json()
    assert again["hidden"] == 0
    # Each change is one audit entry naming the dataset and what was set.
    log = (await auth_client.get("/api/v1/audit", params={"action": "catalog.restrict"}, headers=shop.admin)).json()
    entries = [(e["method"], e["target_kind"], e["target"], e["summary"].get("groups")) for e in log["items"]]
    assert entries == [("DELETE", "dataset", str(shop.daily), None), ("PUT", "dataset", str(shop.daily), ["team-crm"])]


async def test_the_cache_answers_each_reader_of_the_same_url_in_turn_correctly(
    auth_client: httpx.AsyncClient, shop: Shop
) -> None:
    url = f"/api/v1/datasets/{shop.customers}"
    for _ in range(2):
        assert (await auth_client.get(url, headers=shop.admin)).status_code == 200
        assert (await auth_client.get(url, headers=shop.analyst)).status_code == 404
        assert (await auth_client.get(url, headers=shop.reader)).status_code == 200
        assert (await auth_client.get(url, headers=shop.analyst)).status_code == 404
    listing = "/api/v1/datasets?limit=50"
    for _ in range(2):
        for who, count in ((shop.reader, 3), (shop.analyst, 2), (shop.admin, 3), (shop.analyst, 2)):
            assert len((await auth_client.get(listing, headers=who)).json()["items"]) == count


async def test_graphql_answers_the_analyst_not_found_and_placeholders(
    auth_client: httpx.AsyncClient, shop: Shop
) -> None:
    query = """query($id: ID!) { dataset(id: $id) { __typename ... on Dataset { name } ... on Error { message } } }"""
    hidden = await auth_client.post(
        "/graphql", json={"query": query, "variables": {"id": str(shop.customers)}}, headers=shop.analyst
    )
    assert hidden.json().get("data"), hidden.text
    assert hidden.json()["data"]["dataset"] == {
        "__typename": "NotFoundError",
        "message": f"no dataset with id {shop.customers}",
    }
    seen = await auth_client.post(
        "/graphql", json={"query": query, "variables": {"id": str(shop.customers)}}, headers=shop.reader
    )
    assert seen.json()["data"]["dataset"]["name"] == "shop.public.customers"
    lineage = """query($id: ID!) { lineage(node: {datasetId: $id}, direction: UPSTREAM, depth: 3) {
        ... on LineageGraph { hidden nodes { kind id name namespace hidden label distance } } } }"""
    answer = await auth_client.post(
        "/graphql", json={"query": lineage, "variables": {"id": str(shop.dashboard)}}, headers=shop.analyst
    )
    graph = answer.json()["data"]["lineage"]
    assert graph["hidden"] == 1
    placeholder = {"name": None, "namespace": None, "hidden": True, "label": "restricted-1", "distance": -2}
    assert {**placeholder, "kind": "RESTRICTED", "id": None} in graph["nodes"]
    search = """{ search(query: "customers") { ... on SearchPage { total items { name } } }
        suggest(prefix: "shop.p") { ... on Suggestions { items { text } } } }"""
    found = (await auth_client.post("/graphql", json={"query": search}, headers=shop.analyst)).json()["data"]
    assert found["search"]["total"] == 2 and found["suggest"]["items"] == []
    datasets = """{ datasets(first: 50) { ... on DatasetPage { items { name } } } }"""
    listed = (await auth_client.post("/graphql", json={"query": datasets}, headers=shop.analyst)).json()["data"]
    assert "shop.public.customers" not in {d["name"] for d in listed["datasets"]["items"]}


async def test_cached_graphql_answers_are_served_only_to_the_audience_and_permission_they_were_made_for(
    auth_client: httpx.AsyncClient, shop: Shop, mint: Mint
) -> None:
    """A catalog read's answer is cached (headwater.graphql.answers) per audience, like REST's list pages: whoever
    asks first, each reader gets what running the query would give them, and one without catalog.read is refused."""
    listing = """{ datasets(first: 50) { ... on DatasetPage { total items { name } } ... on Error { code } } }"""
    one = """query($id: ID!) { dataset(id: $id) { __typename ... on Dataset { name } } }"""
    # The analyst again, with a token scoped to lineage: the same audience as the cached answers, no catalog.read.
    scoped = bearer(mint("ann", groups=("analysts",), scopes=(Action.LINEAGE_READ,)))
    for _ in range(2):  # the second round is answered from the cache
        for who, total in ((shop.admin, 3), (shop.analyst, 2), (shop.reader, 3), (shop.analyst, 2)):
            page = await auth_client.post("/graphql", json={"query": listing}, headers=who)
            assert page.json()["data"]["datasets"]["total"] == total, page.text
            answer = await auth_client.post(
                "/graphql", json={"query": one, "variables": {"id": str(shop.customers)}}, headers=who
            )
            expected = (
                {"__typename": "NotFoundError"}
                if total == 2
                else {"__typename": "Dataset", "name": "shop.public.customers"}
            )
            assert answer.json()["data"]["dataset"] == expected
        refused = await auth_client.post("/graphql", json={"query": listing}, headers=scoped)
        assert refused.json()["data"]["datasets"] == {"code": "forbidden"}


async def test_only_admins_and_owners_restrict_and_an_owner_cannot_restrict_a_dataset_away_from_themselves(
    auth_client: httpx.AsyncClient, shop: Shop, mint: Mint
) -> None:
    owner = bearer(mint("olga", roles=(Role.VIEWER,), groups=("team-crm",)))
    editor = bearer(mint("ed", roles=(Role.EDITOR,)))
    # The daily aggregate has no owners: an editor may edit it but not restrict it.
    refused = await auth_client.put(
        f"/api/v1/datasets/{shop.daily}/restriction", json={"groups": ["analysts"]}, headers=editor
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["detail"]["permission"] == "catalog.restrict"
    anonymous = await auth_client.put(f"/api/v1/datasets/{shop.daily}/restriction", json={"groups": ["analysts"]})
    assert anonymous.status_code == 401
    # team-crm owns customers, but olga is not a pii-reader: to her it does not exist.
    hidden = await auth_client.put(
        f"/api/v1/datasets/{shop.customers}/restriction", json={"groups": ["team-crm"]}, headers=owner
    )
    assert hidden.status_code == 404
    owned = await auth_client.post(
        "/api/v1/datasets", json=_dataset("crm.notes", ["id"], owners=["team-crm"]), headers=shop.admin
    )
    notes = owned.json()["id"]
    away = await auth_client.put(f"/api/v1/datasets/{notes}/restriction", json={"groups": ["finance"]}, headers=owner)
    assert away.status_code == 400 and away.json()["error"]["detail"]["field"] == "groups"
    ok = await auth_client.put(f"/api/v1/datasets/{notes}/restriction", json={"groups": ["team-crm"]}, headers=owner)
    assert ok.status_code == 200 and ok.json()["audience"] == ["team-crm"]
    assert (await auth_client.get(f"/api/v1/datasets/{notes}", headers=shop.analyst)).status_code == 404
    assert (await auth_client.get(f"/api/v1/datasets/{notes}", headers=owner)).status_code == 200
    bad = await auth_client.put(f"/api/v1/datasets/{notes}/restriction", json={"groups": []}, headers=owner)
    assert bad.status_code == 422
    tag = await auth_client.put("/api/v1/restricting-tags/secret", json={"groups": ["x"]}, headers=owner)
    assert tag.status_code == 403


async def test_removing_the_restricting_tag_needs_the_right_to_restrict(
    auth_client: httpx.AsyncClient, shop: Shop, mint: Mint
) -> None:
    editor = bearer(mint("eve", roles=(Role.EDITOR,), groups=("pii-readers",)))
    current = await auth_client.get(f"/api/v1/datasets/{shop.customers}", headers=editor)
    assert current.status_code == 200
    untag = await auth_client.patch(
        f"/api/v1/datasets/{shop.customers}",
        json={"tags": []},
        headers={**editor, "If-Match": current.headers["ETag"]},
    )
    assert untag.status_code == 403
    described = await auth_client.patch(
        f"/api/v1/datasets/{shop.customers}",
        json={"description": "customers of the shop"},
        headers={**editor, "If-Match": current.headers["ETag"]},
    )
    assert described.status_code == 200
    # An admin lifts the tag's restriction for everyone: the analyst finds customers again.
    assert (await auth_client.delete("/api/v1/restricting-tags/pii", headers=shop.admin)).status_code == 204
    assert (await auth_client.get(f"/api/v1/datasets/{shop.customers}", headers=shop.analyst)).status_code == 200
    tags = (await auth_client.get("/api/v1/restricting-tags", headers=shop.analyst)).json()
    assert tags == {"items": []}


async def test_a_name_taken_by_a_hidden_dataset_is_refused_without_its_id(
    auth_client: httpx.AsyncClient, shop: Shop, mint: Mint
) -> None:
    editor = bearer(mint("ed", roles=(Role.EDITOR,), groups=("analysts",)))
    taken = await auth_client.post("/api/v1/datasets", json=_dataset("shop.public.customers", ["id"]), headers=editor)
    assert taken.status_code == 409
    error = taken.json()["error"]
    assert str(shop.customers) not in str(error) and "dataset_id" not in error.get("detail", {})
    assert "taken by a dataset you may not see" in error["message"]
    mutation = """mutation($input: DatasetInput!) { registerDataset(input: $input) {
        __typename ... on Error { message } } }"""
    variables = {"input": {"namespace": NS, "name": "shop.public.customers", "fields": [{"name": "id", "type": "x"}]}}
    answer = await auth_client.post("/graphql", json={"query": mutation, "variables": variables}, headers=editor)
    result = answer.json()["data"]["registerDataset"]
    assert result["__typename"] == "ConflictError" and str(shop.customers) not in result["message"]
    # Someone who may see it is told which dataset holds the name.
    seer = bearer(mint("pat", roles=(Role.EDITOR,), groups=("pii-readers",)))
    told = await auth_client.post("/api/v1/datasets", json=_dataset("shop.public.customers", ["id"]), headers=seer)
    assert told.status_code == 409 and told.json()["error"]["detail"]["dataset_id"] == shop.customers


async def test_the_ui_shows_the_analyst_restricted_placeholders_without_names_or_links(
    auth_client: httpx.AsyncClient, shop: Shop
) -> None:
    pages = {
        "dataset": f"/ui/datasets/{shop.daily}",
        "impact": f"/ui/impact?dataset_id={shop.customers}",
        "columns": f"/ui/lineage?dataset_id={shop.dashboard}&field=country",
    }
    dataset = await auth_client.get(pages["dataset"], headers=shop.analyst)
    assert dataset.status_code == 200, dataset.text
    assert "restricted" in dataset.text and "shop.public.customers" not in dataset.text
    assert f"/ui/datasets/{shop.customers}" not in dataset.text and "/ui/datasets/None" not in dataset.text
    # The impact of customers itself is not for the analyst; from the reader's side the daily aggregate is hidden.
    assert (await auth_client.get(pages["impact"], headers=shop.analyst)).status_code == 404
    columns = await auth_client.get(pages["columns"], headers=shop.analyst)
    assert columns.status_code == 200, columns.text
    assert "a column of a restricted dataset" in columns.text and "shop.public.customers" not in columns.text
    assert "dataset_id=None" not in columns.text
    restrict = {"groups": ["team-crm"]}
    assert (
        await auth_client.put(f"/api/v1/datasets/{shop.daily}/restriction", json=restrict, headers=shop.admin)
    ).status_code == 200
    impact = await auth_client.get(pages["impact"], headers=shop.reader)
    assert impact.status_code == 200, impact.text
    assert "a restricted dataset" in impact.text and "counted, not named" in impact.text
    assert "customers_daily" not in impact.text and "/ui/datasets/None" not in impact.text
    page = await auth_client.get(f"/ui/datasets/{shop.dashboard}", headers=shop.admin)  # an admin sees it all
    assert "shop.public.customers" in page.text and f"/ui/datasets/{shop.customers}" in page.text
    own = await auth_client.get(f"/ui/datasets/{shop.customers}", headers=shop.reader)  # who it is restricted to
    assert "visible only to pii-readers" in own.text and 'through the tag <span class="tag">pii</span>' in own.text


async def test_sql_lineage_treats_a_hidden_table_as_unknown_to_the_catalog(
    auth_client: httpx.AsyncClient, shop: Shop
) -> None:
    contacts = _dataset("crm.contacts", ["id", "email", "country"], tags=["pii"])
    assert (await auth_client.post("/api/v1/datasets", json=contacts, headers=shop.admin)).status_code == 201
    body = {"sql": "CREATE TABLE crm.copy AS SELECT * FROM crm.contacts", "dialect": "postgres", "namespace": NS}
    seen = (await auth_client.post("/api/v1/lineage/sql", json=body, headers=shop.reader)).json()
    assert {c["field"] for c in seen["statements"][0]["columns"]} >= {"email", "country"}
    blind = await auth_client.post("/api/v1/lineage/sql", json=body, headers=shop.analyst)
    assert blind.status_code == 200, blind.text
    assert "email" not in blind.text  # a column only the restricted table has
    assert any("not in the catalog" in w for w in blind.json()["statements"][0]["warnings"])
    query = """query($sql: String!, $ns: String) { sqlLineage(sql: $sql, dialect: POSTGRES, namespace: $ns) {
        __typename ... on SqlLineage { statements { columns { field } warnings } } } }"""
    variables = {"sql": body["sql"], "ns": NS}
    answer = await auth_client.post("/graphql", json={"query": query, "variables": variables}, headers=shop.analyst)
    assert answer.json()["data"]["sqlLineage"]["__typename"] == "SqlLineage", answer.text
    assert "email" not in answer.text


async def test_a_column_tagged_with_a_restricting_tag_restricts_its_dataset(
    auth_client: httpx.AsyncClient, shop: Shop, mint: Mint
) -> None:
    leads = await auth_client.post(
        "/api/v1/datasets", json=_dataset("crm.leads", ["id", "email", "score"]), headers=shop.admin
    )
    lead_id, url = leads.json()["id"], f"/api/v1/datasets/{leads.json()['id']}"
    assert (await auth_client.get(url, headers=shop.analyst)).status_code == 200
    editor = bearer(mint("ed", roles=(Role.EDITOR,), groups=("analysts",)))

    async def tag_column(who: dict[str, str], path: str, tags: list[str]) -> httpx.Response:
        etag = (await auth_client.get(url, headers=shop.admin)).headers["ETag"]
        body = {"fields": {path: {"tags": tags}}}
        return await auth_client.patch(url, json=body, headers={**who, "If-Match": etag})

    # Tagging a column pii restricts the dataset: only those who may restrict may do it.
    assert (await tag_column(editor, "email", ["pii"])).status_code == 403
    assert (await auth_client.get(url, headers=shop.analyst)).status_code == 200  # nothing was written
    assert (await tag_column(shop.admin, "email", ["pii"])).status_code == 200
    assert (await auth_client.get(url, headers=shop.analyst)).status_code == 404
    assert (await auth_client.get(url, headers=shop.reader)).status_code == 200
    restriction = (await auth_client.get(f"{url}/restriction", headers=shop.reader)).json()
    assert restriction["tags"] == {"pii": ["pii-readers"]} and restriction["audience"] == ["pii-readers"]
    found = (await auth_client.get("/api/v1/datasets?namespace=" + NS, headers=shop.analyst)).json()
    assert lead_id not in {d["id"] for d in found["items"]}
    # A column tag that becomes restricting later restricts its dataset then; lifting the tag shows it again.
    assert (await tag_column(shop.admin, "email", ["contact"])).status_code == 200
    assert (await auth_client.get(url, headers=shop.analyst)).status_code == 200
    made = await auth_client.put("/api/v1/restricting-tags/contact", json={"groups": ["sales"]}, headers=shop.admin)
    assert made.status_code == 200
    assert (await auth_client.get(url, headers=shop.analyst)).status_code == 404
    assert (await auth_client.delete("/api/v1/restricting-tags/contact", headers=shop.admin)).status_code == 204
    assert (await auth_client.get(url, headers=shop.analyst)).status_code == 200


async def test_only_admins_declare_a_datasets_other_names_and_a_hidden_ones_are_not_shown(
    auth_client: httpx.AsyncClient, shop: Shop
) -> None:
    alias = {"namespace": "s3://shop-lake", "name": "public/customers"}
    url = f"/api/v1/datasets/{shop.customers}/aliases"
    refused = await auth_client.put(f"/api/v1/datasets/{shop.daily}/aliases", json=alias, headers=shop.reader)
    assert refused.status_code == 403 and refused.json()["error"]["detail"]["permission"] == "admin"
    assert (await auth_client.put(url, json=alias, headers=shop.admin)).status_code == 200
    assert (await auth_client.get(url, headers=shop.reader)).json()["items"] == [alias]
    assert (await auth_client.get(url, headers=shop.analyst)).status_code == 404
    # The other name of a hidden dataset is hidden as its own name is.
    by_alias = await auth_client.get("/api/v1/datasets/by-name", params=alias, headers=shop.analyst)
    assert by_alias.status_code == 404


async def test_a_stored_answer_of_customers_never_reaches_the_analyst_even_from_a_cold_cache(
    auth_app: FastAPI, auth_client: httpx.AsyncClient, shop: Shop
) -> None:
    url = f"/api/v1/datasets/{shop.customers}"
    seen = await auth_client.get(url, headers=shop.reader)  # stores the answer (catalog.answers)
    assert seen.status_code == 200
    auth_app.state.dataset_cache.clear()
    for _ in range(2):  # first from the stored answer alone, then from the in-process cache the reader filled
        hidden = await auth_client.get(url, headers=shop.analyst)
        assert hidden.status_code == 404
        assert hidden.json()["error"]["message"] == f"no dataset with id {shop.customers}"
        again = await auth_client.get(url, headers=shop.reader)
        assert again.status_code == 200 and again.content == seen.content
    # The tag that restricts it is lifted: the same stored answer is no longer any use (new revision), and the
    # analyst gets the fresh one.
    lifted = await auth_client.delete("/api/v1/restricting-tags/pii", headers=shop.admin)
    assert lifted.status_code == 204, lifted.text
    auth_app.state.dataset_cache.clear()
    now = await auth_client.get(url, headers=shop.analyst)
    assert now.status_code == 200 and now.json()["revision"] > seen.json()["revision"]
