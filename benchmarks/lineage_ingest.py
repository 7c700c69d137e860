"""Benchmark of OpenLineage ingestion on PostgreSQL against the storage floor (issue 4).

What it does, in one run:

1. creates a fresh PostgreSQL database and migrates it;
2. generates ``--events`` (default 20,000) COMPLETE RunEvents, each with one input and one output dataset
   (drawn from a pool of 400 tables), schema facets, and a columnLineage facet mapping 20 input columns to
   20 output columns, a new run id each;
3. ingests them through ``headwater.lineage.ingest.ingest_events`` (event log + jobs, runs, catalog
   datasets and fields, dataset and column edges), one event per transaction (what one POST does), then
   again into a fresh database 100 and 1,000 (the batch limit) events per transaction (what the batch
   endpoint does with batches of that size);
4. in the same run, inserts the very same event JSON into a plain table (``id bigserial, body jsonb``)
   the same ways (one executemany per transaction): the storage floor;
5. prints events/s over all the events (sustained: the whole stream, dataset creation included), the
   ratio to the floor of the same transaction size, and PASS/FAIL against each goal (>= 300 events/s,
   >= 0.25x the floor).

It measures the service layer in-process (the HTTP layer adds the same cost to both sides).

Run from the repository root::

    .venv/bin/python benchmarks/lineage_ingest.py [--events 20000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
import uuid
from typing import Any

import orjson
from sqlalchemy import Engine, make_url, text

from headwater import migrations
from headwater.db import create_db_engine, make_sessionmaker, session_scope
from headwater.lineage.ingest import ingest_events

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NAMESPACE = "hive://metastore:9083"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.30.0/integration/spark"
COLUMNS = [f"c{i}" for i in range(20)]
TABLES = 400
JOBS = 200


def events_of(count: int, seed: int) -> list[dict[str, Any]]:
    """COMPLETE events with 20 x 20 columns of column lineage each."""
    rng = random.Random(seed)
    base = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    schema = {
        "_producer": PRODUCER,
        "_schemaURL": "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json",
        "fields": [{"name": c, "type": "string"} for c in COLUMNS],
    }
    events = []
    for i in range(count):
        job = rng.randrange(JOBS)
        source = f"db.t{job % TABLES}"
        target = f"db.t{(job * 7 + 1) % TABLES}"
        lineage = {
            "_producer": PRODUCER,
            "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json",
            "fields": {
                c: {
                    "inputFields": [
                        {
                            "namespace": NAMESPACE,
                            "name": source,
                            "field": COLUMNS[(k + rng.randrange(2)) % 20],
                            "transformations": [{"type": "DIRECT", "subtype": "IDENTITY"}],
                        }
                    ]
                }
                for k, c in enumerate(COLUMNS)
            },
        }
        events.append(
            {
                "eventType": "COMPLETE",
                "eventTime": (base + dt.timedelta(seconds=i)).isoformat(),
                "producer": PRODUCER,
                "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                "run": {"runId": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "facets": {}},
                "job": {"namespace": "spark", "name": f"job_{job}", "facets": {}},
                "inputs": [{"namespace": NAMESPACE, "name": source, "facets": {"schema": schema}}],
                "outputs": [
                    {"namespace": NAMESPACE, "name": target, "facets": {"schema": schema, "columnLineage": lineage}}
                ],
            }
        )
    return events


def fresh(name: str) -> str:
    """A new migrated database; its URL."""
    url = make_url(ADMIN).set(database=name).render_as_string(hide_password=False)
    admin = create_db_engine(ADMIN).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    migrations.upgrade(url)
    return url


def ingest(engine: Engine, events: list[dict[str, Any]], batch: int) -> float:
    """Seconds to ingest ``events``, ``batch`` per transaction."""
    factory = make_sessionmaker(engine)
    began = time.perf_counter()
    for start in range(0, len(events), batch):
        with session_scope(factory) as session:
            result = ingest_events(session, documents=events[start : start + batch])
            assert result.applied == len(events[start : start + batch]), result.warnings[:3]
    return time.perf_counter() - began


def floor(engine: Engine, events: list[dict[str, Any]], batch: int) -> float:
    """Seconds to insert the same JSON into a plain table, ``batch`` per transaction."""
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_raw"))
        conn.execute(text("CREATE TABLE bench_raw (id bigserial PRIMARY KEY, body jsonb NOT NULL)"))
    bodies = [orjson.dumps(e).decode() for e in events]
    statement = text("INSERT INTO bench_raw (body) VALUES (CAST(:body AS jsonb))")
    began = time.perf_counter()
    for start in range(0, len(bodies), batch):
        with engine.begin() as conn:
            conn.execute(statement, [{"body": b} for b in bodies[start : start + batch]])
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument(
        "--batches", default="1,100,1000", help="Events per transaction of each mode, comma-separated (max 1000)."
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    events = events_of(args.events, args.seed)
    print(f"{len(events):,} COMPLETE events, 20 -> 20 columns of column lineage each", flush=True)
    rows: list[tuple[str, float, float]] = []
    sizes = [int(size) for size in args.batches.split(",")]
    modes = [("one event per transaction" if b == 1 else f"{b:,} events per transaction", b) for b in sizes]
    for label, batch in modes:
        url = fresh(f"headwater_bench_lineage_ingest_{batch}")
        engine = create_db_engine(url)
        seconds = ingest(engine, events, batch)
        floor_seconds = floor(engine, events, batch)
        with engine.connect() as conn:
            edges = conn.execute(text("SELECT count(*) FROM lineage_column_edges")).scalar_one()
        engine.dispose()
        rows.append((label, len(events) / seconds, len(events) / floor_seconds))
        print(f"{label}: {len(events) / seconds:,.0f} events/s ({edges:,} distinct column edges)", flush=True)
    print()
    print(f"machine: {os.cpu_count()} cpu, Python {sys.version.split()[0]}, PostgreSQL local, in-process service calls")
    print(f"{'mode':32} {'headwater ev/s':>15} {'floor ev/s':>11} {'ratio':>6}  >= 300 ev/s  >= 0.25x floor")
    for label, rate, floor_rate in rows:
        speed = "PASS" if rate >= 300 else "FAIL"
        ratio = "PASS" if rate / floor_rate >= 0.25 else "FAIL"
        print(f"{label:32} {rate:15,.0f} {floor_rate:11,.0f} {rate / floor_rate:6.2f}  {speed:>11}  {ratio:>14}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
