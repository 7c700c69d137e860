"""Search benchmark: index build time, query latency (p50/p95 over 200 mixed queries) and relevance (MRR over
50 known-answer queries) of the ``sql`` backend on SQLite and PostgreSQL, beside the naive baseline in the same
run: ``name ILIKE '%term%'`` over dataset names, on the same data.

    .venv/bin/python benchmarks/search.py                      # 100,000 datasets x 20 fields, both databases
    .venv/bin/python benchmarks/search.py --datasets 10000 --databases sqlite
    .venv/bin/python benchmarks/search.py --reuse   # keep the loaded databases; later runs skip load + index

The catalog is written with bulk inserts (this measures search, not registration); the index is then built
with ``SearchIndexer.rebuild`` exactly as ``headwater search reindex`` does. Column documents (one per field)
are off by default (``--columns`` turns them on): dataset documents already carry every field name.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, insert, text

from headwater import migrations
from headwater.catalog.models import Dataset, DatasetOwner, DatasetTag, Field, Source
from headwater.db import create_db_engine, make_sessionmaker, utcnow
from headwater.search.base import SearchQuery
from headwater.search.indexer import SearchIndexer
from headwater.search.sql import SqlSearchBackend
from headwater.search.sql_ranking import CANDIDATE_CAP

DOMAINS = ["analytics", "raw", "curated", "finance", "marketing", "ops", "ml", "staging", "lake", "mart", "ads", "crm"]
ENTITIES = [
    "title",
    "member",
    "device",
    "playback",
    "session",
    "account",
    "payment",
    "invoice",
    "campaign",
    "experiment",
    "profile",
    "content",
    "episode",
    "season",
    "trailer",
    "artwork",
    "subtitle",
    "audio",
    "region",
    "country",
    "partner",
    "vendor",
    "order",
    "refund",
    "churn",
    "retention",
    "signup",
    "login",
    "search",
    "click",
    "impression",
    "recommendation",
    "rating",
    "review",
    "license",
    "catalog",
    "studio",
    "genre",
    "cast",
    "crew",
]
METRICS = [
    "daily",
    "hourly",
    "weekly",
    "monthly",
    "views",
    "events",
    "counts",
    "totals",
    "snapshot",
    "history",
    "latest",
    "agg",
    "facts",
    "dim",
    "stats",
]
COLUMN_WORDS = [
    "id",
    "ts",
    "date",
    "user",
    "member",
    "title",
    "device",
    "os",
    "version",
    "country",
    "region",
    "amount",
    "currency",
    "status",
    "type",
    "name",
    "email",
    "score",
    "rank",
    "count",
    "duration",
    "start",
    "end",
    "source",
    "target",
    "session",
    "event",
    "page",
    "url",
    "referrer",
    "browser",
    "app",
    "build",
    "price",
    "discount",
    "tax",
    "total",
    "quantity",
    "sku",
    "category",
    "label",
    "flag",
    "reason",
    "error",
    "code",
    "latency",
    "bytes",
]
DESCRIPTION_WORDS = [
    "daily",
    "aggregate",
    "of",
    "events",
    "per",
    "member",
    "and",
    "title,",
    "refreshed",
    "nightly",
    "from",
    "the",
    "raw",
    "stream;",
    "used",
    "by",
    "dashboards",
    "finance",
    "reports",
    "experiments",
    "and",
    "recommendations;",
    "contains",
    "personal",
    "data",
    "restricted",
    "access",
    "owned",
    "by",
    "the",
    "team",
]
TAGS = ["pii", "gdpr", "tier-1", "certified", "kpi", "streaming", "deprecated", "experimentation"]
OWNERS = [f"team:{d}-data" for d in DOMAINS] + [f"user{i}@example.com" for i in range(40)]


@dataclass
class Catalog:
    """What the generator made: names by id, and the known-answer queries."""

    names: dict[int, str]
    known: list[tuple[str, int, str]]  # (query, expected dataset id, kind of query)
    mixed: list[str]


def generate(n: int, fields: int, seed: int = 7) -> tuple[list[dict], list[dict], list[dict], list[dict], Catalog]:
    """Rows for datasets, fields, tags and owners, plus the queries."""
    rng = random.Random(seed)
    combos: set[tuple[str, str, str, str]] = set()
    while len(combos) < n:
        combos.add((rng.choice(DOMAINS), rng.choice(ENTITIES), rng.choice(ENTITIES), rng.choice(METRICS)))
    ordered = sorted(combos)
    rng.shuffle(ordered)
    now = utcnow()
    datasets, field_rows, tags, owners = [], [], [], []
    names: dict[int, str] = {}
    short_count: dict[str, int] = {}
    rare_columns: dict[int, str] = {}
    for i, (domain, e1, e2, metric) in enumerate(ordered, start=1):
        name = f"{domain}.{e1}_{e2}_{metric}"
        names[i] = name
        short_count[name.split(".", 1)[1]] = short_count.get(name.split(".", 1)[1], 0) + 1
        description = " ".join(rng.choice(DESCRIPTION_WORDS) for _ in range(12))
        datasets.append(
            {
                "id": i, "source_id": 1, "namespace": "manual", "name": name, "kind": "table", "format": "iceberg",
                "user_description": f"{e1} {e2} {metric}: {description}", "field_count": fields,
                "created_at": now, "updated_at": now, "current_schema_version": 1,
            }
        )  # fmt: skip
        chosen: set[str] = set()
        while len(chosen) < fields:
            chosen.add(f"{rng.choice(COLUMN_WORDS)}_{rng.choice(COLUMN_WORDS)}")
        columns = sorted(chosen)
        if i % 997 == 0 and len(rare_columns) < 10:
            columns[0] = f"zq{len(rare_columns)}_settlement_reference"
            rare_columns[i] = columns[0]
        for position, column in enumerate(columns):
            field_rows.append(
                {"dataset_id": i, "path": column, "name": column, "position": position, "type": "string",
                 "normalized_type": "string", "nullable": True, "tags": []}
            )  # fmt: skip
        for tag in rng.sample(TAGS, rng.randint(0, 2)):
            tags.append({"dataset_id": i, "tag": tag})
        owners.append({"dataset_id": i, "owner": rng.choice(OWNERS), "role": "technical_owner"})
    unique = [i for i, name in names.items() if short_count[name.split(".", 1)[1]] == 1]
    rng.shuffle(unique)
    known: list[tuple[str, int, str]] = []
    for i in unique[:10]:
        known.append((names[i], i, "exact full name"))
    for i in unique[10:20]:
        known.append((names[i].split(".", 1)[1], i, "exact short name"))
    for i in unique[20:30]:
        short = names[i].split(".", 1)[1]
        word = max(short.split("_"), key=len)
        typo = word[0] + word[2] + word[1] + word[3:]  # swap two letters
        known.append((short.replace(word, typo, 1), i, "typo"))
    for i in unique[30:40]:
        known.append((names[i].split(".", 1)[1].replace("_", " "), i, "name words"))
    for i, column in rare_columns.items():
        known.append((column, i, "column name"))
    mixed = [q for q, _, _ in known]
    while len(mixed) < 200:
        choice = rng.random()
        if choice < 0.35:
            mixed.append(rng.choice(ENTITIES))
        elif choice < 0.6:
            mixed.append(f"{rng.choice(ENTITIES)} {rng.choice(METRICS)}")
        elif choice < 0.8:
            word = rng.choice(ENTITIES)
            mixed.append(word[: max(3, len(word) - 2)])  # search-as-you-type prefix
        else:
            mixed.append(f"{rng.choice(COLUMN_WORDS)}_{rng.choice(COLUMN_WORDS)}")
    return datasets, field_rows, tags, owners, Catalog(names, known[:50], mixed[:200])


def load(engine: Engine, rows: tuple[list[dict], list[dict], list[dict], list[dict]]) -> None:
    """Bulk-insert the catalog."""
    datasets, field_rows, tags, owners = rows
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            insert(Source.__table__),
            [
                {
                    "id": 1,
                    "name": "manual",
                    "kind": "manual",
                    "namespace": "manual",
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
        for table, data in ((Dataset, datasets), (Field, field_rows), (DatasetTag, tags), (DatasetOwner, owners)):
            for start in range(0, len(data), 20_000):
                conn.execute(insert(table.__table__), data[start : start + 20_000])


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def timed(fn: Callable[[], object]) -> float:
    """Milliseconds one call takes."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def mrr(ranked: Callable[[str], list[int]], known: list[tuple[str, int, str]]) -> tuple[float, dict[str, float]]:
    """Mean reciprocal rank over the known-answer queries (0 when the answer is not in the top 20), and per kind."""
    by_kind: dict[str, list[float]] = {}
    for query, expected, kind in known:
        ids = ranked(query)
        rr = 1.0 / (ids.index(expected) + 1) if expected in ids else 0.0
        by_kind.setdefault(kind, []).append(rr)
    flat = [v for values in by_kind.values() for v in values]
    return statistics.mean(flat), {k: statistics.mean(v) for k, v in by_kind.items()}


def _loaded(engine: Engine, n: int) -> bool:
    """True when a reused database already holds the catalog and its index."""
    with engine.connect() as conn:
        try:
            datasets = conn.scalar(text("SELECT count(*) FROM datasets"))
            documents = conn.scalar(text("SELECT count(*) FROM search_documents WHERE type = 'dataset'"))
        except Exception:  # noqa: BLE001  (no tables yet)
            return False
    return datasets == n and documents == n


def run(
    database: str, url: str, n: int, fields: int, columns: bool, *, reuse: bool = False, cap: int = CANDIDATE_CAP
) -> dict[str, object]:
    """Build, index and query one database (or, with ``reuse``, query one built before); the figures."""
    engine = create_db_engine(url)
    rows = generate(n, fields)
    catalog = rows[4]
    backend = SqlSearchBackend(engine, candidate_cap=cap)
    load_seconds = index_seconds = float("nan")
    migrations.upgrade(url)  # a reused database gets the indexes of newer migrations too
    if not (reuse and _loaded(engine, n)):
        started = time.perf_counter()
        load(engine, rows[:4])
        load_seconds = time.perf_counter() - started
        indexer = SearchIndexer(
            factory=make_sessionmaker(engine), backend=backend, include_columns=columns, batch_size=500
        )
        index_seconds = indexer.rebuild().seconds
        if engine.dialect.name == "postgresql":
            # What autovacuum does soon after a bulk load: statistics and the visibility map.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
    documents = backend.count_documents()

    def search_ids(query: str, facets: bool = True) -> list[int]:
        page = backend.search(SearchQuery(q=query, limit=20, facets=facets).validate())
        return [hit.dataset_id for hit in page.items]

    like = "ILIKE" if engine.dialect.name == "postgresql" else "LIKE"  # SQLite's LIKE ignores case already

    def baseline_ids(query: str) -> list[int]:
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with engine.connect() as conn:
            return list(
                conn.scalars(
                    text(f"SELECT id FROM datasets WHERE name {like} :p ESCAPE '\\' ORDER BY name, id LIMIT 20"),
                    {"p": pattern},
                )
            )

    for query in catalog.mixed[:20]:  # warm caches
        search_ids(query)
        baseline_ids(query)
    latencies = [timed(lambda q=q: search_ids(q)) for q in catalog.mixed]
    no_facets = [timed(lambda q=q: search_ids(q, facets=False)) for q in catalog.mixed]
    baseline = [timed(lambda q=q: baseline_ids(q)) for q in catalog.mixed]
    search_mrr, search_kinds = mrr(search_ids, catalog.known)
    base_mrr, base_kinds = mrr(baseline_ids, catalog.known)
    backend.close()
    engine.dispose()
    return {
        "database": database,
        "datasets": n,
        "fields": n * fields,
        "documents": documents,
        "load_s": load_seconds,
        "index_s": index_seconds,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p50_nofacets": percentile(no_facets, 50),
        "p95_nofacets": percentile(no_facets, 95),
        "base_p50": percentile(baseline, 50),
        "base_p95": percentile(baseline, 95),
        "mrr": search_mrr,
        "mrr_kinds": search_kinds,
        "base_mrr": base_mrr,
        "base_kinds": base_kinds,
    }


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--fields", type=int, default=20)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--columns", action="store_true", help="Also index one document per column.")
    parser.add_argument("--postgres-admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Keep the loaded databases (SQLite file under --data-dir, PostgreSQL database named by size) and "
        "reuse them on later runs, skipping load and index build.",
    )
    parser.add_argument(
        "--candidate-cap", type=int, default=CANDIDATE_CAP, help="Candidates a broad relevance query ranks."
    )
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "headwater-bench-search"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    results = []
    size = f"{args.datasets}x{args.fields}{'c' if args.columns else ''}"
    for database in args.databases.split(","):
        if database == "sqlite" and args.reuse:
            Path(args.data_dir).mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{Path(args.data_dir) / f'search-{size}.db'}"
            results.append(
                run("SQLite", url, args.datasets, args.fields, args.columns, reuse=True, cap=args.candidate_cap)
            )
            continue
        if database == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                results.append(
                    run(
                        "SQLite",
                        f"sqlite:///{Path(tmp) / 'bench.db'}",
                        args.datasets,
                        args.fields,
                        args.columns,
                        cap=args.candidate_cap,
                    )
                )
            continue
        admin = create_engine(args.postgres_admin, isolation_level="AUTOCOMMIT")
        if args.reuse:
            name = f"headwater_bench_search_keep_{size}"
            with admin.connect() as conn:
                if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = admin.url.set(database=name).render_as_string(hide_password=False)
            results.append(
                run("PostgreSQL", url, args.datasets, args.fields, args.columns, reuse=True, cap=args.candidate_cap)
            )
            admin.dispose()
            continue
        name = f"headwater_bench_search_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = admin.url.set(database=name).render_as_string(hide_password=False)
            results.append(run("PostgreSQL", url, args.datasets, args.fields, args.columns, cap=args.candidate_cap))
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(
        "| database | datasets / fields | documents | index build | search p50 / p95 (facets on) | facets off | ILIKE p50 / p95 | MRR search | MRR ILIKE |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['database']} | {r['datasets']:,} / {r['fields']:,} | {sum(r['documents'].values()):,} | "  # type: ignore[attr-defined]
            f"{r['index_s']:.0f} s | {r['p50']:.1f} / {r['p95']:.1f} ms | {r['p50_nofacets']:.1f} / "
            f"{r['p95_nofacets']:.1f} ms | {r['base_p50']:.1f} / {r['base_p95']:.1f} ms | {r['mrr']:.3f} | {r['base_mrr']:.3f} |"
        )
    print(
        f"- load average (1/5/15 min) before {load_before}, after {os.getloadavg()}; candidate cap {args.candidate_cap}"
    )
    for r in results:
        kinds = ", ".join(f"{k} {v:.2f}/{r['base_kinds'][k]:.2f}" for k, v in r["mrr_kinds"].items())  # type: ignore[attr-defined,index]
        print(f"- {r['database']}: MRR by query kind (search/ILIKE): {kinds}; catalog bulk load {r['load_s']:.0f} s")


if __name__ == "__main__":
    main()
