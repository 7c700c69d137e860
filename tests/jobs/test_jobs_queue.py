"""The queue under contention and failure: two workers claiming at once never run a job twice, and a
worker that stops heartbeating has its jobs FAILED "worker lost"; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, make_worker, shell_setup
from sqlalchemy import select

from headwater.jobs.models import Job, JobTransition

pytestmark = pytest.mark.anyio


async def test_two_workers_never_run_a_job_twice(client: httpx.AsyncClient, app: FastAPI, tmp_path: Path) -> None:
    await shell_setup(client, max_concurrent=100)
    marks = tmp_path / "marks"
    marks.mkdir()
    ids = [
        (await client.post("/api/v1/jobs", json=job_body(f'echo "$HEADWATER_JOB_ID" >> {marks}/ran'))).json()["id"]
        for _ in range(24)
    ]
    workers = [make_worker(app, tmp_path / f"w{i}", slots=4) for i in range(2)]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            workers[index].drain(timeout=60, interval=0.01)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    ran = (marks / "ran").read_text().split()
    assert sorted(ran) == sorted(ids)  # every job ran, exactly once
    with app.state.sessionmaker() as session:
        statuses = set(session.scalars(select(Job.status)))
        claims = list(session.scalars(select(JobTransition.job_pk).where(JobTransition.to_status == "CLAIMED")))
        owners = set(session.scalars(select(Job.worker_id)))
    assert statuses == {"SUCCEEDED"}
    assert len(claims) == len(set(claims)) == 24
    assert owners <= {w.worker_id for w in workers}


async def test_lost_worker_jobs_fail(client: httpx.AsyncClient, app: FastAPI, tmp_path: Path) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("sleep 30"))).json()["id"]
    dead = make_worker(app, tmp_path / "dead", heartbeat_interval=3600)
    dead.run_once()  # starts the job, then never heartbeats again
    assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "RUNNING"
    reaper = make_worker(app, tmp_path / "reaper", heartbeat_timeout=0.5)
    try:
        time.sleep(1.0)
        reaper.run_once()
        job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        assert job["status"] == "FAILED" and job["status_message"] == "worker lost"
    finally:
        dead.shutdown()
        reaper.shutdown()
    # the presumed-dead worker's late report does not overwrite the verdict
    assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "FAILED"
