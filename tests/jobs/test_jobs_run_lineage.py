"""A job that fails or is killed leaves its lineage run: FAIL or ABORT, with the datasets it declared and the
reason in the ``errorMessage`` facet, as a scheduler's OpenLineage integration reports a failed task. Shell jobs
of a nightly load stand in for any engine: the worker records the run whatever ran."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from jobs_helpers import job_body, shell_setup, wait_until

from headwater.jobs.worker import JobWorker

pytestmark = pytest.mark.anyio

HIVE = "hive://metastore.prod:9083"
IO = {
    "inputs": [{"namespace": HIVE, "name": "raw.payments"}],
    "outputs": [{"namespace": HIVE, "name": "finance.daily_settlements"}],
}


async def _run_of(client: httpx.AsyncClient, job: dict[str, Any]) -> dict[str, Any]:
    answer = await client.get(f"/api/v1/lineage/runs/{job['run_id']}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def _events_of(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    items = (await client.get("/api/v1/lineage/events", params={"limit": 1000})).json()["items"]
    return [item["event"] for item in items if item["run_id"] == run_id]


async def test_a_failed_job_records_a_failed_run_with_its_datasets_and_reason(
    client: httpx.AsyncClient, worker: JobWorker
) -> None:
    await shell_setup(client)
    body = job_body("echo loading; echo 'settlement file missing' >&2; exit 3", name="settle-payments", **IO)
    job_id = (await client.post("/api/v1/jobs", json=body)).json()["id"]
    worker.drain(timeout=30)
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "FAILED" and job["status_message"].startswith("exit code 3")
    run = await _run_of(client, job)
    assert run["state"] == "FAIL" and run["job_name"] == "settle-payments" and run["ended_at"]
    (end,) = [e for e in await _events_of(client, job["run_id"]) if e.get("eventType") == "FAIL"]
    assert end["run"]["facets"]["errorMessage"]["message"].startswith("exit code 3")
    assert [o["name"] for o in end["outputs"]] == ["finance.daily_settlements"]
    # The datasets it declared are in the catalog, linked through the job, as for a run that succeeded.
    graph = await client.get(
        "/api/v1/lineage/graph",
        params={"namespace": HIVE, "name": "finance.daily_settlements", "direction": "upstream"},
    )
    assert graph.status_code == 200, graph.text
    assert "raw.payments" in {n["name"] for n in graph.json()["nodes"]}


async def test_a_killed_job_records_an_aborted_run(client: httpx.AsyncClient, worker: JobWorker) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("echo started > started; sleep 60", **IO))).json()["id"]
    started = worker.jobs_dir / job_id / "started"
    wait_until(started.exists, worker)
    assert (await client.delete(f"/api/v1/jobs/{job_id}")).status_code == 202
    worker.drain(timeout=30)
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "KILLED"
    run = await _run_of(client, job)
    assert run["state"] == "ABORT"
    (end,) = [e for e in await _events_of(client, job["run_id"]) if e.get("eventType") == "ABORT"]
    assert "errorMessage" in end["run"]["facets"]


async def test_a_job_killed_before_it_ran_records_no_run(client: httpx.AsyncClient, worker: JobWorker) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("true", **IO))).json()["id"]
    assert (await client.delete(f"/api/v1/jobs/{job_id}")).status_code == 202
    worker.drain(timeout=10)
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "KILLED"
    assert (await client.get(f"/api/v1/lineage/runs/{job['run_id']}")).status_code == 404
