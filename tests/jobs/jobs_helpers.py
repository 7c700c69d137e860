"""Helpers of the jobs tests: a worker on the app's database, a shell cluster and command, job bodies."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
from fastapi import FastAPI

from headwater.jobs.worker import JobWorker, WorkerThread


def make_worker(app: FastAPI, data_dir: Path, **options: Any) -> JobWorker:
    """A worker on the app's database, with short intervals for tests."""
    settings: dict[str, Any] = {"slots": 4, "heartbeat_interval": 0.2, "heartbeat_timeout": 30.0, "kill_grace": 2.0}
    settings.update(options)
    return JobWorker(app.state.sessionmaker, data_dir=data_dir, **settings)


async def shell_setup(client: httpx.AsyncClient, *, max_concurrent: int = 8) -> None:
    """A shell cluster tagged sched:test and an sh command tagged type:sh."""
    r = await client.post(
        "/api/v1/clusters",
        json={
            "name": "local",
            "type": "shell",
            "tags": ["sched:test", "env:dev"],
            "max_concurrent_jobs": max_concurrent,
        },
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/commands", json={"name": "sh", "executable": ["/bin/sh", "-c"], "tags": ["type:sh"]})
    assert r.status_code == 201, r.text


async def spark_setup(client: httpx.AsyncClient) -> None:
    """A Spark cluster (local[1]) tagged sched:spark and a spark-submit command tagged type:spark."""
    await client.post(
        "/api/v1/clusters",
        json={"name": "spark-local", "type": "spark", "tags": ["sched:spark"], "config": {"master": "local[1]"}},
    )
    await client.post(
        "/api/v1/commands", json={"name": "spark", "executable": ["spark-submit"], "tags": ["type:spark"]}
    )


def job_body(script: str, **extra: Any) -> dict[str, Any]:
    """A job request running ``script`` with /bin/sh -c."""
    return {
        "name": "test-job",
        "user": "alice",
        "command_args": [script],
        "cluster_criteria": [["sched:test"]],
        "command_criteria": ["type:sh"],
        **extra,
    }


def wait_until(condition: Callable[[], bool], worker: JobWorker, timeout: float = 20.0) -> None:
    """Run the worker's loop until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.run_once()
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@contextmanager
def worker_thread(app: FastAPI, data_dir: Path, *, interval: float = 0.05, **options: Any) -> Iterator[JobWorker]:
    """A worker looping in a background thread (as the server runs it) until the block ends."""
    job_worker = make_worker(app, data_dir, poll_interval=interval, **options)
    thread = WorkerThread(job_worker, interval=interval)
    thread.start()
    try:
        yield job_worker
    finally:
        thread.stop()


async def wait_for_status(
    client: httpx.AsyncClient, job_id: str, statuses: set[str], timeout: float = 30.0
) -> dict[str, Any]:
    """Poll the API until the job reaches one of ``statuses``; its JSON."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is {job['status']}, not in {sorted(statuses)}, after {timeout} s")
        await anyio.sleep(0.05)


@contextmanager
def changed_settings(app: FastAPI, **updates: Any) -> Iterator[None]:
    """The app reads ``updates`` in its settings (per request: job file access, not what it built at start)."""
    saved = app.state.settings
    app.state.settings = saved.model_copy(update=updates)
    try:
        yield
    finally:
        app.state.settings = saved


def relay_timeout(app: FastAPI, seconds: float) -> contextlib.AbstractContextManager[None]:
    """The app waits ``seconds`` for another host's worker to answer for a job's files, until the block ends."""
    return changed_settings(app, jobs_remote_files_timeout=seconds)
