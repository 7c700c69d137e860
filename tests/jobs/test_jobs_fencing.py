"""Jobs never run twice (issue 14, finding 7): fencing of claims with epochs, self-fencing of a worker cut off from
the database, expiry judged by the database's clock, the server's own reaper, and jobs recorded from their exit
status when their worker died after they ended (docs/adr/0001-job-fencing.md).

The outage is real: workers reach PostgreSQL through a TCP proxy (``db_proxy``) that the test cuts and restores.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from db_proxy import DbProxy
from double_runs import MARKING, ran_twice
from fastapi import FastAPI
from jobs_helpers import job_body, make_worker, shell_setup, wait_for_status
from sqlalchemy import select
from sqlalchemy.engine import make_url
from test_jobs_api import _gone

from headwater.app import create_app
from headwater.db import create_db_engine, make_sessionmaker, session_scope, utcnow
from headwater.jobs import reaper
from headwater.jobs.models import Job
from headwater.jobs.worker import JobWorker, WorkerThread
from headwater.settings import Settings

pytestmark = pytest.mark.anyio


@contextmanager
def looping_worker(url: str, data_dir: Path, *, host: str, **options: Any) -> Iterator[JobWorker]:
    """A worker with its own engine on ``url``, looping in a thread as ``headwater worker`` does; ``host`` stands for
    the machine it runs on (two hosts: neither can see or kill the other's processes)."""
    engine = create_db_engine(url)
    settings: dict[str, Any] = {
        "slots": 4,
        "heartbeat_interval": 0.2,
        "heartbeat_timeout": 4.0,
        "kill_grace": 0.2,
        "poll_interval": 0.05,
        "listen": False,
    }
    worker = JobWorker(make_sessionmaker(engine), data_dir=data_dir, **{**settings, **options})
    worker.host = host
    thread = WorkerThread(worker, interval=0.05)
    thread.start()
    try:
        yield worker
    finally:
        thread.stop()
        engine.dispose()


def _server_settings(app: FastAPI, data_dir: Path, **values: Any) -> Settings:
    base = app.state.settings
    return Settings(
        database_url=base.database_url,
        data_dir=data_dir,
        secrets_key=base.secrets_key,
        allowed_hosts=base.allowed_hosts,
        search_indexer_enabled=False,
        sync_scheduler_enabled=False,
        cache_enabled=False,
        jobs_worker_enabled=False,
        jobs_heartbeat_interval=0.2,
        jobs_kill_grace=0.2,
        jobs_fence_margin=0.3,
        jobs_heartbeat_timeout=1.5,
        jobs_reaper_interval=0.2,
        **values,
    )


@asynccontextmanager
async def running_server(settings: Settings) -> AsyncIterator[FastAPI]:
    """A server (its lifespan: background threads included) with no job worker of its own."""
    server = create_app(settings, prepare=False)
    async with server.router.lifespan_context(server):
        yield server


def _worker_process(url: str, data_dir: Path, **settings: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HEADWATER_DATABASE_URL": url,
        "HEADWATER_DATA_DIR": str(data_dir),
        "HEADWATER_JOBS_POLL_INTERVAL": "0.05",
        "HEADWATER_LOG_LEVEL": "warning",
        **settings,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "headwater.cli", "worker", "--slots", "4"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _sigkill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def _proxy_for(app: FastAPI) -> DbProxy:
    url = make_url(app.state.settings.database_url)
    return DbProxy((url.host or "127.0.0.1", url.port or 5432))


@pytest.mark.integration
@pytest.mark.single_backend("postgres")
async def test_a_worker_cut_off_from_the_database_longer_than_the_timeout_never_lets_a_job_run_twice(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await shell_setup(client)
    marks = tmp_path / "marks"
    marks.mkdir()
    script = MARKING.format(ticks=40, marks=marks)  # 10 s a copy
    ids = [
        (await client.post("/api/v1/jobs", json=job_body(script, id=f"fence-{n}", max_attempts=2))).json()["id"]
        for n in range(4)
    ]
    url = app.state.settings.database_url
    with _proxy_for(app) as proxy, looping_worker(proxy.url_for(url), tmp_path / "a", host="host-a") as cut_off:
        for job_id in ids:
            await wait_for_status(client, job_id, {"RUNNING"}, timeout=30)
        with looping_worker(url, tmp_path / "b", host="host-b") as survivor:
            proxy.cut()
            await anyio.sleep(6.0)  # 1.5 x the heartbeat timeout: the survivor reaps and re-runs every job
            proxy.restore()
            finals = [await wait_for_status(client, job_id, {"SUCCEEDED", "FAILED", "KILLED"}, 60) for job_id in ids]
    assert ran_twice(marks) == []
    assert [(job["status"], job["attempt"]) for job in finals] == [("SUCCEEDED", 2)] * 4
    for job_id in ids:
        execution = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()
        attempts = [(a["attempt"], a["worker_id"], a["outcome"], a["reason"]) for a in execution["attempts"]]
        assert attempts == [
            (1, cut_off.worker_id, "FAILED", "worker lost"),
            (2, survivor.worker_id, "SUCCEEDED", "exit code 0"),
        ]
        # The cut-off worker killed its copy before the survivor could reap it, and the copy never came back.
        lines = (marks / job_id).read_text().split()
        assert lines.count("1") < 20 and lines[-1] == "2"


@pytest.mark.integration
async def test_the_server_reaps_lost_jobs_when_no_worker_is_alive(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("sleep 60"))).json()["id"]
    doomed = _worker_process(app.state.settings.database_url, tmp_path / "doomed")
    try:
        await wait_for_status(client, job_id, {"RUNNING"}, timeout=60)
    finally:
        _sigkill(doomed)
    pid = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()["pid"]
    assert not _gone(pid)  # an orphan, still running
    async with running_server(_server_settings(app, tmp_path / "server")):
        job = await wait_for_status(client, job_id, {"SUCCEEDED", "FAILED", "KILLED"}, timeout=30)
    assert (job["status"], job["status_message"]) == ("FAILED", "worker lost")
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    assert _gone(pid)  # the server ended the orphan on its host


@pytest.mark.integration
@pytest.mark.single_backend("postgres")
async def test_a_job_that_exited_0_before_its_worker_was_killed_is_recorded_succeeded(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("sleep 1.5; echo done"))).json()["id"]
    status_file = tmp_path / "doomed" / "jobs" / job_id / "exit-status"
    with _proxy_for(app) as proxy:
        doomed = _worker_process(
            proxy.url_for(app.state.settings.database_url),
            tmp_path / "doomed",
            HEADWATER_JOBS_HEARTBEAT_INTERVAL="0.2",
            HEADWATER_JOBS_HEARTBEAT_TIMEOUT="4",
            HEADWATER_JOBS_KILL_GRACE="0.2",
            HEADWATER_JOBS_FENCE_MARGIN="0.8",
            HEADWATER_JOBS_LISTEN="false",
        )
        try:
            await wait_for_status(client, job_id, {"RUNNING"}, timeout=60)
            proxy.cut()  # the job ends while its worker cannot record it
            deadline = time.monotonic() + 15
            while not status_file.exists() and time.monotonic() < deadline:
                await anyio.sleep(0.05)
            assert status_file.read_text() == "0\n"
        finally:
            _sigkill(doomed)
    assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "RUNNING"
    async with running_server(_server_settings(app, tmp_path / "server")):
        job = await wait_for_status(client, job_id, {"SUCCEEDED", "FAILED", "KILLED"}, timeout=30)
    assert (job["status"], job["exit_code"]) == ("SUCCEEDED", 0), job
    assert "exit status" in job["status_message"]
    assert (await client.get(f"/api/v1/jobs/{job_id}/output/stdout")).text == "done\n"


async def test_a_reaped_claims_old_owner_is_refused_and_kills_its_copy(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("sleep 60", max_attempts=2))).json()["id"]
    owner = make_worker(app, tmp_path / "a", heartbeat_interval=0.5)
    try:
        owner.run_once()
        first = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()
        assert first["pid"] and not _gone(first["pid"])
        await anyio.sleep(0.7)  # the owner misses a heartbeat
        with session_scope(app.state.sessionmaker) as session:
            lost = reaper.reap_lost_jobs(session, timeout_seconds=0.5)
        assert [(j.id, j.requeued) for j in lost] == [(job_id, True)]
        owner.run_once()  # its heartbeat is refused: it kills its copy (and may claim the retry itself)
        deadline = time.monotonic() + 5
        while not _gone(first["pid"]) and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        assert _gone(first["pid"])
    finally:
        owner.shutdown()
    attempts = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()["attempts"]
    assert [(a["attempt"], a["outcome"], a["reason"]) for a in attempts][0] == (1, "FAILED", "worker lost")


async def test_expiry_is_judged_by_the_database_clock_not_the_reapers(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("sleep 60"))).json()["id"]
    owner = make_worker(app, tmp_path / "a")
    try:
        owner.run_once()
        await wait_for_status(client, job_id, {"RUNNING"})
        # A reaper whose clock runs an hour ahead reaps nothing: the lease is fresh by the database's clock.
        with session_scope(app.state.sessionmaker) as session:
            ahead = utcnow() + dt.timedelta(hours=1)
            assert reaper.reap_lost_jobs(session, timeout_seconds=30, now=ahead) == []
        with app.state.sessionmaker() as session:
            job = session.scalars(select(Job).where(Job.id == job_id)).one()
            assert job.heartbeat_at is not None and abs(job.heartbeat_at - utcnow()) < dt.timedelta(seconds=10)
    finally:
        owner.shutdown()


def test_settings_refuse_a_timeout_that_leaves_no_time_to_fence() -> None:
    with pytest.raises(ValueError, match="HEADWATER_JOBS_HEARTBEAT_TIMEOUT") as refused:
        Settings(jobs_heartbeat_timeout=15, jobs_kill_grace=5, jobs_fence_margin=5, jobs_heartbeat_interval=5)
    assert "5 + 5 + 5 = 15 s" in str(refused.value)
    assert Settings(jobs_heartbeat_timeout=16, jobs_kill_grace=5, jobs_fence_margin=5, jobs_heartbeat_interval=5)


@pytest.mark.integration
@pytest.mark.single_backend("postgres")
async def test_a_worker_stuck_in_a_hanging_database_call_still_kills_its_jobs_in_time(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("sleep 60"))).json()["id"]
    url = app.state.settings.database_url
    with _proxy_for(app) as proxy, looping_worker(proxy.url_for(url), tmp_path / "a", host="host-a"):
        await wait_for_status(client, job_id, {"RUNNING"}, timeout=30)
        pid = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()["pid"]
        proxy.stall()  # the worker's next database call hangs: its loop cannot fence
        stalled = time.monotonic()
        try:
            while not _gone(pid) and time.monotonic() - stalled < 4.0:  # the heartbeat timeout
                await anyio.sleep(0.05)
            assert _gone(pid), "the job outlived its lease while its worker hung"
        finally:
            proxy.restore()
            if not _gone(pid):
                os.killpg(pid, signal.SIGKILL)
