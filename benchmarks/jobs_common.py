"""Shared set-up of the jobs benchmarks: a fresh PostgreSQL database, a shell cluster with the command
``true``, real ``headwater worker`` (and ``headwater serve``) processes, and reading the results back."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import _postgres
import httpx
from sqlalchemy import func, select

from headwater.db import create_db_engine, make_sessionmaker, session_scope
from headwater.jobs import service
from headwater.jobs.models import Job, JobAttempt, JobTransition
from headwater.jobs.schemas import ClusterCreate, CommandCreate

HEADWATER = [sys.executable, "-m", "headwater.cli"]


def fresh_database(label: str) -> str:
    """A new, migrated PostgreSQL database with a unique name; its URL."""
    return _postgres.fresh_database(f"headwater_bench_{label}_{uuid.uuid4().hex[:8]}")


def register_true(url: str, *, max_concurrent: int) -> None:
    """A shell cluster tagged ``bench`` and the command ``true`` tagged ``type:true``."""
    engine = create_db_engine(url)
    with session_scope(make_sessionmaker(engine)) as session:
        service.create_cluster(
            session,
            data=ClusterCreate(name="bench", type="shell", tags=["bench"], max_concurrent_jobs=max_concurrent),
        )
        service.create_command(session, data=CommandCreate(name="true", executable=["true"], tags=["type:true"]))
    engine.dispose()


def job_request(index: int) -> dict[str, object]:
    """The JSON of one trivial job."""
    return {
        "name": f"bench-{index}",
        "user": "bench",
        "cluster_criteria": [["bench"]],
        "command_criteria": ["type:true"],
    }


def environment(url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a Headwater process on ``url``."""
    return {
        **os.environ,
        "HEADWATER_DATABASE_URL": url,
        "HEADWATER_DATA_DIR": str(data_dir),
        "HEADWATER_LOG_LEVEL": "warning",
        "HEADWATER_JOBS_WORKER_ENABLED": "false",
        "HEADWATER_JOBS_RETENTION_DAYS": "0",
        "HEADWATER_RATE_LIMIT_PER_SECOND": "0",  # one client sending as fast as it can, on purpose
        **extra,
    }


@contextmanager
def workers(url: str, base: Path, count: int, slots: int, **extra: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` real ``headwater worker`` processes, ready (their banner printed) when the block starts."""
    processes = []
    try:
        for index in range(count):
            process = subprocess.Popen(
                [*HEADWATER, "worker", "--slots", str(slots)],
                env=environment(url, base / f"worker-{index}", **extra),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            processes.append(process)
        for process in processes:
            assert process.stdout is not None
            line = process.stdout.readline().decode()
            if "Job worker" not in line:
                raise RuntimeError(f"worker did not start: {line}{process.stdout.read().decode()[-2000:]}")
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            _reap(process)


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Wait for a terminated process (killing it after 30 s) and close its pipes."""
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(url: str, base: Path, name: str = "server", **extra: str) -> Iterator[str]:
    """A real ``headwater serve`` on loopback (``extra``: more settings); its base URL once /readyz answers."""
    port = free_port()
    process = subprocess.Popen(
        [*HEADWATER, "serve", "--port", str(port)],
        env=environment(url, base / name, HEADWATER_SEARCH_INDEXER_ENABLED="false", **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        _reap(process)


def outcome(url: str) -> dict[str, int]:
    """Jobs by status, and the evidence of a job run twice (a second claim or attempt)."""
    engine = create_db_engine(url)
    with session_scope(make_sessionmaker(engine)) as session:
        statuses = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).tuples().all())
        claims = session.scalar(
            select(func.count()).select_from(
                select(JobTransition.job_pk)
                .where(JobTransition.to_status == "CLAIMED")
                .group_by(JobTransition.job_pk)
                .having(func.count() > 1)
                .subquery()
            )
        )
        attempts = session.scalar(
            select(func.count()).select_from(
                select(JobAttempt.job_pk).group_by(JobAttempt.job_pk).having(func.count() > 1).subquery()
            )
        )
    engine.dispose()
    return {**statuses, "claimed twice": claims or 0, "run twice": attempts or 0}


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def load_average() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def median(values: list[float]) -> float:
    """The median."""
    return statistics.median(values)
