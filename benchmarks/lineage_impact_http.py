"""Downstream column impact over HTTP against a real ``headwater serve`` on PostgreSQL (issue 18, finding 1).

``lineage_impact.py`` measures ``impact()`` in process on edges loaded sorted by source, where each start's
edges share a few pages. This one measures what a client sees, on the graphs where the walk fell off a plan cliff:

1. for each size (``--sizes``: 100k and 300k column nodes by default; ``1m`` and ``3m`` on request), a fresh
   migrated database with the same layered graph as ``lineage_impact.py`` (3 edges per node), its edges COPYed
   in random physical order (``--reuse`` keeps the database of an earlier run);
2. a real ``headwater serve`` on loopback, asked ``GET /api/v1/lineage/impact`` for ``--warmup`` plus
   ``--queries`` random first-layer columns (route defaults: depth 20, 10,000 nodes, 5 s), one request at a
   time on one keep-alive connection; the server's pool hands out the connection used last, so one database
   connection answers most of them: the walk is prepared from its 5th run there, and PostgreSQL weighs a
   generic plan from its 10th;
3. in the same run, after each request, the same walk (``graph.walk``, depth 20, 10,000 nodes, 5 s) from the
   same column in a transaction of its own, twice, in alternating order: on a long-lived connection set up as
   the server's ("kept": psycopg prepares it from its 5th run, so PostgreSQL may switch to a generic plan), and
   on one where psycopg never prepares, so every run is planned for its own values (the floor).

It prints p50/p99 of each series and their ratios to the floor, and how many database connections the server
had open. The server's background loops share its pool, and a loop's rollback makes psycopg forget what it had
prepared on that connection; the "kept" series has no such resets, so a plan cliff shows there in full.

Run from the repository root::

    .venv/bin/python benchmarks/lineage_impact_http.py [--sizes 100k,300k,1m,3m] [--queries 200] [--reuse]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import _postgres
import httpx
from jobs_common import load_average, server
from lineage_impact import LAYERS, edges_of, load, percentile
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from headwater import migrations
from headwater.db import create_db_engine, make_sessionmaker, session_scope
from headwater.lineage import graph

SIZES = {"100k": 100_000, "300k": 300_000, "1m": 1_000_000, "3m": 3_000_000}
EDGES_PER_NODE = 3
DEPTH, BUDGET, TIMEOUT_MS = 20, 10_000, 5_000  # the impact route's defaults


def database_url(label: str) -> str:
    """The URL of this size's benchmark database."""
    return (
        make_url(_postgres.ADMIN)
        .set(database=f"headwater_bench_impact_http_{label}")
        .render_as_string(hide_password=False)
    )


def exists(url: str) -> bool:
    """Whether ``url``'s database exists and holds a loaded graph."""
    admin = create_engine(_postgres.ADMIN)
    try:
        with admin.connect() as conn:
            name = make_url(url).database
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                return False
    finally:
        admin.dispose()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(text("SELECT EXISTS (SELECT 1 FROM lineage_column_edges)")).scalar_one())
    finally:
        engine.dispose()


def prepare(label: str, nodes: int, seed: int, reuse: bool) -> str:
    """This size's database, loaded with its edges in random physical order; its URL."""
    url = database_url(label)
    if reuse and exists(url):
        print(f"{label}: reusing {make_url(url).database}", flush=True)
        return url
    began = time.perf_counter()
    edge_list = edges_of(nodes, nodes * EDGES_PER_NODE, seed)
    random.Random(seed + 18).shuffle(edge_list)
    generated = time.perf_counter() - began
    _postgres.fresh_database(make_url(url).database or "")
    migrations.upgrade(url)
    began = time.perf_counter()
    load(url, nodes, edge_list)
    print(
        f"{label}: {nodes:,} nodes, {len(edge_list):,} edges in random order; generated in {generated:.0f} s, "
        f"loaded with COPY and analysed in {time.perf_counter() - began:.0f} s",
        flush=True,
    )
    return url


def server_connections(url: str, ours: set[int]) -> int:
    """Connections to ``url``'s database other than this process's (backends ``ours``)."""
    admin = create_engine(_postgres.ADMIN)
    try:
        with admin.connect() as conn:
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :n AND backend_type = 'client backend'"),
                {"n": make_url(url).database},
            ).scalars()
            return len(set(pids) - ours)
    finally:
        admin.dispose()


def timed_walk(factory: sessionmaker[Session], start: int) -> tuple[float, set[int]]:
    """One walk from ``start`` in its own transaction (as a request runs it): ms, and the columns it reached."""
    with session_scope(factory) as session:
        began = time.perf_counter()
        walked = graph.walk(
            session,
            level="column",
            starts=[start],
            direction="downstream",
            max_depth=DEPTH,
            budget=BUDGET,
            filters=graph.WalkFilters(),
            timeout_ms=TIMEOUT_MS,
        )
        return (time.perf_counter() - began) * 1000, {e[2] for e in walked.edges}


def measure(label: str, url: str, nodes: int, args: argparse.Namespace) -> None:
    """Impact over HTTP, the walk on a long-lived connection and the never-prepared walk, for the same columns in
    turn; p50/p99 of each and the ratios to the floor."""
    starts = random.Random(args.seed + 1).sample(range(1, nodes // LAYERS + 1), args.warmup + args.queries)
    engines = {
        # As the server sets its engine up: psycopg prepares a statement from its 5th run on a connection.
        "kept": create_db_engine(url, pool_size=1),
        # The floor: psycopg never prepares, so PostgreSQL plans every run for its own values.
        "floor": create_db_engine(url, pool_size=1, prepared_statements=False),
    }
    factories = {name: make_sessionmaker(engine) for name, engine in engines.items()}
    ours: set[int] = set()
    for factory in factories.values():
        with factory() as session:
            ours.add(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
    took: dict[str, list[float]] = {"http": [], "kept": [], "floor": []}
    radius: list[int] = []
    partial = 0
    with (
        tempfile.TemporaryDirectory() as base,
        server(url, Path(base)) as base_url,
        httpx.Client(base_url=base_url, timeout=60) as client,
    ):
        for i, start in enumerate(starts):
            began = time.perf_counter()
            answer = client.get("/api/v1/lineage/impact", params={"field_id": start})
            http_ms = (time.perf_counter() - began) * 1000
            answer.raise_for_status()
            body = answer.json()
            # In turns, so that neither series always finds the pages the other has just read.
            if i % 2:
                floor_ms, floor_reached = timed_walk(factories["floor"], start)
                kept_ms, kept_reached = timed_walk(factories["kept"], start)
            else:
                kept_ms, kept_reached = timed_walk(factories["kept"], start)
                floor_ms, floor_reached = timed_walk(factories["floor"], start)
            if i < args.warmup:
                continue
            took["http"].append(http_ms)
            took["kept"].append(kept_ms)
            took["floor"].append(floor_ms)
            radius.append(len(body["columns"]))
            partial += bool(body["isPartial"])
            if not body["isPartial"]:
                assert len(floor_reached) == len(body["columns"]), "the floor walked another graph"
                assert kept_reached == floor_reached, "the walk on the long-lived connection reached other columns"
        connections = server_connections(url, ours)
    for engine in engines.values():
        engine.dispose()
    p = {name: (percentile(ms, 0.5), percentile(ms, 0.99)) for name, ms in took.items()}
    floor50, floor99 = p["floor"]
    print(
        f"{label:>5} {p['http'][0]:8.1f} {p['http'][1]:8.1f} {p['kept'][0]:8.1f} {p['kept'][1]:8.1f} "
        f"{floor50:8.1f} {floor99:8.1f} {p['http'][0] / floor50:6.1f}x {p['http'][1] / floor99:6.1f}x "
        f"{p['kept'][0] / floor50:6.2f}x {p['kept'][1] / floor99:6.2f}x {sum(radius) / len(radius):7.0f} "
        f"{partial:4d} {connections:5d}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100k,300k", help=f"Comma-separated, of {', '.join(SIZES)}.")
    parser.add_argument("--queries", type=int, default=200, help="Measured requests per size (at least 50).")
    parser.add_argument("--warmup", type=int, default=10, help="Requests before measuring, on the same connection.")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--reuse", action="store_true", help="Keep a size's database from an earlier run.")
    args = parser.parse_args()
    labels = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in labels if s not in SIZES]
    if unknown:
        parser.error(f"unknown size {unknown[0]!r}; choose from {', '.join(SIZES)}")
    if args.queries < 50:
        parser.error(f"--queries must be at least 50 (a plan cliff shows from the 10th), got {args.queries}")
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cpu, Python {sys.version.split()[0]}")
    urls = {label: prepare(label, SIZES[label], args.seed, args.reuse) for label in labels}
    print(f"load average before measuring: {load_average()}")
    print()
    print(
        f"ms; {args.queries} measured queries per size after {args.warmup}, each series on one connection; "
        "x: ratio to the floor; conns: the server's database connections"
    )
    print(
        f"{'size':>5} {'HTTP p50':>8} {'p99':>8} {'kept p50':>8} {'p99':>8} {'floor50':>8} {'p99':>8} "
        f"{'HTTP x50':>7} {'x99':>7} {'kept x50':>7} {'x99':>7} {'radius':>7} {'part':>4} {'conns':>5}"
    )
    for label in labels:
        measure(label, urls[label], SIZES[label], args)
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
