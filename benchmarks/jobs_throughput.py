"""Benchmark of job throughput on PostgreSQL (issue 5): 2,000 trivial jobs through 2 workers x 8 slots.

What it does, in one run:

1. creates a fresh PostgreSQL database and migrates it, registers a shell cluster (limit 16 jobs) and the
   command ``true``;
2. starts two real ``headwater worker --slots 8`` processes and waits until both are up;
3. submits ``--jobs`` (default 2,000) jobs through ``headwater.jobs.service.submit_job`` (100 per
   transaction) while the workers run them, and waits until every job is final;
4. in the same run, spawns the same number of ``true`` processes directly with ``subprocess.run``, 16 at a
   time (the same concurrency): the baseline;
5. prints jobs/s from the first submission to the last job's end, the ratio to the baseline, how many jobs
   were lost (not SUCCEEDED) or run twice (a second claim or attempt), and PASS/FAIL against the goals
   (>= 50 jobs/s, zero lost, zero run twice).

Run from the repository root (PostgreSQL at 127.0.0.1:5432, or HEADWATER_BENCH_POSTGRES_URL)::

    .venv/bin/python benchmarks/jobs_throughput.py [--jobs 2000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _postgres import drop_database  # noqa: E402  (the benchmarks directory is not a package)
from jobs_common import (  # noqa: E402
    fresh_database,
    job_request,
    load_average,
    outcome,
    register_true,
    workers,
)
from sqlalchemy import func, select  # noqa: E402

from headwater.db import create_db_engine, make_sessionmaker, session_scope  # noqa: E402
from headwater.jobs import access, service  # noqa: E402
from headwater.jobs.models import FINAL_STATUSES, Job  # noqa: E402
from headwater.jobs.schemas import JobSubmit  # noqa: E402

GOAL_JOBS_PER_SECOND = 50.0


def run_jobs(url: str, count: int, base: Path, worker_count: int, slots: int) -> float:
    """Seconds from the first submission until all ``count`` jobs are final."""
    engine = create_db_engine(url)
    factory = make_sessionmaker(engine)
    final = [s.value for s in FINAL_STATUSES]
    with workers(url, base, worker_count, slots):
        began = time.perf_counter()
        for start in range(0, count, 100):
            with session_scope(factory) as session:
                for index in range(start, min(count, start + 100)):
                    data = JobSubmit.model_validate(job_request(index))
                    service.submit_job(session, data=data, submitter=access.trusted_submitter("bench"))
        submitted = time.perf_counter() - began
        deadline = time.monotonic() + 600
        while True:
            with session_scope(factory) as session:
                done = session.scalar(select(func.count()).select_from(Job).where(Job.status.in_(final))) or 0
            if done >= count:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done} of {count} jobs final after 600 s")
            time.sleep(0.02)
        elapsed = time.perf_counter() - began
    engine.dispose()
    print(f"  submitted {count:,} jobs in {submitted:.2f} s (while the workers ran them)")
    return elapsed


def run_baseline(count: int, concurrency: int) -> float:
    """Seconds to spawn ``count`` ``true`` processes directly, ``concurrency`` at a time."""
    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        codes = list(pool.map(lambda _: subprocess.run(["true"], check=False).returncode, range(count)))
    assert codes == [0] * count
    return time.perf_counter() - began


def main() -> int:
    """Run the benchmark; exit status 1 when a goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="Keep the database for inspection.")
    args = parser.parse_args()
    url = fresh_database("throughput")
    print(f"load average before: {load_average()}")
    try:
        register_true(url, max_concurrent=args.workers * args.slots)
        with tempfile.TemporaryDirectory(prefix="headwater-bench-") as tmp:
            elapsed = run_jobs(url, args.jobs, Path(tmp), args.workers, args.slots)
        counts = outcome(url)
        baseline = run_baseline(args.jobs, args.workers * args.slots)
    finally:
        if not args.keep:
            drop_database(url)
    rate, floor = args.jobs / elapsed, args.jobs / baseline
    lost = args.jobs - counts.get("SUCCEEDED", 0)
    twice = max(counts["claimed twice"], counts["run twice"])
    print(f"load average after: {load_average()}")
    print(f"{args.jobs:,} jobs `true`, {args.workers} workers x {args.slots} slots, PostgreSQL")
    print(f"  headwater: {elapsed:.2f} s, {rate:.1f} jobs/s; statuses {counts}")
    print(f"  baseline (subprocess.run, {args.workers * args.slots} at a time): {baseline:.2f} s, {floor:.1f} jobs/s")
    print(f"  ratio headwater / baseline: {rate / floor:.3f}x")
    checks = [
        (f"throughput >= {GOAL_JOBS_PER_SECOND:.0f} jobs/s", rate >= GOAL_JOBS_PER_SECOND),
        ("zero lost", lost == 0),
        ("zero run twice", twice == 0),
    ]
    for label, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}: {label}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
