"""Benchmark of OpenLineage ingestion on PostgreSQL against the storage floor (issue 4).

What it does, in one run:

1. creates a fresh PostgreSQL database and migrates it;
2. generates ``--events`` (default 20,000) COMPLETE RunEvents, each with one input and one output dataset
   (drawn from a pool of 400 tables), schema facets, and a columnLineage facet mapping 20 input columns to
   20 output columns, a new run id each;
3. ingests them through ``headwater.lineage.ingest.ingest_events`` (event log + jobs, runs, catalog
   datasets and fields, dataset and column edges), one event per transaction (what one POST does), then
   again into a fresh database 100 and 1,000 (the batch limit) events per transaction (what the batch
   endpoint does with batches of that size); mode ``http`` posts them one per request, over one keep-alive
   connection, to ``POST /api/v1/lineage`` of a real uvicorn server (one worker) on a fresh database: what
   the openlineage-python client's HTTP transport does;
4. in the same run, inserts the very same event JSON into a plain table (``id bigserial, body jsonb``)
   the same ways (one executemany per transaction): the storage floor;
5. prints events/s over all the events (sustained: the whole stream, dataset creation included), the
   ratio to the floor of the same transaction size, and PASS/FAIL against each goal (>= 300 events/s,
   >= 0.25x the floor).

Run from the repository root::

    .venv/bin/python benchmarks/lineage_ingest.py [--events 20000] [--batches 1,http,100,1000]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from _postgres import fresh_database
from sqlalchemy import Engine, text

from headwater.db import create_db_engine, make_sessionmaker, session_scope
from headwater.lineage.ingest import ingest_events

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


def ingest(engine: Engine, events: list[dict[str, Any]], batch: int) -> float:
    """Seconds to ingest ``events``, ``batch`` per transaction."""
    factory = make_sessionmaker(engine)
    began = time.perf_counter()
    for start in range(0, len(events), batch):
        with session_scope(factory) as session:
            result = ingest_events(session, documents=events[start : start + batch])
            assert result.applied == len(events[start : start + batch]), result.warnings[:3]
    return time.perf_counter() - began


@contextlib.contextmanager
def server(url: str) -> Iterator[str]:
    """A uvicorn process (one worker) serving Headwater on ``url``'s database; its base URL. Stopped by its id."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEADWATER_")}
    env.update(HEADWATER_DATABASE_URL=url, HEADWATER_LOG_LEVEL="warning", PYTHONPATH=str(Path.cwd()))
    command = [sys.executable, "-m", "uvicorn", "headwater.app:create_app", "--factory", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"]
    with tempfile.TemporaryDirectory() as work, open(Path(work) / "server.log", "wb") as log:
        process = subprocess.Popen(
            command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start: {(Path(work) / 'server.log').read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                time.sleep(0.2)
            yield base
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def post(base: str, events: list[dict[str, Any]]) -> float:
    """Seconds to POST ``events`` one per request to ``/api/v1/lineage``, as the OpenLineage HTTP transport does."""
    bodies = [orjson.dumps(e) for e in events]
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=base, timeout=60) as client:
        began = time.perf_counter()
        for body in bodies:
            answer = client.post("/api/v1/lineage", content=body, headers=headers)
            if answer.status_code != 201 or answer.json()["applied"] != 1:
                raise RuntimeError(f"POST answered {answer.status_code}: {answer.text[:300]}")
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
        "--batches",
        default="1,http,100,1000",
        help="Modes, comma-separated: events per transaction (max 1000), or 'http' (one event per POST).",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    events = events_of(args.events, args.seed)
    print(f"{len(events):,} COMPLETE events, 20 -> 20 columns of column lineage each", flush=True)
    rows: list[tuple[str, float, float]] = []
    for mode in args.batches.split(","):
        http = mode.strip() == "http"
        batch = 1 if http else int(mode)
        if http:
            label = "one event per POST (HTTP)"
        else:
            label = "one event per transaction" if batch == 1 else f"{batch:,} events per transaction"
        url = fresh_database(f"headwater_bench_lineage_ingest_{mode.strip()}")
        engine = create_db_engine(url)
        if http:
            with server(url) as base:
                seconds = post(base, events)
        else:
            seconds = ingest(engine, events, batch)
        floor_seconds = floor(engine, events, batch)
        with engine.connect() as conn:
            edges = conn.execute(text("SELECT count(*) FROM lineage_column_edges")).scalar_one()
        engine.dispose()
        rows.append((label, len(events) / seconds, len(events) / floor_seconds))
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"{label}: {len(events) / seconds:,.0f} events/s ({edges:,} distinct column edges; load {load})", flush=True
        )
    print()
    print(f"machine: {os.cpu_count()} cpu, Python {sys.version.split()[0]}, PostgreSQL local")
    print(f"{'mode':32} {'headwater ev/s':>15} {'floor ev/s':>11} {'ratio':>6}  >= 300 ev/s  >= 0.25x floor")
    for label, rate, floor_rate in rows:
        speed = "PASS" if rate >= 300 else "FAIL"
        ratio = "PASS" if rate / floor_rate >= 0.25 else "FAIL"
        print(f"{label:32} {rate:15,.0f} {floor_rate:11,.0f} {rate / floor_rate:6.2f}  {speed:>11}  {ratio:>14}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
