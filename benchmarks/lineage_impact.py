"""Benchmark of downstream column impact on PostgreSQL against networkx BFS in memory (issue 4).

What it does, in one run:

1. creates a fresh PostgreSQL database (unless ``--reuse``), migrates it, and bulk-loads (COPY) a synthetic
   layered column graph: ``--nodes`` columns (default 1,000,000) in 10 layers, 50 columns per dataset, and
   ``--edges`` column edges (default 3,000,000) from each layer to the next, every column fanning out to
   3-4 columns of the next layer within a window of nearby columns (pipelines mostly carry columns to
   "nearby" tables), so a column of the first layer has a blast radius of about 1,000 columns;
2. picks 200 random start columns in the first layer and times ``headwater.lineage.graph.impact`` (the
   function the REST endpoint calls: recursive CTE walk + networkx on the bounded subgraph + names, jobs and
   owners) and, separately, the bare database walk (``graph.walk``), reporting p50/p99;
3. builds the whole graph in memory with networkx and times a breadth-first search from the same starts
   (the in-memory floor), with the memory each approach needs (Python RSS growth; table + index size).

The edges are loaded sorted by source, so each start's edges share a few pages, and the walk runs in process;
``lineage_impact_http.py`` measures impact over HTTP on the same graph with its edges in random physical order,
against a floor measured in the same run (issue 18).

With ``--restricted 0.1``, a tenth of the datasets (so of the column nodes) is restricted to a group the
reader is not in, and the same starts are timed both ways in the same run, alternating: impact as a reader who
sees every dataset (an admin, no filtering) and as one who gets placeholders (issue 16); the ratio is printed.

Run from the repository root::

    .venv/bin/python benchmarks/lineage_impact.py [--database-url URL] [--nodes 1000000] [--edges 3000000]
        [--restricted 0.1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import networkx as nx
import psycopg
from sqlalchemy import make_url, text

from headwater import migrations
from headwater.db import create_db_engine, make_sessionmaker
from headwater.lineage import graph

LAYERS = 10
COLUMNS_PER_DATASET = 50
WINDOW = 32  # chosen so that a first-layer column reaches about 1,000 columns
ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def rss_mb() -> float:
    """Resident memory of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def edges_of(nodes: int, edges: int, seed: int) -> list[tuple[int, int]]:
    """The synthetic layered edge list (field ids start at 1)."""
    rng = random.Random(seed)
    per_layer = nodes // LAYERS
    sources = per_layer * (LAYERS - 1)
    base, extra = divmod(edges, sources)
    out: list[tuple[int, int]] = []
    for layer in range(LAYERS - 1):
        for i in range(per_layer):
            node = layer * per_layer + i + 1
            fanout = base + (1 if rng.random() < extra / sources else 0)
            targets: set[int] = set()
            while len(targets) < fanout:
                targets.add((i + rng.randint(-WINDOW, WINDOW)) % per_layer)
            for target in targets:
                out.append((node, (layer + 1) * per_layer + target + 1))
    return out


def load(url: str, nodes: int, edge_list: list[tuple[int, int]]) -> None:
    """COPY datasets, fields and edges straight into the migrated schema."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    now = dt.datetime.now(dt.UTC)
    datasets = nodes // COLUMNS_PER_DATASET
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO sources (id, name, kind, namespace, config, secrets, status, created_at, updated_at, revision) "
            "VALUES (1, 'bench', 'manual', 'bench', '{}', '{}', 'new', %s, %s, 1)",
            (now, now),
        )
        cur.execute(
            "INSERT INTO lineage_jobs (id, namespace, name, facets, created_at, updated_at) "
            "VALUES (1, 'bench', 'pipeline', '{}', %s, %s)",
            (now, now),
        )
        with cur.copy(
            "COPY datasets (id, source_id, namespace, name, kind, partitioning, source_properties, user_properties, "
            "field_count, created_at, updated_at, revision) FROM STDIN"
        ) as copy:
            for d in range(1, datasets + 1):
                copy.write_row(
                    (
                        d,
                        1,
                        "bench",
                        f"layer{(d - 1) * LAYERS // datasets}.t{d}",
                        "table",
                        "[]",
                        "{}",
                        "{}",
                        COLUMNS_PER_DATASET,
                        now,
                        now,
                        1,
                    )
                )
        with cur.copy(
            "COPY fields (id, dataset_id, path, name, position, type, normalized_type, nullable, tags) FROM STDIN"
        ) as copy:
            for f in range(1, nodes + 1):
                d = (f - 1) // COLUMNS_PER_DATASET + 1
                column = f"c{(f - 1) % COLUMNS_PER_DATASET}"
                copy.write_row((f, d, column, column, (f - 1) % COLUMNS_PER_DATASET, "string", "string", True, "[]"))
        with cur.copy(
            "COPY lineage_column_edges (source_field_id, target_field_id, source_dataset_id, target_dataset_id, job_id, "
            "transformation_type, subtype, masking, dataset_level, origin, producer, first_seen, last_seen) FROM STDIN"
        ) as copy:
            for s, t in edge_list:
                copy.write_row(
                    (
                        s,
                        t,
                        (s - 1) // COLUMNS_PER_DATASET + 1,
                        (t - 1) // COLUMNS_PER_DATASET + 1,
                        1,
                        "DIRECT",
                        "IDENTITY",
                        False,
                        False,
                        "openlineage",
                        "bench",
                        now,
                        now,
                    )
                )
        for table in ("sources", "datasets", "fields", "lineage_jobs", "lineage_column_edges"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")


def restrict(url: str, nodes: int, fraction: float, seed: int) -> int:
    """Restrict ``fraction`` of the datasets (chosen at random) to the group ``bench-restricted``; how many."""
    datasets = nodes // COLUMNS_PER_DATASET
    chosen = random.Random(seed).sample(range(1, datasets + 1), round(datasets * fraction))
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM dataset_audience")
        cur.execute("DELETE FROM dataset_restrictions")
        with cur.copy("COPY dataset_restrictions (dataset_id, groups, set_by, set_at) FROM STDIN") as copy:
            for d in chosen:
                copy.write_row((d, '["bench-restricted"]', "bench", now))
        with cur.copy("COPY dataset_audience (dataset_id, member) FROM STDIN") as copy:
            for d in chosen:
                copy.write_row((d, "bench-restricted"))
        conn.commit()
        conn.autocommit = True
        cur.execute("ANALYZE dataset_audience")
    return len(chosen)


def compare_restricted(engine: Any, starts: list[int], fraction: float) -> None:
    """Impact p50/p99 as a reader who sees everything and as one who gets placeholders, alternating per start."""
    factory = make_sessionmaker(engine)
    reader = frozenset({"analyst", "analysts"})  # not in bench-restricted
    seen_ms: list[float] = []
    masked_ms: list[float] = []
    hidden: list[int] = []
    with factory() as session:
        for start in starts[:10]:
            graph.impact(session, node=graph.resolve_node(session, field_id=start), audience=reader)
        for start in starts:
            node = graph.resolve_node(session, field_id=start)
            began = time.perf_counter()
            full = graph.impact(session, node=node, depth=20, budget=10_000)
            seen_ms.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            masked = graph.impact(session, node=node, depth=20, budget=10_000, audience=reader)
            masked_ms.append((time.perf_counter() - began) * 1000)
            assert masked.total == full.total, "placeholders must keep the impact counts"
            hidden.append(masked.hidden)
    s50, s99 = percentile(seen_ms, 0.5), percentile(seen_ms, 0.99)
    m50, m99 = percentile(masked_ms, 0.5), percentile(masked_ms, 0.99)
    print()
    print(f"restricted: {fraction:.0%} of datasets; hidden nodes per answer: mean {statistics.mean(hidden):.0f}")
    print(f"{'impact() as':42} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'  an admin (no filtering)':42} {s50:8.1f} {s99:8.1f}")
    print(f"{'  a reader outside the restriction':42} {m50:8.1f} {m99:8.1f}")
    print(f"ratio filtered/unfiltered: p50 {m50 / s50:.2f}x, p99 {m99 / s99:.2f}x (goal p50 <= 1.2x)")


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="PostgreSQL database to (re)create; default: a new one.")
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--edges", type=int, default=3_000_000)
    parser.add_argument("--starts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--reuse", action="store_true", help="Keep the database of an earlier run.")
    parser.add_argument(
        "--restricted", type=float, default=0.0, help="Restrict this fraction of datasets and compare (0..1)."
    )
    args = parser.parse_args()

    name = "headwater_bench_lineage_impact"
    url = args.database_url or make_url(ADMIN).set(database=name).render_as_string(hide_password=False)
    admin = create_db_engine(ADMIN).execution_options(isolation_level="AUTOCOMMIT")
    started = time.perf_counter()
    edge_list = edges_of(args.nodes, args.edges, args.seed)
    print(
        f"graph: {args.nodes:,} column nodes, {len(edge_list):,} edges generated in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    if not args.reuse:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{make_url(url).database}"'))
        migrations.upgrade(url)
        started = time.perf_counter()
        load(url, args.nodes, edge_list)
        print(f"loaded with COPY in {time.perf_counter() - started:.1f} s", flush=True)
    engine = create_db_engine(url)
    with engine.connect() as conn:
        size = conn.execute(text("SELECT pg_total_relation_size('lineage_column_edges')")).scalar_one()
    print(f"lineage_column_edges: {size / 2**20:,.0f} MB on disk with its indexes")

    per_layer = args.nodes // LAYERS
    rng = random.Random(args.seed + 1)
    starts = rng.sample(range(1, per_layer + 1), args.starts)
    factory = make_sessionmaker(engine)
    impact_ms: list[float] = []
    walk_ms: list[float] = []
    radius: list[int] = []
    partial = 0
    rss_before = rss_mb()
    with factory() as session:
        for start in starts[:10]:  # warm the cache and the connection
            graph.impact(session, node=graph.resolve_node(session, field_id=start))
        for start in starts:
            node = graph.resolve_node(session, field_id=start)
            began = time.perf_counter()
            result = graph.impact(session, node=node, depth=20, budget=10_000)
            impact_ms.append((time.perf_counter() - began) * 1000)
            radius.append(len(result.columns))
            partial += result.isPartial
            began = time.perf_counter()
            graph.walk(
                session,
                level="column",
                starts=[start],
                direction="downstream",
                max_depth=20,
                budget=10_000,
                filters=graph.WalkFilters(),
            )
            walk_ms.append((time.perf_counter() - began) * 1000)
    rss_db = rss_mb() - rss_before

    rss_before = rss_mb()
    began = time.perf_counter()
    nx_graph: nx.DiGraph = nx.DiGraph()
    nx_graph.add_edges_from(edge_list)
    build_s = time.perf_counter() - began
    rss_nx = rss_mb() - rss_before
    nx_ms: list[float] = []
    nx_radius: list[int] = []
    for start in starts:
        began = time.perf_counter()
        reached = nx.single_source_shortest_path_length(nx_graph, start)
        nx_ms.append((time.perf_counter() - began) * 1000)
        nx_radius.append(len(reached) - 1)
    assert nx_radius == radius, "the database walk and networkx disagree on the blast radius"

    p50, p99 = percentile(impact_ms, 0.5), percentile(impact_ms, 0.99)
    n50, n99 = percentile(nx_ms, 0.5), percentile(nx_ms, 0.99)
    print()
    print(f"machine: {os.cpu_count()} cpu, Python {sys.version.split()[0]}, PostgreSQL local")
    print(
        f"blast radius: mean {statistics.mean(radius):.0f} columns (min {min(radius)}, max {max(radius)}); partial answers: {partial}"
    )
    print(f"{'approach':42} {'p50 ms':>8} {'p99 ms':>8} {'memory':>22}")
    print(
        f"{'headwater impact() (CTE + networkx + names)':42} {p50:8.1f} {p99:8.1f} {f'{rss_db:.0f} MB RSS, {size / 2**20:.0f} MB disk':>22}"
    )
    print(f"{'  of which the recursive-CTE walk':42} {percentile(walk_ms, 0.5):8.1f} {percentile(walk_ms, 0.99):8.1f}")
    print(f"{'networkx BFS, whole graph in memory':42} {n50:8.1f} {n99:8.1f} {f'{rss_nx:.0f} MB RSS':>22}")
    print(f"networkx graph build: {build_s:.1f} s; ratio impact/networkx p50 {p50 / n50:.1f}x, p99 {p99 / n99:.1f}x")
    goal = p50 <= 50 and p99 <= 250
    print(f"goal p50 <= 50 ms and p99 <= 250 ms: {'PASS' if goal else 'FAIL'}")
    if args.restricted > 0:
        if not 0 < args.restricted <= 1:
            parser.error("--restricted is a fraction between 0 and 1")
        count = restrict(url, args.nodes, args.restricted, args.seed + 2)
        print(f"restricted {count:,} datasets to the group bench-restricted")
        compare_restricted(engine, starts, args.restricted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
