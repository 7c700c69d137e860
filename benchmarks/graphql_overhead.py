"""What GraphQL costs over REST for the same facts, interleaved, on PostgreSQL, through one real server over HTTP.

Issue 18's goal: GraphQL p50 ≤ 1.2× REST p50, measured interleaved. One run:

1. creates a fresh PostgreSQL database, migrates it and ingests ``--events`` COMPLETE lineage events (the
   ``--stable`` stream of ``lineage_ingest.py``: 400 tables of 20 columns, column lineage between them);
2. starts one uvicorn server (one worker, with its cache poller and search indexer, as ``headwater serve`` runs)
   and waits for the search index to catch up;
3. for each shape, runs rounds of one REST request and the GraphQL request asking for the same facts (the same
   fields), in a random order per round, from one keep-alive client, and checks both answers hold the same
   number of items:

   - ``dataset``: one dataset by id with its 20 fields (``GET /api/v1/datasets/{id}``);
   - ``list``: a page of 50 datasets with their summaries (``GET /api/v1/datasets``);
   - ``neighbours``: the lineage one step up and down a dataset (``GET /api/v1/lineage/graph?depth=1``);
   - ``impact``: everything downstream of a dataset (``GET /api/v1/lineage/impact``);
   - ``search``: free text with facets and highlights (``GET /api/v1/search``);

   each twice:

   - **cold**: every request asks for a fact neither API has asked for before in this process (REST and
     GraphQL draw from disjoint halves of the datasets, and list pages differ in size), so no in-process cache
     holds it; PostgreSQL's buffers are warm (the database is small);
   - **warm**: ``--warm-set`` facts asked again and again by both, after a warm-up of every one of them.

It prints p50 and p99 of each side, the GraphQL ÷ REST ratio of p50s against the goal, and the load average
before and after each shape. Run from the repository root::

    .venv/bin/python benchmarks/graphql_overhead.py [--events 4000] [--rounds 200] [--shapes dataset,list]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from _postgres import drop_database, fresh_database
from lineage_ingest import NAMESPACE, events_of, ingest, server

from headwater.db import create_db_engine

GOAL = 1.2  # GraphQL p50 ÷ REST p50, issue 18

# Each document asks for the fields the REST answer holds (GraphQL's Field.id and Dataset.schemaHistory are
# GraphQL's own and not asked).
_SUMMARY = """id namespace name kind source sourceKind format location sourceDescription description tags
    owners { name role } schemaVersion fieldCount createdAt updatedAt deletedAt deleteReason mergedInto"""
DATASET = f"""query Dataset($id: ID!) {{ dataset(id: $id) {{ ... on Dataset {{ {_SUMMARY}
    partitioning sourceProperties properties revision
    fields {{ path name parentPath position type normalizedType nullable sourceFieldId sourceDescription
              description tags }} }} ... on Error {{ message }} }} }}"""
LIST = f"""query List($first: Int!, $after: String) {{ datasets(first: $first, after: $after) {{
    ... on DatasetPage {{ total nextCursor items {{ {_SUMMARY} }} }} ... on Error {{ message }} }} }}"""
_NODE = "kind id namespace name label hidden field datasetId distance path"
NEIGHBOURS = f"""query Neighbours($node: NodeInput!) {{ lineage(node: $node, depth: 1) {{ ... on LineageGraph {{
    root direction isPartial hidden nodes {{ {_NODE} }}
    edges {{ source target job transformationType subtype origin producer firstSeen lastSeen retiredAt lastRunId }}
    }} ... on Error {{ message }} }} }}"""
IMPACT = f"""query Impact($node: NodeInput!) {{ impact(node: $node) {{ ... on Impact {{
    root total hidden isPartial partialReason elapsedMs columns {{ {_NODE} }} datasets {{ {_NODE} }}
    jobs {{ {_NODE} }} owners {{ owner role distance datasets }} }} ... on Error {{ message }} }} }}"""
SEARCH = """query Search($q: String!) { search(query: $q) { ... on SearchPage { total nextCursor
    items { key type datasetId name namespace source kind format description tags owners updatedAt match score
            highlights }
    facets { name values { value count } } } ... on Error { message } } }"""


@dataclass
class Shape:
    """One kind of question: its REST request and GraphQL request for a fact, and how many items each holds."""

    name: str
    rest: Callable[[httpx.Client, Any], httpx.Response]
    graphql: tuple[str, Callable[[Any], dict[str, Any]]]  # the document, and its variables for a fact
    rest_count: Callable[[Any], int]
    graphql_count: Callable[[Any], int]


def _node(name: str) -> dict[str, str]:
    return {"namespace": NAMESPACE, "name": name}


def _shapes() -> dict[str, Shape]:
    # A fact is a dataset (id, name), or for list pages a (size, cursor) pair.
    return {
        "dataset": Shape(
            "one dataset by id, 20 fields",
            lambda c, f: c.get(f"/api/v1/datasets/{f[0]}"),
            (DATASET, lambda f: {"id": str(f[0])}),
            lambda body: len(body["fields"]),
            lambda data: len(data["dataset"]["fields"]),
        ),
        "list": Shape(
            "a list page of datasets",
            lambda c, f: c.get("/api/v1/datasets", params={"limit": f[0], **({"cursor": f[1]} if f[1] else {})}),
            (LIST, lambda f: {"first": f[0], "after": f[1]}),
            lambda body: len(body["items"]),
            lambda data: len(data["datasets"]["items"]),
        ),
        "neighbours": Shape(
            "lineage neighbours of a dataset",
            lambda c, f: c.get("/api/v1/lineage/graph", params={**_node(f[1]), "depth": 1}),
            (NEIGHBOURS, lambda f: {"node": _node(f[1])}),
            lambda body: len(body["nodes"]) + len(body["edges"]),
            lambda data: len(data["lineage"]["nodes"]) + len(data["lineage"]["edges"]),
        ),
        "impact": Shape(
            "impact of a dataset",
            lambda c, f: c.get("/api/v1/lineage/impact", params=_node(f[1])),
            (IMPACT, lambda f: {"node": _node(f[1])}),
            lambda body: body["total"],
            lambda data: data["impact"]["total"],
        ),
        "search": Shape(
            "a search with facets",
            lambda c, f: c.get("/api/v1/search", params={"q": f[1]}),
            (SEARCH, lambda f: {"q": f[1]}),
            lambda body: body["total"],
            lambda data: data["search"]["total"],
        ),
    }


def _rest(client: httpx.Client, shape: Shape, fact: Any) -> tuple[float, int]:
    began = time.perf_counter()
    response = shape.rest(client, fact)
    elapsed = (time.perf_counter() - began) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.url} answered {response.status_code}: {response.text[:300]}")
    return elapsed, shape.rest_count(response.json())


def _graphql(client: httpx.Client, shape: Shape, fact: Any) -> tuple[float, int]:
    document, variables = shape.graphql
    began = time.perf_counter()
    response = client.post("/graphql", json={"query": document, "variables": variables(fact)})
    elapsed = (time.perf_counter() - began) * 1000
    body = response.json() if response.status_code == 200 else {}
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"GraphQL {shape.name} answered {response.status_code}: {response.text[:300]}")
    return elapsed, shape.graphql_count(body["data"])


def _round(
    client: httpx.Client, rng: random.Random, shape: Shape, rest_fact: Any, graphql_fact: Any
) -> tuple[float, float]:
    """One REST and one GraphQL request, in a random order."""
    if rng.random() < 0.5:
        rest_ms, rest_n = _rest(client, shape, rest_fact)
        graphql_ms, graphql_n = _graphql(client, shape, graphql_fact)
    else:
        graphql_ms, graphql_n = _graphql(client, shape, graphql_fact)
        rest_ms, rest_n = _rest(client, shape, rest_fact)
    if rest_fact == graphql_fact and rest_n != graphql_n:
        raise RuntimeError(f"{shape.name}: REST answered {rest_n} items, GraphQL {graphql_n}, for {rest_fact}")
    return rest_ms, graphql_ms


def _list_facts(client: httpx.Client, sizes: list[int]) -> list[tuple[int, str | None]]:
    """List pages (size, cursor): the first and second page of each size, so every page is a new cache key."""
    facts: list[tuple[int, str | None]] = []
    for size in sizes:
        first = client.get("/api/v1/datasets", params={"limit": size}).json()
        facts.append((size, first["next_cursor"]))
    return facts


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=4_000)
    parser.add_argument("--rounds", type=int, default=200, help="warm rounds per shape (cold: up to the datasets)")
    parser.add_argument("--warm-set", type=int, default=20, help="how many facts the warm rounds repeat")
    parser.add_argument("--shapes", default="dataset,list,neighbours,impact,search")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    shapes = {key: shape for key, shape in _shapes().items() if key in args.shapes.split(",")}
    url = fresh_database("headwater_bench_graphql")
    rows: list[tuple[str, str, list[float], list[float], str]] = []
    try:
        engine = create_db_engine(url)
        events = events_of(args.events, args.seed, stable=True)
        seconds = ingest(engine, events, 100)
        engine.dispose()
        print(f"{args.events:,} lineage events ingested in {seconds:.1f} s; load {_load()}")
        with server(url) as base, httpx.Client(base_url=base, timeout=60) as client:
            deadline = time.monotonic() + 300
            while client.get("/api/v1/search/status").json()["lag"] > 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("the search index did not catch up in 5 minutes")
                time.sleep(0.5)
            rng = random.Random(args.seed)
            datasets: list[tuple[int, str]] = []
            page: dict[str, Any] = {"next_cursor": None}
            while True:
                params = {"limit": 100, **({"cursor": page["next_cursor"]} if page["next_cursor"] else {})}
                page = client.get("/api/v1/datasets", params=params).json()
                datasets.extend((d["id"], d["name"]) for d in page["items"])
                if not page["next_cursor"]:
                    break
            print(f"{len(datasets)} datasets; one client, keep-alive; order random per round")
            for key, shape in shapes.items():
                # Warm first for the shapes whose facts the cold rounds would use up; cold draws from the rest.
                pool = datasets[:]
                rng.shuffle(pool)
                warm_set = pool[: args.warm_set] if key != "list" else _list_facts(client, list(range(20, 60, 2)))
                if key == "list":
                    cold_pool = [(size, None) for size in range(1, 101)]
                    rng.shuffle(cold_pool)
                else:
                    cold_pool = pool[args.warm_set :]
                before = _load()
                half = len(cold_pool) // 2
                rest_ms, graphql_ms = [], []
                for rest_fact, graphql_fact in zip(cold_pool[:half], cold_pool[half:], strict=False):
                    r, g = _round(client, rng, shape, rest_fact, graphql_fact)
                    rest_ms.append(r)
                    graphql_ms.append(g)
                rows.append((shape.name, "cold", rest_ms, graphql_ms, f"{before} → {_load()}"))
                before = _load()
                for fact in warm_set * 2:
                    _round(client, rng, shape, fact, fact)
                rest_ms, graphql_ms = [], []
                for _ in range(args.rounds):
                    fact = rng.choice(warm_set)
                    r, g = _round(client, rng, shape, fact, fact)
                    rest_ms.append(r)
                    graphql_ms.append(g)
                rows.append((shape.name, "warm", rest_ms, graphql_ms, f"{before} → {_load()}"))
                print(f"  {shape.name}: done; load {_load()}", flush=True)
    finally:
        drop_database(url)
    print(f"\nmachine: {os.cpu_count()} cpu; goal GraphQL p50 ≤ {GOAL}× REST p50")
    print(
        "| shape | cache | n | REST p50 ms | REST p99 | GraphQL p50 ms | GraphQL p99 | GraphQL ÷ REST p50 | goal "
        "| load 1/5/15 min before → after |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for name, cache, rest_ms, graphql_ms, load in rows:
        r50, g50 = statistics.median(rest_ms), statistics.median(graphql_ms)
        met = "met" if g50 / r50 <= GOAL else "not met"
        print(
            f"| {name} | {cache} | {len(rest_ms)} | {r50:.2f} | {_p(rest_ms, 99):.2f} | {g50:.2f} | "
            f"{_p(graphql_ms, 99):.2f} | {g50 / r50:.2f}× | {met} | {load} |"
        )


if __name__ == "__main__":
    main()
