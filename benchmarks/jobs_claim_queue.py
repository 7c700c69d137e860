"""Benchmark of one claim with a deep queue (issue 19): what reading each cluster's queue head costs, and that an
idle cluster's jobs are claimed behind a full cluster's backlog.

Per database and queue depth: a cluster ``full`` (one slot, taken by a RUNNING job) with ``depth`` RESOLVED jobs,
and a cluster ``idle`` with ``--idle`` RESOLVED jobs queued after them. Times ``claim_jobs(slots=4)`` (rolled back
each time, so every call sees the same queue) and prints its p50 and how many jobs it claimed. With ``--idle 0``
it measures the read alone (nothing claimable).

Run from the repository root (PostgreSQL at 127.0.0.1:5432, or HEADWATER_BENCH_POSTGRES_URL)::

    .venv/bin/python benchmarks/jobs_claim_queue.py [--idle 0] [--depths 100,5000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from _postgres import drop_database, fresh_database
from sqlalchemy.orm import Session, sessionmaker

from headwater import migrations
from headwater.db import create_db_engine, make_sessionmaker, utcnow
from headwater.jobs import dispatch
from headwater.jobs.models import Cluster, Job

CALLS = 60


def _cluster(name: str, limit: int) -> Cluster:
    now = utcnow()
    return Cluster(name=name, type="shell", status="UP", tags=[], config={}, max_concurrent_jobs=limit, groups=[],
                   created_at=now, updated_at=now)  # fmt: skip


def _job(index: int, cluster: Cluster, status: str) -> Job:
    now = utcnow()
    return Job(id=f"j{index}", run_uuid=str(uuid.uuid4()), name="bench", user_name="bench", status=status,
               request={}, cluster_id=cluster.id, cluster_name=cluster.name, created_at=now, updated_at=now)  # fmt: skip


def _fill(factory: sessionmaker[Session], depth: int, idle: int) -> None:
    with factory() as session:
        full, spare = _cluster("full", 1), _cluster("idle", 8)
        session.add_all([full, spare])
        session.flush()
        session.add(_job(0, full, "RUNNING"))
        session.add_all(_job(i, full, "RESOLVED") for i in range(1, depth + 1))
        session.add_all(_job(depth + i, spare, "RESOLVED") for i in range(1, idle + 1))
        session.commit()


def measure(url: str, depth: int, idle: int) -> tuple[float, int]:
    """p50 of claim_jobs in ms, and how many jobs one call claimed."""
    engine = create_db_engine(url)
    try:
        factory = make_sessionmaker(engine)
        _fill(factory, depth, idle)
        times: list[float] = []
        claimed = 0
        for _ in range(CALLS):
            with factory() as session:
                started = time.perf_counter()
                claimed = len(dispatch.claim_jobs(session, worker_id="bench", slots=4))
                times.append(time.perf_counter() - started)
                session.rollback()
        return statistics.median(times) * 1000, claimed
    finally:
        engine.dispose()


def main() -> None:
    """Print the p50 per database and depth."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle", type=int, default=3, help="jobs queued on the idle cluster")
    parser.add_argument("--depths", default="100,5000", help="comma-separated queue depths of the full cluster")
    args = parser.parse_args()
    for depth in (int(d) for d in args.depths.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'claim.db'}"
            migrations.upgrade(url)
            p50, claimed = measure(url, depth, args.idle)
            print(f"sqlite     depth {depth:>6}: claim p50 {p50:6.2f} ms, claimed {claimed} of {args.idle} idle")
        url = fresh_database(f"headwater_bench_claim_{uuid.uuid4().hex[:8]}")
        try:
            p50, claimed = measure(url, depth, args.idle)
            print(f"postgresql depth {depth:>6}: claim p50 {p50:6.2f} ms, claimed {claimed} of {args.idle} idle")
        finally:
            drop_database(url)


if __name__ == "__main__":
    main()
