"""Spark jobs on a real standalone master through the API and a worker: in cluster deploy mode the job lasts as long
as its driver on the cluster, ends as the driver did, is killed (by request or timeout) through the master, and its
driver's logs are read through the job's output; client mode against the same master still works."""

from __future__ import annotations

import asyncio
import datetime as dt
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import make_worker
from spark_cluster import StandaloneCluster

from headwater.jobs.reaper import ReaperThread
from headwater.jobs.worker import JobWorker

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.single_backend("postgres")]

DRIVER = textwrap.dedent(
    """
    import sys, time
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("headwater-cluster-test").getOrCreate()
    if sys.argv[1] == "fail":
        raise RuntimeError("the driver gave up")
    print("COUNT", spark.range(5).count(), flush=True)
    time.sleep(float(sys.argv[1]))
    print("DONE", time.time(), flush=True)
    spark.stop()
    """
)


async def _setup(client: httpx.AsyncClient, cluster: StandaloneCluster, **config: Any) -> None:
    r = await client.post(
        "/api/v1/clusters",
        json={"name": "standalone", "type": "spark", "tags": ["sched:standalone"], "config": cluster.config(**config)},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/commands", json={"name": "spark", "executable": ["spark-submit"], "tags": ["type:spark"]}
    )
    assert r.status_code == 201, r.text


async def _submit(client: httpx.AsyncClient, script: Path, *args: str, **extra: Any) -> str:
    body = {
        "name": "on-the-cluster",
        "user": "alice",
        "command_args": [str(script), *args],
        "cluster_criteria": [["sched:standalone"]],
        "command_criteria": ["type:spark"],
        **extra,
    }
    r = await client.post("/api/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def _step(worker: JobWorker) -> None:
    await asyncio.get_running_loop().run_in_executor(None, worker.run_once)


async def _until(client: httpx.AsyncClient, worker: JobWorker, job_id: str, done: Any, timeout: float = 120) -> dict:
    """Run the worker until ``done(job, execution)`` holds; the job's execution answer then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await _step(worker)
        job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        execution = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()
        if done(job, execution):
            return {**execution, "job": job}
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} never got there: {job}, {execution}")


def _final(job: dict, _: dict) -> bool:
    return job["status"] in {"SUCCEEDED", "FAILED", "KILLED"}


def _driver_running(_: dict, execution: dict) -> bool:
    return bool(execution["cluster_app"]) and execution["cluster_app"]["state"] == "RUNNING"


def _script(tmp_path: Path) -> Path:
    script = tmp_path / "driver.py"  # an absolute path: the worker that runs the driver reads it (same host here)
    script.write_text(DRIVER)
    return script


async def test_a_cluster_mode_job_runs_until_its_driver_ends_then_succeeds(
    client: httpx.AsyncClient, worker: JobWorker, spark_cluster: StandaloneCluster, tmp_path: Path
) -> None:
    await _setup(client, spark_cluster)
    job_id = await _submit(client, _script(tmp_path), "15", timeout=300)
    running = await _until(client, worker, job_id, _driver_running)
    driver_id = running["cluster_app"]["app_id"]
    assert driver_id.startswith("driver-") and running["cluster_app"]["manager"] == "spark-standalone"
    # Every time the job is read while the master says the driver runs, the job is RUNNING, not ended.
    observed: list[tuple[str, str]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        await _step(worker)
        job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        master = spark_cluster.driver(driver_id)["driverState"]
        observed.append((job["status"], master))
        if job["status"] != "RUNNING":
            break
        await asyncio.sleep(0.3)
    assert job["status"] == "SUCCEEDED", (job, observed)
    assert ("RUNNING", "RUNNING") in observed
    assert all(status == "RUNNING" for status, master in observed if master == "RUNNING"), observed
    assert spark_cluster.driver(driver_id)["driverState"] == "FINISHED"
    # The driver's own clock: it printed DONE after its sleep, before the job was recorded as ended.
    stdout = (await client.get(f"/api/v1/jobs/{job_id}/output/driver/stdout")).text
    assert "COUNT 5" in stdout
    done_at = float(stdout.split("DONE ")[1].split()[0])
    finished = dt.datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00"))
    started = dt.datetime.fromisoformat(job["started_at"].replace("Z", "+00:00"))
    assert finished.timestamp() >= done_at > started.timestamp() + 15
    execution = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()
    assert execution["cluster_app"] == {
        "manager": "spark-standalone", "app_id": driver_id, "state": "SUCCEEDED", "manager_state": "FINISHED",
    }  # fmt: skip
    status = (await client.get(f"/api/v1/jobs/{job_id}/status")).json()
    assert status["status_message"] == f"driver {driver_id} SUCCEEDED on the cluster (FINISHED)"
    query = "query($id: ID!) { job(id: $id) { ... on Job { clusterApp { manager appId state managerState } } } }"
    answer = (await client.post("/graphql", json={"query": query, "variables": {"id": job_id}})).json()
    assert answer["data"]["job"]["clusterApp"] == {
        "manager": "spark-standalone", "appId": driver_id, "state": "SUCCEEDED", "managerState": "FINISHED",
    }  # fmt: skip
    stderr = (await client.get(f"/api/v1/jobs/{job_id}/output/driver/stderr")).text
    assert "DriverWrapper" in stderr  # the driver JVM's own log, from the worker that ran it


async def test_a_driver_that_fails_on_the_cluster_fails_the_job_with_its_state(
    client: httpx.AsyncClient, worker: JobWorker, spark_cluster: StandaloneCluster, tmp_path: Path
) -> None:
    await _setup(client, spark_cluster)
    job_id = await _submit(client, _script(tmp_path), "fail", timeout=300)
    ended = await _until(client, worker, job_id, _final)
    driver_id = ended["cluster_app"]["app_id"]
    assert ended["job"]["status"] == "FAILED", ended
    assert spark_cluster.driver(driver_id)["driverState"] == "FAILED"
    status = (await client.get(f"/api/v1/jobs/{job_id}/status")).json()
    # The master says only FAILED; the exception comes from the driver's own log, fetched from its worker.
    assert status["status_message"] == f"driver {driver_id} FAILED on the cluster: RuntimeError: the driver gave up"
    stdout = (await client.get(f"/api/v1/jobs/{job_id}/output/driver/stdout")).text
    assert "Traceback" in stdout


async def test_killing_a_cluster_mode_job_kills_its_driver_on_the_master(
    client: httpx.AsyncClient, worker: JobWorker, spark_cluster: StandaloneCluster, tmp_path: Path
) -> None:
    await _setup(client, spark_cluster)
    job_id = await _submit(client, _script(tmp_path), "120", timeout=300)
    # Killed the moment its driver is recorded: spark-submit may still be running (it polls the master once, 5 s
    # after printing the id), the driver perhaps not yet started on a worker.
    submitted = await _until(client, worker, job_id, lambda _, execution: bool(execution["cluster_app"]))
    driver_id = submitted["cluster_app"]["app_id"]
    assert (await client.delete(f"/api/v1/jobs/{job_id}")).status_code == 202
    ended = await _until(client, worker, job_id, _final, timeout=60)
    assert ended["job"]["status"] == "KILLED"
    deadline = time.monotonic() + 30
    while spark_cluster.driver(driver_id)["driverState"] != "KILLED" and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert spark_cluster.driver(driver_id)["driverState"] == "KILLED"
    status = (await client.get(f"/api/v1/jobs/{job_id}/status")).json()
    assert status["status_message"].startswith("killed by request; "), status
    assert driver_id in status["status_message"]


async def test_a_cluster_mode_job_that_times_out_is_killed_through_the_master(
    client: httpx.AsyncClient, worker: JobWorker, spark_cluster: StandaloneCluster, tmp_path: Path
) -> None:
    await _setup(client, spark_cluster)
    job_id = await _submit(client, _script(tmp_path), "120", timeout=25)
    ended = await _until(client, worker, job_id, _final, timeout=90)
    driver_id = ended["cluster_app"]["app_id"]
    assert ended["job"]["status"] == "KILLED"
    deadline = time.monotonic() + 30
    while spark_cluster.driver(driver_id)["driverState"] != "KILLED" and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert spark_cluster.driver(driver_id)["driverState"] == "KILLED"
    status = (await client.get(f"/api/v1/jobs/{job_id}/status")).json()
    assert status["status_message"].startswith("timed out after 25 s; "), status


async def test_client_mode_against_the_same_master_still_runs_the_driver_here(
    client: httpx.AsyncClient, worker: JobWorker, spark_cluster: StandaloneCluster, tmp_path: Path
) -> None:
    await _setup(client, spark_cluster, deploy_mode="client")
    job_id = await _submit(client, _script(tmp_path), "0", timeout=300)
    ended = await _until(client, worker, job_id, _final)
    assert ended["job"]["status"] == "SUCCEEDED", ended
    assert ended["cluster_app"] is None
    stdout = (await client.get(f"/api/v1/jobs/{job_id}/output/stdout")).text
    assert "COUNT 5" in stdout  # the driver ran in the job's own process, its output in the job's stdout


async def test_the_reaper_kills_the_driver_of_a_job_whose_worker_was_lost(
    client: httpx.AsyncClient, app: FastAPI, spark_cluster: StandaloneCluster, tmp_path: Path
) -> None:
    await _setup(client, spark_cluster)
    job_id = await _submit(client, _script(tmp_path), "120", timeout=300, max_attempts=2)
    owner = make_worker(app, tmp_path / "owner", heartbeat_interval=0.2)
    try:
        running = await _until(client, owner, job_id, _driver_running)
        driver_id = running["cluster_app"]["app_id"]
        await asyncio.sleep(1.0)  # the owner stops heartbeating: it is lost, its supervisor still runs
        lost = ReaperThread(app.state.sessionmaker, interval=1, timeout_seconds=0.5).run_once()
        assert [(job.id, job.requeued) for job in lost] == [(job_id, True)]
        # The supervisor was killed with SIGKILL (it could not kill its driver): the reaper killed it via the master.
        deadline = time.monotonic() + 30
        while spark_cluster.driver(driver_id)["driverState"] != "KILLED" and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert spark_cluster.driver(driver_id)["driverState"] == "KILLED"
        execution = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()
        assert execution["cluster_app"] is None  # re-queued: the next attempt submits a driver of its own
        assert (await client.delete(f"/api/v1/jobs/{job_id}")).status_code == 202  # no second attempt here
    finally:
        owner.shutdown()
