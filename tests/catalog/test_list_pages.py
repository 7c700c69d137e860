"""Dataset list pages: how their total is counted, and which cached pages a dataset write drops (issue 18)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from secrets_fixtures import MakeServer
from sqlalchemy import Engine, event, text
from suite_tables import empty_tables

from headwater import migrations, pagination
from headwater.catalog import service
from headwater.catalog.cache import DatasetCache, OutboxPoller
from headwater.catalog.list_pages import ListSpan, RowKeys
from headwater.catalog.schemas import DatasetCreate, DatasetUpdate
from headwater.db import create_db_engine, make_sessionmaker, session_scope

pytestmark = pytest.mark.anyio

LIST = "/api/v1/datasets"


async def register(client: httpx.AsyncClient, name: str, **extra: Any) -> dict[str, Any]:
    response = await client.post(LIST, json={"name": name, "kind": "table", **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def describe(client: httpx.AsyncClient, dataset_id: int, **changes: Any) -> None:
    response = await client.patch(f"{LIST}/{dataset_id}", json=changes, headers={"If-Match": "*"})
    assert response.status_code == 200, response.text


async def pages(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """The query parameters of every page of a list, walked from the first."""
    found = [dict(params)]
    while cursor := (await client.get(LIST, params=found[-1])).json()["next_cursor"]:
        found.append({**params, "cursor": cursor})
    return found


async def served_from_cache(client: httpx.AsyncClient, cache: DatasetCache, params: dict[str, Any]) -> bool:
    hits = cache.hits
    assert (await client.get(LIST, params=params)).status_code == 200
    return cache.hits > hits


# -------------------------------------------------------------------------------------------- count modes


async def test_count_modes_say_whether_the_total_is_exact(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pagination, "EXACT_COUNT_CAP", 3)  # so that ten datasets are "many"
    for i in range(10):
        await register(client, f"t{i:02d}")

    async def total(**params: Any) -> tuple[int, bool]:
        page = (await client.get(LIST, params={"limit": 2, **params})).json()
        return page["total"], page["total_exact"]

    assert await total(count="exact") == (10, True)
    estimated, exact = await total()  # the default: an estimate beyond the cap
    assert not exact and estimated > 3
    assert await total(count="none") == (-1, False)
    assert await total(count="estimate", tag="nope") == (0, True), "a short first page is its own total"
    for mode in ("exact", "estimate", "none"):
        assert await total(count=mode, limit=50) == (10, True), mode
    second = (await client.get(LIST, params={"limit": 2})).json()["next_cursor"]
    assert await total(count="none", cursor=second) == (-1, False)
    assert await total(count="exact", cursor=second) == (10, True)
    monkeypatch.setattr(pagination, "EXACT_COUNT_CAP", 1000)
    assert await total(count="estimate", cursor=second) == (10, True), "exact below the cap"


async def test_a_count_mode_that_does_not_exist_is_a_400_naming_the_modes(client: httpx.AsyncClient) -> None:
    response = await client.get(LIST, params={"count": "approximately"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "'approximately'" in error["message"] and "exact" in error["message"] and "none" in error["message"]
    assert error["detail"]["field"] == "count"


async def test_graphql_datasets_take_a_count_mode(client: httpx.AsyncClient) -> None:
    for i in range(3):
        await register(client, f"g{i}")
    query = "query($c: String!) { datasets(first: 2, count: $c) { ... on DatasetPage { total totalExact } "
    query += "... on InvalidInputError { message field } } }"
    answers = {}
    for mode in ("exact", "none", "sometimes"):
        response = await client.post("/graphql", json={"query": query, "variables": {"c": mode}})
        answers[mode] = response.json()["data"]["datasets"]
    assert answers["exact"] == {"total": 3, "totalExact": True}
    assert answers["none"] == {"total": -1, "totalExact": False}
    assert answers["sometimes"]["field"] == "count" and "sometimes" in answers["sometimes"]["message"]


# --------------------------------------------------------------------------------- per-page invalidation


async def test_a_write_drops_only_the_cached_pages_it_can_change(client: httpx.AsyncClient, app: FastAPI) -> None:
    cache: DatasetCache = app.state.dataset_cache
    ids = {f"n{i:02d}": (await register(client, f"n{i:02d}"))["id"] for i in range(12)}
    first, second, last = await pages(client, limit=4, count="none")  # n00-n03, n04-n07, n08-n11 (the last)
    assert all([await served_from_cache(client, cache, p) for p in (first, second, last)])

    await describe(client, ids["n05"], description="on the second page")
    assert not await served_from_cache(client, cache, second)
    assert await served_from_cache(client, cache, first) and await served_from_cache(client, cache, last)
    assert (await client.get(LIST, params=second)).json()["items"][1]["description"] == "on the second page"

    await register(client, "n045")  # sorts inside the second page's range
    assert not await served_from_cache(client, cache, second)
    assert await served_from_cache(client, cache, first) and await served_from_cache(client, cache, last)
    assert [d["name"] for d in (await client.get(LIST, params=second)).json()["items"]][:2] == ["n04", "n045"]

    await register(client, "zz")  # after every page's range: only the last page, which runs to the end, changes
    assert not await served_from_cache(client, cache, last)
    assert await served_from_cache(client, cache, first) and await served_from_cache(client, cache, second)
    assert (await client.get(LIST, params=last)).json()["next_cursor"] is not None, "zz is on a page after it now"


async def test_a_write_moves_a_dataset_to_the_end_of_the_updated_at_order(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    cache: DatasetCache = app.state.dataset_cache
    made = [(await register(client, f"u{i:02d}"))["id"] for i in range(9)]
    first, middle, last = await pages(client, limit=3, sort="updated_at", count="none")
    newest_first = (await pages(client, limit=3, sort="-updated_at", count="none"))[0]
    for params in (first, middle, last, newest_first):
        assert await served_from_cache(client, cache, params)
    await describe(client, made[1], description="now the newest")  # was on the first page; moves to the end
    assert await served_from_cache(client, cache, middle)
    for params in (first, last, newest_first):
        assert not await served_from_cache(client, cache, params)
    assert (await client.get(LIST, params=newest_first)).json()["items"][0]["id"] == made[1]


async def test_a_page_showing_an_exact_total_is_dropped_by_any_change(client: httpx.AsyncClient, app: FastAPI) -> None:
    cache: DatasetCache = app.state.dataset_cache
    made = [(await register(client, f"e{i}"))["id"] for i in range(6)]
    exact = {"limit": 2, "count": "exact"}
    uncounted = {"limit": 2, "count": "none"}
    await client.get(LIST, params=exact), await client.get(LIST, params=uncounted)
    assert await served_from_cache(client, cache, exact) and await served_from_cache(client, cache, uncounted)
    await describe(client, made[-1], description="far from the first page")
    assert not await served_from_cache(client, cache, exact)
    assert await served_from_cache(client, cache, uncounted)


# --------------------------------------------------------------------------------------------- property


NAMES = ["a", "B", "b", "a_b", "a.b", "a b", "ab", "Ab", "é", "z9", "z10", "m", "M.n", "m_n", "x"]
QUERIES: list[dict[str, Any]] = [
    {"limit": 3},
    {"limit": 4, "sort": "-name", "count": "none"},
    {"limit": 3, "sort": "updated_at", "count": "exact"},
    {"limit": 2, "sort": "-updated_at", "count": "none"},
    {"limit": 3, "sort": "created_at", "count": "none"},
    {"limit": 5, "sort": "-id"},
    {"limit": 2, "tag": "hot", "count": "none"},
    {"limit": 3, "include_deleted": "true", "count": "none"},
    {"limit": 2, "name_prefix": "a", "count": "none"},
]


@pytest.mark.parametrize("seed", [1, 3])
@pytest.mark.parametrize("writer", ["this process", "another process"])
async def test_after_random_writes_every_cached_page_equals_a_fresh_one(
    client: httpx.AsyncClient, app: FastAPI, engine: Engine, server_with: MakeServer, seed: int, writer: str
) -> None:
    rng = random.Random(seed)
    cache: DatasetCache = app.state.dataset_cache
    fresh = server_with(cache_enabled=False)
    elsewhere = make_sessionmaker(engine)  # not the app's sessionmaker: only the outbox tells the app
    poller = OutboxPoller(engine=engine, cache=cache, interval=1)
    poller.poll_once()
    live: dict[str, int] = {}
    deleted: set[str] = set()
    for name in rng.sample(NAMES, 10):
        live[name] = (await register(client, name, tags=["hot"] if rng.random() < 0.5 else []))["id"]
    urls = [params for query in QUERIES for params in await pages(client, **query)]
    hits_before = cache.hits

    for _ in range(12):
        action = rng.choice(["create", "describe", "tag", "delete", "restore"])
        if action == "create" and (unused := [n for n in NAMES if n not in live and n not in deleted]):
            name = rng.choice(unused)
            if writer == "this process":
                live[name] = (await register(client, name))["id"]
            else:
                with session_scope(elsewhere) as session:
                    live[name] = service.register_dataset(session, data=DatasetCreate(name=name)).id
        elif action in ("describe", "tag") and live:
            name = rng.choice(sorted(live))
            change = (
                {"description": f"d{rng.random()}"} if action == "describe" else {"tags": rng.choice([[], ["hot"]])}
            )
            if writer == "this process":
                await describe(client, live[name], **change)
            else:
                with session_scope(elsewhere) as session:
                    service.update_dataset_metadata(
                        session, dataset_id=live[name], data=DatasetUpdate(**change), expected_revision=None
                    )
        elif action == "delete" and live:
            name = rng.choice(sorted(live))
            if writer == "this process":
                assert (await client.delete(f"{LIST}/{live[name]}", params={"reason": "r"})).status_code == 200
            else:
                with session_scope(elsewhere) as session:
                    service.delete_dataset(session, dataset_id=live[name], reason="r", expected_revision=None)
            deleted.add(name)
            live.pop(name)
        elif action == "restore" and deleted:
            name = rng.choice(sorted(deleted))
            live[name] = (await register(client, name))["id"]  # registering a deleted identity restores it
            deleted.discard(name)
        poller.poll_once()
        for params in urls:
            cached, computed = await client.get(LIST, params=params), await fresh.get(LIST, params=params)
            assert cached.status_code == computed.status_code == 200
            assert cached.json() == computed.json(), (action, params)
    assert cache.hits > hits_before + len(urls), "some pages outlived the writes (else the test proves little)"


# ------------------------------------------------------------------------------------------------ collation


def test_names_sort_in_code_point_order_on_a_postgres_database_with_a_linguistic_collation(
    postgres_server: Any,
) -> None:
    """The list cache compares names as Python does; migration 0021 makes PostgreSQL order them so too."""
    if problem := postgres_server.available():
        pytest.skip(problem)
    name = f"headwater_test_icu_{uuid.uuid4().hex[:8]}"
    with postgres_server.admin.connect() as connection:
        connection.execute(
            text(
                f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
            )
        )
    postgres_server.created.append(name)
    url = postgres_server.admin_url.set(database=name).render_as_string(hide_password=False)
    migrations.upgrade(url)
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            # The database orders otherwise: this is what the test is about.
            assert connection.scalar(text("SELECT 'a' < 'B'")) is True
        names = ["b", "B", "a_b", "a.b", "a b", "Ab", "ab", "é", "z10", "z9"]
        with session_scope(make_sessionmaker(engine)) as session:
            for each in names:
                service.register_dataset(session, data=DatasetCreate(name=each))
        with session_scope(make_sessionmaker(engine)) as session:
            page = service.list_datasets(session, filters=service.DatasetFilters(), limit=50)
            assert [d.name for d in page.items] == sorted(names)
            prefixed = service.list_datasets(session, filters=service.DatasetFilters(name_prefix="a"), limit=50)
            assert [d.name for d in prefixed.items] == sorted(n for n in names if n.startswith("a"))
    finally:
        engine.dispose()


def test_a_page_read_while_an_unrelated_write_committed_is_still_cached() -> None:
    cache = DatasetCache(max_bytes=1 << 20)
    now = dt.datetime.now(dt.UTC)
    span = ListSpan("name", False, ("b", 2), ("d", 4), frozenset({3, 4}), total_exact=False, total=-1)

    def keys(dataset_id: int, name: str) -> dict[int, RowKeys]:
        return {dataset_id: RowKeys(dataset_id, name, now, now)}

    generation = cache.generation()
    cache.invalidate({9}, keys(9, "x"))  # after the page's range: cannot change it
    cache.put("list?a", generation, "", b"[page]", span=span)
    assert cache.get("list?a") == ("", b"[page]")
    generation = cache.generation()
    cache.invalidate({7}, keys(7, "c"))  # inside it: the page read may lack it
    cache.put("list?b", generation, "", b"[page]", span=span)
    assert cache.get("list?b") is None
    cache.invalidate({3}, keys(3, "zz"))  # on the page (and now after it): dropped
    assert cache.get("list?a") is None
    generation = cache.generation()
    cache.clear()
    cache.put("list?c", generation, "", b"[page]", span=span)
    assert cache.get("list?c") is None, "what a clear() dropped is unknown"


def test_an_estimate_reads_the_filtered_statement_of_a_restricted_reader(
    session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pagination, "EXACT_COUNT_CAP", 2)
    for i in range(6):
        service.register_dataset(session, data=DatasetCreate(name=f"r{i}", tags=["hot"] if i % 2 else []))
    session.commit()
    filters = service.DatasetFilters(tag="hot", name_prefix="r")
    page = service.list_datasets(
        session, filters=filters, limit=1, audience=frozenset({"team:a", "b"}), count="estimate"
    )
    assert [d.name for d in page.items] == ["r1"] and not page.total_exact and page.total >= 3
    exact = service.list_datasets(session, filters=filters, limit=1, audience=frozenset({"team:a"}), count="exact")
    assert exact.total == 3 and exact.total_exact


@pytest.fixture
def emptied_after(engine: Engine) -> Iterator[Engine]:
    """The suite's engine; the tables are emptied after the test (others expect an empty catalog)."""
    yield engine
    empty_tables(engine)


@pytest.mark.parametrize("sort", ["name", "-name", "-updated_at"])
def test_a_page_after_a_cursor_starts_its_index_range_at_the_cursor(emptied_after: Engine, sort: str) -> None:
    """A page in the middle of the catalog reads from the cursor on, not every row before it: the keyset condition
    gives the planner a bound on the sort column to start the index range at (an OR alone is only a filter)."""
    engine = emptied_after
    factory = make_sessionmaker(engine)
    with session_scope(factory) as session:
        run = uuid.uuid4().hex[:6]
        for i in range(120):
            service.register_dataset(session, data=DatasetCreate(name=f"sales.orders_{run}_{i:03d}"))
    with session_scope(factory) as session:
        middle = service.list_datasets(session, filters=service.DatasetFilters(), limit=60, sort=sort)
        assert middle.next_cursor is not None
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "ORDER BY" in statement and "datasets" in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        with session_scope(factory) as session:
            page = service.list_datasets(
                session, filters=service.DatasetFilters(), limit=10, sort=sort, cursor=middle.next_cursor
            )
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert len(page.items) == 10
    statement, parameters = statements[0]
    column = "updated_at" if "updated_at" in sort else "name"
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            for plan_kind in ("seqscan", "bitmapscan", "sort"):  # a table this small, unanalysed, is read any way
                connection.exec_driver_sql(f"SET enable_{plan_kind} = off")
            plan = "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))
            # Read in order from the cursor on: an index range, not the whole index filtered.
            assert "Index Scan" in plan and "Sort" not in plan, plan
            assert f"Index Cond: (({column})" in plan or f"Index Cond: ({column}" in plan, plan
        else:
            plan = "\n".join(
                str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            )
            assert f"({column}<" in plan or f"({column}>" in plan, plan
