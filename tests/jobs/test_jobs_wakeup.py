"""An idle worker wakes at once when a job is queued (PostgreSQL LISTEN/NOTIFY) or one of its processes
exits (pidfd), instead of waiting out its poll interval; SQLite workers poll."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, make_worker, shell_setup

from headwater.db import session_scope
from headwater.jobs import access, service
from headwater.jobs.schemas import JobSubmit

pytestmark = pytest.mark.anyio


async def test_idle_worker_wakes_when_a_job_is_queued(client: httpx.AsyncClient, app: FastAPI, tmp_path: Path) -> None:
    await shell_setup(client)
    postgres = app.state.engine.dialect.name == "postgresql"
    worker = make_worker(app, tmp_path / "data", poll_interval=5.0)

    def submit() -> None:
        with session_scope(app.state.sessionmaker) as session:
            service.submit_job(
                session, data=JobSubmit.model_validate(job_body("true")), submitter=access.trusted_submitter("t")
            )

    try:
        worker.run_once()
        worker.wait_for_work(0.01)  # starts listening
        timeout = 5.0 if postgres else 1.0
        threading.Timer(0.3, submit).start()
        began = time.monotonic()
        worker.wait_for_work(timeout)
        waited = time.monotonic() - began
        if postgres:
            assert 0.25 <= waited < 2.0, waited  # woken by the NOTIFY of the submission's commit
        else:
            assert waited >= timeout * 0.95  # no notifications on SQLite: the poll interval passes
    finally:
        worker.shutdown()


async def test_worker_wakes_when_its_process_exits(client: httpx.AsyncClient, app: FastAPI, tmp_path: Path) -> None:
    await shell_setup(client)
    worker = make_worker(app, tmp_path / "data", poll_interval=5.0, listen=False)
    job_id = (await client.post("/api/v1/jobs", json=job_body("sleep 0.3"))).json()["id"]
    try:
        worker.run_once()
        assert len(worker.running) == 1
        began = time.monotonic()
        worker.wait_for_work(5.0)
        assert time.monotonic() - began < 2.0
        worker.run_once()
        assert not worker.running
    finally:
        worker.shutdown()
    assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "SUCCEEDED"
