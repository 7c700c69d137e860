"""OpenLineage ingestion over HTTP on PostgreSQL, each mode beside its raw-insert floor from the same run (issue 18).

The goals (issue 18): one event per POST >= 0.5x the floor; batches >= 0.25x; 8 producers >= 400 events/s.

What it does, in one run:

1. generates a realistic stream (``_openlineage_stream.py``): Spark- and Airflow-shaped RunEvents, a START and a
   COMPLETE per run, repeated runs of a pool of jobs, column lineage and schema facets, symlinks, parent facets;
2. for each mode, on a fresh migrated database, starts Headwater (``uvicorn``, one worker, its background loops on,
   as ``headwater serve`` runs it) and the floor (``_raw_insert_app.py``: the same engine settings, it inserts each
   event's JSON into a plain ``(id, body jsonb)`` table), and posts the stream to each the mode's way:

   - ``http``: one event per ``POST /api/v1/lineage``, one client over a keep-alive connection (what the
     openlineage-python HTTP transport does);
   - ``http8``: the same from 8 producers at once;
   - ``batch100``, ``batch1000``: that many events per ``POST /api/v1/lineage/batch`` (the floor: one executemany
     of the batch's rows in one transaction);

3. alternates Headwater and the floor in ten rounds of a tenth of the stream each (a busy neighbour slows both),
   and prints events/s over the whole stream (dataset creation included), the ratio to the floor, and the goal's
   verdict, with the machine's load average.

Both servers accept bodies up to 16 MiB (``HEADWATER_MAX_BODY_BYTES``): a batch of 1,000 such events is ~5 MB,
over the 1 MiB default. Run from the repository root::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/lineage_ingest_http.py [--events 10000] [--modes http,http8,...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from typing import Any

import httpx
import orjson
from _openlineage_stream import stream
from _postgres import drop_database, fresh_database
from lineage_ingest import FLOOR_APP, server

__all__ = ["GOALS", "main"]

ROUNDS = 10
MODES = "http,http8,batch100,batch1000"
ENVIRONMENT = {"HEADWATER_MAX_BODY_BYTES": str(16 * 1024 * 1024)}
# mode -> (ratio to the floor, events/s), the goal's two bars (either may be absent).
GOALS: dict[str, tuple[float | None, float | None]] = {
    "http": (0.5, None),
    "http8": (0.5, 400.0),
    "batch100": (0.25, None),
    "batch1000": (0.25, None),
}


def send(base: str, events: list[Any], *, producers: int, batch: int) -> float:
    """Seconds to POST ``events`` from ``producers`` clients at once, ``batch`` per request (1: to
    ``/api/v1/lineage``, one event each; more: arrays to ``/api/v1/lineage/batch``)."""
    path = "/api/v1/lineage" if batch == 1 else "/api/v1/lineage/batch"
    if batch == 1:
        bodies = [orjson.dumps(e) for e in events]
    else:
        bodies = [orjson.dumps(events[i : i + batch]) for i in range(0, len(events), batch)]
    headers = {"Content-Type": "application/json"}
    failures: list[str] = []

    def produce(share: list[bytes]) -> None:
        with httpx.Client(base_url=base, timeout=300) as client:
            for body in share:
                answer = client.post(path, content=body, headers=headers)
                if answer.status_code != 201 or answer.json()["applied"] + answer.json().get("duplicates", 0) == 0:
                    failures.append(f"POST answered {answer.status_code}: {answer.text[:300]}")
                    return

    # Producer i sends bodies i, i + n, ...: each producer's own events stay in stream order.
    threads = [threading.Thread(target=produce, args=(bodies[i::producers],)) for i in range(producers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if failures:
        raise RuntimeError(failures[0])
    return seconds


def measure(mode: str, events: list[Any]) -> tuple[float, float]:
    """Seconds Headwater and the floor took for ``events`` in ``mode``, alternating round by round."""
    producers = int(mode[4:] or 1) if mode.startswith("http") else 1
    batch = int(mode[5:]) if mode.startswith("batch") else 1
    url = fresh_database(f"headwater_bench_ingest_http_{mode}")
    size = max(batch, -(-len(events) // ROUNDS) // batch * batch)
    rounds = [events[i : i + size] for i in range(0, len(events), size)]
    ours = floor = 0.0
    try:
        with contextlib.ExitStack() as stack:
            base = stack.enter_context(server(url, environment=ENVIRONMENT))
            floor_base = stack.enter_context(server(url, FLOOR_APP, ENVIRONMENT))
            for part in rounds:
                ours += send(base, part, producers=producers, batch=batch)
                floor += send(floor_base, part, producers=producers, batch=batch)
    finally:
        drop_database(url)
    return ours, floor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--modes", default=MODES, help=f"Comma-separated, from {MODES}.")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    events = stream(args.events, args.seed)
    size = sum(len(orjson.dumps(e)) for e in events) / len(events)
    print(f"{len(events):,} events (START + COMPLETE per run, Spark and Airflow), {size:,.0f} B of JSON each")
    rows = []
    for mode in (m.strip() for m in args.modes.split(",")):
        ours, floor = measure(mode, events)
        rate, floor_rate = len(events) / ours, len(events) / floor
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        ratio_goal, rate_goal = GOALS.get(mode, (None, None))
        verdicts = []
        if ratio_goal is not None:
            verdicts.append(f"ratio >= {ratio_goal}: {'met' if rate / floor_rate >= ratio_goal else 'NOT met'}")
        if rate_goal is not None:
            verdicts.append(f">= {rate_goal:.0f} ev/s: {'met' if rate >= rate_goal else 'NOT met'}")
        row = (
            f"{mode:10} {rate:9,.0f} ev/s  floor {floor_rate:9,.0f} ev/s  ratio {rate / floor_rate:5.2f}  "
            f"{'; '.join(verdicts)}  (load {load})"
        )
        rows.append(row)
        print(row, flush=True)
    print(f"\nmachine: {os.cpu_count()} cpu, Python {sys.version.split()[0]}, PostgreSQL local")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
