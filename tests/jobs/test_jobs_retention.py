"""Retention: finished jobs' directories are removed by the worker's housekeeping, logs archived as a
tarball first when the job asked; running jobs and other workers' directories are left alone."""

from __future__ import annotations

import datetime as dt
import io
import tarfile
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, make_worker, shell_setup, wait_until

from headwater.jobs.worker import JobWorker

pytestmark = pytest.mark.anyio


async def test_expired_job_directories_are_removed_and_logs_archived(
    client: httpx.AsyncClient, app: FastAPI, worker: JobWorker, tmp_path: Path
) -> None:
    await shell_setup(client)
    kept = (await client.post("/api/v1/jobs", json=job_body("echo out; echo err >&2", archive_logs=True))).json()
    plain = (await client.post("/api/v1/jobs", json=job_body("echo plain; echo x > result.txt"))).json()
    worker.drain(timeout=20)
    other = make_worker(app, tmp_path / "other-data", retention=dt.timedelta(0))
    running = (await client.post("/api/v1/jobs", json=job_body("sleep 30"))).json()
    try:
        other.run_once()  # runs the sleeper; its housekeeping must not touch the first worker's directories
        assert other.clean_expired() == []
        assert (worker.jobs_dir / kept["id"]).is_dir()

        assert worker.clean_expired() == []  # no retention configured: nothing is removed
        worker.retention = dt.timedelta(hours=1)
        assert worker.clean_expired() == []  # not old enough yet
        worker.retention = dt.timedelta(0)
        assert sorted(worker.clean_expired()) == sorted([kept["id"], plain["id"]])
        assert worker.clean_expired() == []  # idempotent
    finally:
        other.shutdown()
    assert not (worker.jobs_dir / kept["id"]).exists() and not (worker.jobs_dir / plain["id"]).exists()

    execution = (await client.get(f"/api/v1/jobs/{kept['id']}/execution")).json()
    assert execution["cleaned_at"] and execution["archive_path"] == str(worker.archive_dir / f"{kept['id']}.tar.gz")
    listing = await client.get(f"/api/v1/jobs/{kept['id']}/output")
    assert listing.status_code == 404 and "retention period" in listing.json()["error"]["message"]
    assert "archived to" in listing.json()["error"]["message"]
    archive = await client.get(f"/api/v1/jobs/{kept['id']}/logs-archive")
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        names = sorted(tar.getnames())
        assert names == [f"{kept['id']}/stderr", f"{kept['id']}/stdout"]
        member = tar.extractfile(f"{kept['id']}/stdout")
        assert member is not None and member.read() == b"out\n"
    no_archive = await client.get(f"/api/v1/jobs/{plain['id']}/logs-archive")
    assert no_archive.status_code == 404 and "archive_logs" in no_archive.json()["error"]["message"]
    gone_log = await client.get(f"/api/v1/jobs/{plain['id']}/logs/stdout")
    assert gone_log.status_code == 404 and "retention" in gone_log.json()["error"]["message"]
    assert (await client.get(f"/api/v1/jobs/{running['id']}")).json()["status"] == "KILLED"  # by other.shutdown


async def test_housekeeping_runs_in_the_worker_loop(client: httpx.AsyncClient, app: FastAPI, tmp_path: Path) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("echo hi", archive_logs=True))).json()["id"]
    looping = make_worker(app, tmp_path / "data", retention=dt.timedelta(0), retention_interval=0.0)
    try:
        wait_until(lambda: (looping.archive_dir / f"{job_id}.tar.gz").exists(), looping)
    finally:
        looping.shutdown()
    assert not (looping.jobs_dir / job_id).exists()
    assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "SUCCEEDED"
