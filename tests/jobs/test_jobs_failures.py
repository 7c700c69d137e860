"""Workers that die: a real ``headwater worker`` process killed with SIGKILL while its jobs run, and jobs
that asked for retries re-queued instead of failed, each attempt recorded; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, make_worker, shell_setup, wait_for_status
from test_jobs_api import _gone

pytestmark = pytest.mark.anyio

# The first attempt blocks; a later one prints and succeeds.
RETRYABLE = 'echo "attempt $HEADWATER_JOB_ATTEMPT"; [ "$HEADWATER_JOB_ATTEMPT" = 1 ] && sleep 60; echo done'


async def _execution(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    execution: dict[str, Any] = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()
    return execution


async def test_sigkilled_worker_process_leaves_no_job_stuck(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await shell_setup(client)
    final_id = (await client.post("/api/v1/jobs", json=job_body("sleep 60 & wait"))).json()["id"]
    retried_id = (await client.post("/api/v1/jobs", json=job_body(RETRYABLE, max_attempts=2))).json()["id"]
    env = {
        **os.environ,
        "HEADWATER_DATABASE_URL": app.state.settings.database_url,
        "HEADWATER_DATA_DIR": str(tmp_path / "doomed"),
        "HEADWATER_JOBS_HEARTBEAT_INTERVAL": "0.2",
        "HEADWATER_JOBS_POLL_INTERVAL": "0.1",
        "HEADWATER_LOG_LEVEL": "warning",
    }
    doomed = subprocess.Popen(
        [sys.executable, "-m", "headwater.cli", "worker", "--slots", "4"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    pids: list[int] = []
    try:
        for job_id in (final_id, retried_id):
            await wait_for_status(client, job_id, {"RUNNING"}, timeout=60)
            execution = await _execution(client, job_id)
            assert execution["worker_id"].split(":")[1] == str(doomed.pid)
            pids.append(execution["pid"])
        assert not any(_gone(pid) for pid in pids)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
        assert doomed.stdout is not None
        doomed.stdout.close()
    # The dead worker's job processes are orphans still running; nothing has changed in the database yet.
    assert (await client.get(f"/api/v1/jobs/{final_id}")).json()["status"] == "RUNNING"

    survivor = make_worker(app, tmp_path / "survivor", heartbeat_timeout=1.0)
    try:
        await anyio.sleep(1.3)  # past the heartbeat timeout
        survivor.run_once()
        final = (await client.get(f"/api/v1/jobs/{final_id}")).json()
        assert final["status"] == "FAILED" and final["status_message"] == "worker lost"
        retried = (await client.get(f"/api/v1/jobs/{retried_id}/status")).json()
        assert retried["status"] in {"RESOLVED", "CLAIMED", "INIT", "RUNNING"}
        requeue = [t for t in retried["transitions"] if t["reason"] and "re-queued" in t["reason"]]
        assert requeue[0]["reason"] == "worker lost; re-queued for attempt 2 of 2"
        # The orphaned process groups on this host were ended, so the retry never runs beside its first try.
        deadline = time.monotonic() + 10
        while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        assert all(_gone(pid) for pid in pids)
        survivor.drain(timeout=30)
    finally:
        survivor.shutdown()
    retried = (await client.get(f"/api/v1/jobs/{retried_id}")).json()
    assert retried["status"] == "SUCCEEDED" and retried["attempt"] == 2 and retried["max_attempts"] == 2
    assert (await client.get(f"/api/v1/jobs/{retried_id}/output/stdout")).text == "attempt 2\ndone\n"
    attempts = (await _execution(client, retried_id))["attempts"]
    assert [(a["attempt"], a["outcome"], a["reason"]) for a in attempts] == [
        (1, "FAILED", "worker lost"),
        (2, "SUCCEEDED", "exit code 0"),
    ]
    assert attempts[0]["pid"] == pids[1] and attempts[1]["worker_id"] == survivor.worker_id
    assert (await _execution(client, final_id))["attempts"][0]["outcome"] == "FAILED"


async def test_retry_on_the_same_host_keeps_the_earlier_attempts_logs(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body(RETRYABLE, max_attempts=3))).json()["id"]
    stalled = make_worker(app, tmp_path / "shared", heartbeat_interval=3600)
    stalled.run_once()  # starts the job, then never heartbeats again
    stdout = stalled.jobs_dir / job_id / "stdout"
    deadline = time.monotonic() + 10
    while not stdout.read_text() and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    second = make_worker(app, tmp_path / "shared", heartbeat_timeout=0.5)
    try:
        await anyio.sleep(0.8)
        second.drain(timeout=30)
    finally:
        second.shutdown()
        stalled.shutdown()
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "SUCCEEDED" and job["attempt"] == 2, job
    assert (await client.get(f"/api/v1/jobs/{job_id}/output/attempts/1/stdout")).text == "attempt 1\n"
    assert (await client.get(f"/api/v1/jobs/{job_id}/output/stdout")).text == "attempt 2\ndone\n"
    # the stalled worker's late report changed nothing
    attempts = (await _execution(client, job_id))["attempts"]
    assert [a["outcome"] for a in attempts] == ["FAILED", "SUCCEEDED"]


async def test_a_job_being_killed_is_not_retried(client: httpx.AsyncClient, app: FastAPI, tmp_path: Path) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("sleep 60", max_attempts=3))).json()["id"]
    stalled = make_worker(app, tmp_path / "a", heartbeat_interval=3600)
    stalled.run_once()
    await client.delete(f"/api/v1/jobs/{job_id}")  # flagged; the stalled worker never acts on it
    reaper = make_worker(app, tmp_path / "b", heartbeat_timeout=0.5)
    try:
        await anyio.sleep(0.8)
        reaper.run_once()
        job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        assert job["status"] == "KILLED" and "worker lost" in job["status_message"]
    finally:
        reaper.shutdown()
        stalled.shutdown()
    assert (await client.post("/api/v1/jobs", json=job_body("true", max_attempts=11))).status_code == 422
