"""Benchmark of OpenLineage ingestion on PostgreSQL against the storage floor (issue 4).

What it does, in one run:

1. generates ``--events`` (default 20,000) COMPLETE RunEvents, each with one input and one output dataset
   (drawn from a pool of 400 tables), schema facets, and a columnLineage facet mapping 20 input columns to
   20 output columns, a new run id each. Each output column reads one of two input columns, drawn per event,
   so about half of a job's column edges change from one run to the next (retired, or revived): a harder
   stream than real jobs, whose lineage rarely changes between runs (``--stable``: each output column always
   reads the same input column, so every run confirms its job's lineage unchanged);
2. for each mode, creates a fresh PostgreSQL database, migrates it, and ingests the stream the mode's way:

   - ``1``: through ``headwater.lineage.ingest.ingest``, one event per transaction, committed as the POST route
     commits it (``headwater.transactions.run_in_transaction``: the write statement rides with the COMMIT);
   - ``100``, ``1000``: that many events per transaction (what the batch endpoint does with batches that size);
   - ``http``: one event per POST to ``/api/v1/lineage`` of a real uvicorn server (one worker), over one
     keep-alive connection: what one openlineage-python client's HTTP transport does;
   - ``httpN`` (e.g. ``http8``): the same with N producers posting at once, as a platform's many Spark
     drivers and Flink jobs do;

3. in the same run, inserts the very same event JSON into a plain table (``id bigserial, body jsonb``) the
   same way: in process, one executemany per transaction of the mode's size; or, for the HTTP modes, by POSTing
   to a server that only inserts each body raw (``_raw_insert_app.py``, same uvicorn options). That is the
   storage floor: what storing the events costs before anything is made of them;
4. alternates between Headwater and the floor in ten rounds of a tenth of the events each, so that both see the
   same machine (a busy neighbour slows both, not one), and prints events/s over all the events (sustained:
   the whole stream, dataset creation included), the ratio to the floor, and PASS/FAIL against each goal
   (>= 300 events/s, >= 0.25x the floor), with the WAL each side wrote per event (what a replica or a backup
   receives).

Run from the repository root::

    .venv/bin/python benchmarks/lineage_ingest.py [--events 20000] [--modes 1,http,http8,100,1000]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from _postgres import fresh_database
from _raw_insert_app import raw_table
from sqlalchemy import Engine, text

from headwater.db import create_db_engine, make_sessionmaker, session_scope

try:
    from headwater.lineage.ingest import ingest as ingest_outcome
    from headwater.transactions import run_in_transaction
except ImportError:  # a checkout from before the transaction helper (the pair harness's baseline)
    from headwater.lineage.ingest import ingest_events

    run_in_transaction = None  # type: ignore[assignment]

NAMESPACE = "hive://metastore:9083"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.30.0/integration/spark"
COLUMNS = [f"c{i}" for i in range(20)]
TABLES = 400
JOBS = 200


def events_of(count: int, seed: int, *, stable: bool = False) -> list[dict[str, Any]]:
    """COMPLETE events with 20 x 20 columns of column lineage each (``stable``: the same mapping every run)."""
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
                            "field": COLUMNS[k if stable else (k + rng.randrange(2)) % 20],
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
        documents = events[start : start + batch]
        if run_in_transaction is None:
            with session_scope(factory) as session:
                result = ingest_events(session, documents=documents, commit=True)  # type: ignore[call-arg]
        else:
            result = run_in_transaction(factory, functools.partial(ingest_outcome, documents=documents))
        assert result.applied == len(documents), result.warnings[:3]
    return time.perf_counter() - began


HEADWATER_APP = "headwater.app:create_app"
FLOOR_APP = "_raw_insert_app:create_app"


@contextlib.contextmanager
def server(url: str, app: str = HEADWATER_APP, environment: dict[str, str] | None = None) -> Iterator[str]:
    """A uvicorn process (one worker) serving ``app`` (Headwater, or the floor app) on ``url``'s database, with
    ``environment`` added to its own; its base URL. Stopped by its id."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEADWATER_")}
    here = Path(__file__).resolve().parent
    env.update(HEADWATER_DATABASE_URL=url, HEADWATER_LOG_LEVEL="warning", PYTHONPATH=f"{Path.cwd()}:{here}")
    env["HEADWATER_RATE_LIMIT_PER_SECOND"] = "0"  # one client sending as fast as it can, on purpose
    env.update(environment or {})
    command = [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1"]
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


def post(base: str, events: list[dict[str, Any]], producers: int = 1) -> float:
    """Seconds to POST ``events`` one per request to ``/api/v1/lineage`` from ``producers`` clients at once, each
    over its own keep-alive connection, as the OpenLineage HTTP transport does."""
    bodies = [orjson.dumps(e) for e in events]
    headers = {"Content-Type": "application/json"}
    failures: list[str] = []

    def produce(share: list[bytes]) -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            for body in share:
                answer = client.post("/api/v1/lineage", content=body, headers=headers)
                if answer.status_code != 201 or answer.json()["applied"] != 1:
                    failures.append(f"POST answered {answer.status_code}: {answer.text[:300]}")
                    return

    shares = [bodies[i::producers] for i in range(producers)]
    threads = [threading.Thread(target=produce, args=(share,)) for share in shares]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if failures:
        raise RuntimeError(failures[0])
    return seconds


def floor(engine: Engine, events: list[dict[str, Any]], batch: int) -> float:
    """Seconds to insert the same JSON into a plain table, ``batch`` per transaction."""
    with engine.begin() as conn:
        statement = raw_table(conn, "bench_raw")
    bodies = [orjson.dumps(e).decode() for e in events]
    began = time.perf_counter()
    for start in range(0, len(bodies), batch):
        with engine.begin() as conn:
            conn.execute(statement, [{"body": b} for b in bodies[start : start + batch]])
    return time.perf_counter() - began


ROUNDS = 10


def wal_position(engine: Engine) -> int:
    """The server's WAL insert position, in bytes."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar_one())


@dataclass
class Measured:
    """One mode's figures: seconds and WAL bytes of each side, distinct column edges at the end."""

    label: str
    seconds: float = 0.0
    floor_seconds: float = 0.0
    wal: int = 0
    floor_wal: int = 0
    edges: int = 0


def measure(mode: str, events: list[dict[str, Any]]) -> Measured:
    """One mode on a fresh database, Headwater and the floor alternating round by round. The WAL position is read
    around each side's rounds (only this benchmark writes to the server meanwhile, give or take autovacuum)."""
    http = mode.startswith("http")
    producers = int(mode[4:] or 1) if http else 1
    batch = 1 if http else int(mode)
    if http:
        label = "one event per POST (HTTP)" if producers == 1 else f"HTTP, {producers} producers at once"
    else:
        label = "one event per transaction" if batch == 1 else f"{batch:,} events per transaction"
    url = fresh_database(f"headwater_bench_lineage_ingest_{mode}")
    engine = create_db_engine(url)
    size = -(-len(events) // ROUNDS)
    rounds = [events[i : i + size] for i in range(0, len(events), size)]
    result = Measured(label)
    try:
        with contextlib.ExitStack() as stack:
            if http:
                base = stack.enter_context(server(url))
                floor_base = stack.enter_context(server(url, FLOOR_APP))
            for part in rounds:
                start = wal_position(engine)
                result.seconds += post(base, part, producers) if http else ingest(engine, part, batch)
                middle = wal_position(engine)
                result.floor_seconds += post(floor_base, part, producers) if http else floor(engine, part, batch)
                result.wal += middle - start
                result.floor_wal += wal_position(engine) - middle
        with engine.connect() as conn:
            result.edges = conn.execute(text("SELECT count(*) FROM lineage_column_edges")).scalar_one()
    finally:
        engine.dispose()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument(
        "--modes",
        default="1,http,http8,100,1000",
        help="Comma-separated: events per transaction (max 1000), 'http' (one event per POST) or 'httpN' "
        "(N producers posting at once).",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--stable", action="store_true", help="Every run of a job states the same column lineage (no churn)."
    )
    args = parser.parse_args()
    events = events_of(args.events, args.seed, stable=args.stable)
    stream = "the same mapping every run" if args.stable else "about half of a job's edges changing per run"
    print(f"{len(events):,} COMPLETE events, 20 -> 20 columns of column lineage each, {stream}", flush=True)
    results: list[Measured] = []
    for mode in (m.strip() for m in args.modes.split(",")):
        result = measure(mode, events)
        results.append(result)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"{result.label}: {len(events) / result.seconds:,.0f} events/s, floor "
            f"{len(events) / result.floor_seconds:,.0f} ({result.edges:,} distinct column edges; load {load})",
            flush=True,
        )
    print()
    print(f"machine: {os.cpu_count()} cpu, Python {sys.version.split()[0]}, PostgreSQL local")
    print(
        f"{'mode':32} {'headwater ev/s':>15} {'floor ev/s':>11} {'ratio':>6}  >= 300 ev/s  >= 0.25x floor"
        "  WAL B/event (floor)"
    )
    for r in results:
        rate, floor_rate = len(events) / r.seconds, len(events) / r.floor_seconds
        speed = "PASS" if rate >= 300 else "FAIL"
        ratio = "PASS" if rate / floor_rate >= 0.25 else "FAIL"
        wal = f"{r.wal / len(events):,.0f} ({r.floor_wal / len(events):,.0f})"
        print(
            f"{r.label:32} {rate:15,.0f} {floor_rate:11,.0f} {rate / floor_rate:6.2f}  {speed:>11}  {ratio:>14}"
            f"  {wal:>19}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
