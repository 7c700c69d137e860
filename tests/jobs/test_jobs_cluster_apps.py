"""The worker's side of jobs on cluster managers, without a cluster: the application record a job's supervisor
writes is recorded on the job as soon as it appears (the reaper needs the id to kill the application of a lost
job), not at the next heartbeat; and every later change of state reaches the job too."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, make_worker, shell_setup

from headwater.jobs.drivers import APP_RECORD

pytestmark = pytest.mark.anyio

# The job plays its own supervisor: it writes the record a supervisor writes (atomically), then a state change.
RECORD = {"manager": "spark-standalone", "app_id": "driver-20261206080000-0007", "config": {"master": "spark://m:7077"},
          "state": "SUBMITTED", "raw": "SUBMITTED", "detail": "", "exit_code": None, "where": "", "logs": []}  # fmt: skip


def _script() -> str:
    first = json.dumps(RECORD)
    running = json.dumps({**RECORD, "state": "RUNNING", "raw": "RUNNING"})
    return (
        f"sleep 0.5; printf '%s' '{first}' > .r && mv .r {APP_RECORD}; sleep 1.5; "
        f"printf '%s' '{running}' > .r && mv .r {APP_RECORD}; sleep 30"
    )


async def test_a_new_application_id_is_recorded_at_once_not_at_the_next_heartbeat(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: object
) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body(_script()))).json()["id"]
    # A heartbeat every 60 s: only the record's appearance can make the worker write it sooner.
    worker = make_worker(app, tmp_path / "data", heartbeat_interval=60.0, heartbeat_timeout=300.0)  # type: ignore[operator]
    try:
        seen: list[tuple[float, dict | None]] = []
        started = time.monotonic()
        while time.monotonic() - started < 15:
            worker.run_once()
            app_now = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()["cluster_app"]
            seen.append((time.monotonic() - started, app_now))
            if app_now and app_now["state"] == "RUNNING":
                break
            time.sleep(0.1)
        recorded = [at for at, found in seen if found]
        assert recorded and recorded[0] < 5, seen  # the job started, then 0.5 s: well before a 60 s heartbeat
        assert seen[-1][1] == {
            "manager": "spark-standalone", "app_id": RECORD["app_id"], "state": "RUNNING", "manager_state": "RUNNING",
        }  # fmt: skip
        assert (await client.delete(f"/api/v1/jobs/{job_id}")).status_code == 202
        worker.drain(timeout=30)
    finally:
        worker.shutdown()
