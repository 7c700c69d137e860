"""A cluster's memory capacity (issue 19): a job's memory and its defaults, jobs that do not fit wait (in order),
two workers claiming at once never over-commit, and a job no cluster can hold is refused; SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, wait_for_status, wait_until, worker_thread
from sqlalchemy import func, select

from headwater.jobs import dispatch
from headwater.jobs.models import ACTIVE_STATUSES, Job
from headwater.jobs.worker import JobWorker

pytestmark = pytest.mark.anyio
FINAL = {"SUCCEEDED", "FAILED", "KILLED", "INVALID"}


async def _setup(client: httpx.AsyncClient, *, command: dict[str, Any] | None = None, **cluster: Any) -> None:
    body = {"name": "mem", "type": "shell", "tags": ["sched:test"], **cluster}
    r = await client.post("/api/v1/clusters", json=body)
    assert r.status_code == 201, r.text
    body = {"name": "sh", "executable": ["/bin/sh", "-c"], "tags": ["type:sh"], **(command or {})}
    r = await client.post("/api/v1/commands", json=body)
    assert r.status_code == 201, r.text


async def _submit(client: httpx.AsyncClient, script: str, **extra: Any) -> dict[str, Any]:
    r = await client.post("/api/v1/jobs", json=job_body(script, **extra))
    assert r.status_code == 202, r.text
    return dict(r.json())


async def test_a_jobs_memory_comes_from_the_request_then_the_command_then_the_cluster(
    client: httpx.AsyncClient, worker: JobWorker
) -> None:
    await _setup(client, max_memory_mb=4000, default_job_memory_mb=300, command={"memory_mb": 500})
    told = (await _submit(client, 'echo "$HEADWATER_JOB_MEMORY_MB"', memory_mb=700))["id"]
    worker.drain(timeout=20)
    assert (await client.get(f"/api/v1/jobs/{told}/output/stdout")).text == "700\n"
    r = await client.post("/api/v1/commands", json={"name": "plain", "executable": ["true"], "tags": ["type:plain"]})
    assert r.status_code == 201 and r.json()["memory_mb"] is None
    assert (await _submit(client, "true", memory_mb=100))["memory_mb"] == 100
    assert (await _submit(client, "true"))["memory_mb"] == 500
    assert (await _submit(client, "true", command_criteria=["type:plain"]))["memory_mb"] == 300
    cluster = (await client.get("/api/v1/clusters/mem")).json()
    assert (cluster["max_memory_mb"], cluster["default_job_memory_mb"]) == (4000, 300)
    never = await client.patch("/api/v1/clusters/mem", json={"max_memory_mb": 200})
    assert never.status_code == 400 and "default_job_memory_mb 300 exceeds" in never.json()["error"]["message"]
    unlimited = await client.patch("/api/v1/clusters/mem", json={"max_memory_mb": None})
    assert unlimited.status_code == 200 and unlimited.json()["max_memory_mb"] is None


async def test_a_job_that_does_not_fit_waits_and_so_do_the_jobs_behind_it(
    client: httpx.AsyncClient, worker: JobWorker
) -> None:
    await _setup(client, max_memory_mb=1000)
    running = (await _submit(client, "sleep 30", memory_mb=600))["id"]
    large = (await _submit(client, "true", memory_mb=600))["id"]
    small = (await _submit(client, "true", memory_mb=100))["id"]
    wait_until(lambda: len(worker.running) == 1, worker)
    worker.run_once()
    statuses = [(await client.get(f"/api/v1/jobs/{i}")).json()["status"] for i in (running, large, small)]
    assert statuses == ["RUNNING", "RESOLVED", "RESOLVED"]  # the small one does not overtake the large one
    assert (await client.delete(f"/api/v1/jobs/{running}")).status_code == 202
    worker.drain(timeout=20)
    assert [(await client.get(f"/api/v1/jobs/{i}")).json()["status"] for i in (running, large, small)] == [
        "KILLED", "SUCCEEDED", "SUCCEEDED",
    ]  # fmt: skip


async def test_a_full_clusters_backlog_does_not_hold_back_an_idle_cluster(
    client: httpx.AsyncClient, worker: JobWorker
) -> None:
    await _setup(client, max_concurrent_jobs=1)
    idle = {"name": "idle", "type": "shell", "tags": ["sched:idle"]}
    assert (await client.post("/api/v1/clusters", json=idle)).status_code == 201
    await _submit(client, "sleep 30")
    wait_until(lambda: len(worker.running) == 1, worker)
    for _ in range(20):  # more than one claim reads (4 per slot) of the oldest jobs overall
        await _submit(client, "true")
    behind = [(await _submit(client, "true", cluster_criteria=[["sched:idle"]]))["id"] for _ in range(2)]
    worker.run_once()
    worker.run_once()
    for job_id in behind:
        assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] in {"RUNNING", "SUCCEEDED"}


async def test_two_workers_claiming_at_once_never_overcommit_memory(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await _setup(client, max_memory_mb=1000, max_concurrent_jobs=50)
    marks = tmp_path / "marks"
    # Each job notes when it starts and ends (appends of one short line are atomic).
    script = f'echo "$(date +%s.%N) 1" >> {marks}; sleep 0.3; echo "$(date +%s.%N) -1" >> {marks}'
    ids = [(await _submit(client, script, memory_mb=400))["id"] for _ in range(10)]
    committed: list[tuple[int, int]] = []  # (jobs held, their memory), sampled from the database
    stop = threading.Event()

    def sample() -> None:
        statuses = [s.value for s in ACTIVE_STATUSES]
        while not stop.is_set():
            with app.state.sessionmaker() as session:
                held, memory = session.execute(
                    select(func.count(), func.coalesce(func.sum(Job.memory_mb), 0)).where(Job.status.in_(statuses))
                ).one()
            committed.append((held, int(memory)))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with worker_thread(app, tmp_path / "a", slots=4), worker_thread(app, tmp_path / "b", slots=4):
            for job_id in ids:
                assert (await wait_for_status(client, job_id, FINAL, timeout=60))["status"] == "SUCCEEDED"
    finally:
        stop.set()
        sampler.join()
    assert committed and max(memory for _, memory in committed) <= 1000
    assert max(held for held, _ in committed) == 2  # full use: two at a time, never three
    level, peak = 0, 0
    for _, step in sorted(line.split() for line in marks.read_text().splitlines()):
        level += int(step)
        peak = max(peak, level)
    assert peak == 2
    with app.state.sessionmaker() as session:
        owners = set(session.scalars(select(Job.worker_id)))
    assert len(owners) == 2  # both workers claimed


async def test_a_claim_racing_another_waits_for_it_and_counts_its_memory(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    # The race made certain: the first claim holds its transaction open while the second starts. The second has
    # more slots, so it finds queued jobs the first has not locked as candidates.
    await _setup(client, max_memory_mb=1000)
    for _ in range(6):
        await _submit(client, "true", memory_mb=400)
    factory = app.state.sessionmaker
    first = factory()
    assert len(dispatch.claim_jobs(first, worker_id="first", slots=2)) == 2  # 800 MB, not committed yet
    second: list[int] = []

    def claim() -> None:
        with factory() as session:
            second.extend(job.pk for job in dispatch.claim_jobs(session, worker_id="second", slots=4))
            session.commit()

    thread = threading.Thread(target=claim)
    thread.start()
    thread.join(0.5)
    try:
        # It waits: on the cluster's row lock (PostgreSQL) or the write lock (SQLite).
        assert thread.is_alive()
    finally:
        first.commit()
        first.close()
        thread.join(30)
    assert second == []  # it saw the 800 MB committed: 400 more would not fit
    with factory() as session:
        claimed = session.scalar(select(func.sum(Job.memory_mb)).where(Job.status == "CLAIMED"))
    assert claimed == 800


async def test_a_job_larger_than_every_matching_cluster_is_refused(client: httpx.AsyncClient) -> None:
    await _setup(client, max_memory_mb=1000)
    r = await client.post("/api/v1/jobs", json=job_body("true", memory_mb=2000))
    assert r.status_code == 400
    error = r.json()["error"]
    assert "needs 2000 MB" in error["message"] and "'mem' holds 1000 MB" in error["message"]
    assert "at most 1000 MB with memory_mb" in error["message"]
    assert (await client.get("/api/v1/jobs")).json()["total"] == 0  # nothing queued
    # a later criterion whose cluster is large enough wins instead
    big = {"name": "big", "type": "shell", "tags": ["size:big"], "max_memory_mb": 4000}
    assert (await client.post("/api/v1/clusters", json=big)).status_code == 201
    job = await _submit(client, "true", memory_mb=2000, cluster_criteria=[["sched:test"], ["size:big"]])
    assert job["status"] == "RESOLVED" and job["cluster"] == "big"


async def test_a_queued_job_its_shrunk_cluster_can_no_longer_hold_fails_at_claim(
    client: httpx.AsyncClient, worker: JobWorker
) -> None:
    await _setup(client, max_memory_mb=1000)
    stranded = (await _submit(client, "true", memory_mb=800))["id"]
    after = (await _submit(client, "true", memory_mb=100))["id"]
    assert (await client.patch("/api/v1/clusters/mem", json={"max_memory_mb": 500})).status_code == 200
    worker.drain(timeout=20)
    job = (await client.get(f"/api/v1/jobs/{stranded}")).json()
    assert job["status"] == "FAILED" and job["status_message"] == (
        "it needs 800 MB; cluster 'mem' now holds at most 500 MB"
    )
    assert (await client.get(f"/api/v1/jobs/{after}")).json()["status"] == "SUCCEEDED"
