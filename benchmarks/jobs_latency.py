"""Benchmark of job start latency on PostgreSQL (issue 5): submit -> RUNNING, p50 and p99.

What it does, in one run:

1. creates a fresh PostgreSQL database and migrates it, registers a shell cluster and the command ``true``;
2. starts a real ``headwater serve`` (no in-process worker) and one real ``headwater worker --slots 8``;
3. submits ``--jobs`` (default 300) jobs one at a time with ``POST /api/v1/jobs`` over HTTP, at random
   gaps of 20-80 ms (so submissions fall at every phase of the worker's poll interval);
4. reads each job's RUNNING transition time and measures from the moment its POST was sent (both clocks
   are this machine's wall clock);
5. in the same run, times ``subprocess.Popen(["true"])`` from the call until the process exists, the same
   number of times: the baseline (what starting the process costs with no queue in between);
6. prints p50/p99 of both, the ratio, and PASS/FAIL against the goal (p50 <= 100 ms).

``--poll-only`` turns off the LISTEN/NOTIFY wake-up (``HEADWATER_JOBS_LISTEN=false``) to show what polling
alone gives.

Run from the repository root (PostgreSQL at 127.0.0.1:5432, or HEADWATER_BENCH_POSTGRES_URL)::

    .venv/bin/python benchmarks/jobs_latency.py [--jobs 300]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _postgres import drop_database  # noqa: E402  (the benchmarks directory is not a package)
from jobs_common import (  # noqa: E402
    fresh_database,
    job_request,
    load_average,
    outcome,
    percentile,
    register_true,
    server,
    workers,
)
from sqlalchemy import select  # noqa: E402

from headwater.db import create_db_engine, make_sessionmaker, session_scope  # noqa: E402
from headwater.jobs.models import Job, JobTransition  # noqa: E402

GOAL_P50_MS = 100.0


def submit_all(base_url: str, count: int, seed: int) -> dict[str, float]:
    """POST ``count`` jobs one at a time; the wall-clock time each POST was sent, by job id."""
    rng = random.Random(seed)
    sent: dict[str, float] = {}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for index in range(count):
            began = time.time()
            response = client.post("/api/v1/jobs", json=job_request(index))
            response.raise_for_status()
            sent[response.json()["id"]] = began
            time.sleep(rng.uniform(0.02, 0.08))
    return sent


def running_times(url: str, ids: list[str], timeout: float = 120) -> dict[str, float]:
    """When each job's RUNNING transition was recorded (epoch seconds), once all have one."""
    engine = create_db_engine(url)
    factory = make_sessionmaker(engine)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with session_scope(factory) as session:
                rows = session.execute(
                    select(Job.id, JobTransition.at)
                    .join(JobTransition, JobTransition.job_pk == Job.pk)
                    .where(JobTransition.to_status == "RUNNING")
                ).all()
            found = {job_id: at.timestamp() for job_id, at in rows}
            if len(found) >= len(ids) or time.monotonic() > deadline:
                return found
            time.sleep(0.2)
    finally:
        engine.dispose()


def baseline(count: int) -> list[float]:
    """Milliseconds from ``Popen(["true"])`` being called until it returns (the process exists)."""
    times = []
    for _ in range(count):
        began = time.perf_counter()
        process = subprocess.Popen(["true"])
        times.append((time.perf_counter() - began) * 1000)
        process.wait()
    return times


def main() -> int:
    """Run the benchmark; exit status 1 when the goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--poll-only", action="store_true", help="Workers poll; no LISTEN/NOTIFY wake-up.")
    parser.add_argument("--keep", action="store_true", help="Keep the database for inspection.")
    args = parser.parse_args()
    extra = {"HEADWATER_JOBS_LISTEN": "false"} if args.poll_only else {}
    url = fresh_database("latency")
    print(f"load average before: {load_average()}")
    try:
        register_true(url, max_concurrent=64)
        with (
            tempfile.TemporaryDirectory(prefix="headwater-bench-") as tmp,
            server(url, Path(tmp)) as base_url,
            workers(url, Path(tmp), 1, 8, **extra),
        ):
            sent = submit_all(base_url, args.jobs, args.seed)
            started = running_times(url, list(sent))
        counts = outcome(url)
    finally:
        if not args.keep:
            drop_database(url)
    floor = baseline(args.jobs)
    latencies = [(started[job_id] - sent[job_id]) * 1000 for job_id in sent if job_id in started]
    print(f"load average after: {load_average()}")
    mode = "polling only" if args.poll_only else "LISTEN/NOTIFY wake-up"
    print(f"{args.jobs} jobs `true` submitted over HTTP one at a time, 1 worker x 8 slots, PostgreSQL, {mode}")
    print(f"  statuses {counts}; {len(latencies)} reached RUNNING")
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    b50, b99 = percentile(floor, 0.5), percentile(floor, 0.99)
    print(f"  submit -> RUNNING: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms")
    print(f"  baseline Popen(['true']): p50 {b50:.2f} ms, p99 {b99:.2f} ms")
    print(f"  ratio p50 headwater / baseline: {p50 / b50:.1f}x")
    ok = p50 <= GOAL_P50_MS and len(latencies) == args.jobs
    print(f"  {'PASS' if ok else 'FAIL'}: p50 <= {GOAL_P50_MS:.0f} ms (and every job started)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
