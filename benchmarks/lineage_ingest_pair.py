"""Paired comparison of lineage ingestion between two checkouts (A/B), for changes smaller than this VM's noise.

Single benchmark runs of the same code move by 10-30 % here. This runs two checkouts side by side instead: each
checkout ingests the same stream (``lineage_ingest.events_of``) one event per transaction, in its own worker
process, on its own fresh database, and the two take turns 100 events at a time, so a slow moment of the machine
slows both. Each worker reports, for the fast phase (after the first third of the stream, when its datasets
exist): wall time, its own CPU time, its PostgreSQL backend's CPU time (``/proc/<pid>/stat`` of
``pg_backend_pid()``; the pool holds one connection) and the WAL written, per event. Identical checkouts still
differ by up to 5 %.

Run from the repository root, with a checkout of the other commit beside it (``git worktree add /tmp/base
<commit>``)::

    .venv/bin/python benchmarks/lineage_ingest_pair.py /tmp/base . [--events 4500] [--stable]

Each worker imports ``headwater`` from its own checkout (``PYTHONPATH``), whatever the virtualenv has installed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CHUNK = 100
KEYS = ("wall", "client", "backend", "wal")


def _backend_cpu(pid: int) -> float:
    """Seconds of CPU the PostgreSQL backend ``pid`` has used (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker(name: str, events: int, stable: bool) -> None:
    """Ingest chunks of the stream on a fresh database as the coordinator asks (``start end`` lines on stdin);
    answer each with a JSON line of the chunk's costs."""
    from _postgres import drop_database, fresh_database
    from lineage_ingest import events_of, ingest, wal_position
    from sqlalchemy import text

    from headwater.db import create_db_engine

    url = fresh_database(name)
    engine = create_db_engine(url, pool_size=1)
    stream = events_of(events, 7, stable=stable)
    with engine.connect() as connection:
        backend = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            start, end = map(int, line.split())
            wal_before, began, cpu, backend_cpu = (
                wal_position(engine),
                time.perf_counter(),
                time.process_time(),
                _backend_cpu(backend),
            )
            # As this checkout's own benchmark ingests one event per transaction (what its POST route does).
            ingest(engine, stream[start:end], 1)
            costs = {
                "wall": time.perf_counter() - began,
                "client": time.process_time() - cpu,
                "backend": _backend_cpu(backend) - backend_cpu,
                "wal": wal_position(engine) - wal_before,
            }
            print(json.dumps(costs), flush=True)
    finally:
        engine.dispose()
        drop_database(url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="Checkout A (the baseline).")
    parser.add_argument("b", type=Path, help="Checkout B (the change).")
    parser.add_argument("--events", type=int, default=4500)
    parser.add_argument("--stable", action="store_true", help="Every run of a job states the same column lineage.")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.events, args.stable)
        return 0
    here = Path(__file__).resolve()
    workers = []
    for index, tree in enumerate((args.a.resolve(), args.b.resolve())):
        command = [sys.executable, str(here), str(tree), str(tree), "--events", str(args.events)]
        # Databases named for this run: two runs at once (two checkouts benchmarked on one server) must not drop
        # each other's databases.
        database = f"headwater_bench_pair_{os.getpid()}_{index}"
        command += ["--worker", database] + (["--stable"] if args.stable else [])
        env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'benchmarks'}"}
        workers.append(
            subprocess.Popen(command, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    totals = [dict.fromkeys(KEYS, 0.0) for _ in workers]
    measured = 0
    try:
        for process in workers:
            assert process.stdout is not None and process.stdout.readline().strip() == "ready", "a worker failed"
        skip = args.events // 3  # dataset creation: not what a change to the steady state is about
        for turn, start in enumerate(range(0, args.events, CHUNK)):
            end = min(args.events, start + CHUNK)
            measured += end - start if start >= skip else 0
            order = list(enumerate(workers)) if turn % 2 == 0 else list(enumerate(workers))[::-1]
            for index, process in order:
                assert process.stdin is not None and process.stdout is not None
                process.stdin.write(f"{start} {end}\n")
                process.stdin.flush()
                costs = json.loads(process.stdout.readline())
                if start >= skip:
                    for key in KEYS:
                        totals[index][key] += costs[key]
    finally:
        for process in workers:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=120)
    for label, total in zip("AB", totals, strict=True):
        figures = ", ".join(
            f"{key} {total[key] / measured:,.0f} B" if key == "wal" else f"{key} {total[key] / measured * 1000:.3f} ms"
            for key in KEYS
        )
        print(f"{label} per event: {figures}")
    print("B/A:", ", ".join(f"{key} {totals[1][key] / totals[0][key]:.3f}" for key in KEYS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
