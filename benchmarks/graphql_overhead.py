"""What GraphQL costs over REST for the same answer, on PostgreSQL, through a real server.

No issue sets a goal for GraphQL; this measures its price so that tools can choose. One run:

1. creates a fresh PostgreSQL database, migrates it and ingests ``--events`` COMPLETE lineage events (the stream
   of ``lineage_ingest.py``, ``--stable``: up to 400 tables of 20 columns, column lineage between them), 100 per
   transaction; the operations below pick among the tables the events name;
2. starts one uvicorn server (one worker, as ``lineage_ingest.py`` starts it) and waits for its search indexer
   to catch up;
3. for each operation, sends the REST request and the GraphQL request that asks for the same facts one after
   the other, ``--requests`` times (after a warm-up), from one keep-alive client, and prints p50 and p95 of
   each and the ratio GraphQL / REST:

   - one dataset by name with its 20 fields (REST ``/api/v1/datasets/by-name``, which the read cache does not
     serve: both sides read the database);
   - the impact of one column (``/api/v1/lineage/impact``);
   - a search (``/api/v1/search``), with facets.

Run from the repository root::

    .venv/bin/python benchmarks/graphql_overhead.py [--events 4000] [--requests 300]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
from _postgres import drop_database, fresh_database
from lineage_ingest import NAMESPACE, events_of, ingest, server

from headwater.db import create_db_engine

DATASET = """query($ns: String!, $name: String!) { dataset(namespace: $ns, name: $name) { ... on Dataset {
    id namespace name kind source format description tags owners { name role } schemaVersion fieldCount
    createdAt updatedAt fields { path name type normalizedType nullable description tags } } } }"""
IMPACT = """query($node: NodeInput!) { impact(node: $node) { ... on Impact { total isPartial elapsedMs
    columns { id namespace name field datasetId distance path } datasets { id namespace name distance path }
    jobs { id namespace name distance } owners { owner role distance datasets } } } }"""
SEARCH = """query($q: String!) { search(query: $q) { ... on SearchPage { total nextCursor
    items { key type datasetId name namespace source kind format description tags owners updatedAt match score
            highlights } facets { name values { value count } } } } }"""


def _timed(call: Callable[[], httpx.Response]) -> float:
    began = time.perf_counter()
    response = call()
    elapsed = (time.perf_counter() - began) * 1000
    if response.status_code != 200 or "errors" in response.text[:200]:
        raise RuntimeError(f"{response.request.url} answered {response.status_code}: {response.text[:300]}")
    return elapsed


def _pairs(
    client: httpx.Client, rng: random.Random, tables: list[str]
) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    def table() -> str:
        return rng.choice(tables)

    def gql(query: str, **variables: Any) -> httpx.Response:
        return client.post("/graphql", json={"query": query, "variables": variables})

    names: list[str] = []  # the same dataset for both sides of a pair

    def pick() -> str:
        names.append(table())
        return names[-1]

    return {
        "dataset by name, 20 fields": (
            lambda: client.get("/api/v1/datasets/by-name", params={"namespace": NAMESPACE, "name": pick()}),
            lambda: gql(DATASET, ns=NAMESPACE, name=names[-1]),
        ),
        "impact of a column": (
            lambda: client.get(
                "/api/v1/lineage/impact", params={"namespace": NAMESPACE, "name": pick(), "field": "c3"}
            ),
            lambda: gql(IMPACT, node={"namespace": NAMESPACE, "name": names[-1], "field": "c3"}),
        ),
        "search with facets": (
            lambda: client.get("/api/v1/search", params={"q": pick()}),
            lambda: gql(SEARCH, q=names[-1]),
        ),
    }


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=4_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    url = fresh_database("headwater_bench_graphql")
    try:
        engine = create_db_engine(url)
        events = events_of(args.events, args.seed, stable=True)
        tables = sorted({d["name"] for e in events for d in [*e["inputs"], *e["outputs"]]})
        seconds = ingest(engine, events, 100)
        engine.dispose()
        print(f"{args.events:,} lineage events ingested in {seconds:.1f} s")
        with server(url) as base, httpx.Client(base_url=base, timeout=60) as client:
            deadline = time.monotonic() + 300
            while client.get("/api/v1/search/status").json()["lag"] > 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("the search index did not catch up in 5 minutes")
                time.sleep(0.5)
            rng = random.Random(args.seed)
            rows = []
            for name, (rest, graphql) in _pairs(client, rng, tables).items():
                for _ in range(30):  # warm-up: connections, caches, plans
                    _timed(rest)
                    _timed(graphql)
                rest_ms, graphql_ms = [], []
                for _ in range(args.requests):
                    rest_ms.append(_timed(rest))
                    graphql_ms.append(_timed(graphql))
                rows.append((name, rest_ms, graphql_ms))
        print(f"\nmachine: {os.cpu_count()} cpu; {args.requests} requests each, one client, keep-alive")
        print(f"{'operation':30} {'REST p50':>9} {'p95':>7} {'GraphQL p50':>12} {'p95':>7} {'ratio p50':>10}")
        for name, rest_ms, graphql_ms in rows:
            r50, g50 = statistics.median(rest_ms), statistics.median(graphql_ms)
            print(
                f"{name:30} {r50:9.2f} {_p(rest_ms, 95):7.2f} {g50:12.2f} {_p(graphql_ms, 95):7.2f} {g50 / r50:9.2f}x"
            )
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
