"""Live log tails of running jobs (offset polling and streaming), with workers looping in background threads
as the server runs them; and the embedded server's own in-process worker end to end on SQLite."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, shell_setup, wait_for_status, worker_thread
from live_http import serve_in_thread

from headwater.app import create_app
from headwater.settings import Settings

pytestmark = pytest.mark.anyio

# Writes one line, waits (at most 30 s) for the test to create "go" in its directory, writes another.
GATED = (
    "echo first; echo warn >&2; i=0; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; echo second"
)


async def _poll(client: httpx.AsyncClient, job_id: str, stream: str, offset: int) -> httpx.Response:
    r = await client.get(f"/api/v1/jobs/{job_id}/logs/{stream}", params={"offset": offset})
    assert r.status_code == 200, r.text
    assert int(r.headers["x-log-offset"]) == offset
    assert int(r.headers["x-log-next-offset"]) == offset + len(r.content)
    return r


async def test_live_tail_by_offset_while_the_job_runs(client: httpx.AsyncClient, app: FastAPI, tmp_path: Path) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body(GATED))).json()["id"]
    queued = await _poll(client, job_id, "stdout", 0)
    assert queued.content == b"" and queued.headers["x-job-finished"] == "false"
    with worker_thread(app, tmp_path / "data") as worker:
        received = b""
        offset = 0
        deadline = time.monotonic() + 20
        while b"first\n" not in received:
            assert time.monotonic() < deadline, "the first line never showed"
            r = await _poll(client, job_id, "stdout", offset)
            received += r.content
            offset = int(r.headers["x-log-next-offset"])
            await anyio.sleep(0.05)
        # mid-run: the job is still running (its RUNNING record may trail its first output) and says so
        assert r.headers["x-job-status"] in {"INIT", "RUNNING"} and r.headers["x-job-finished"] == "false"
        assert received == b"first\n"
        (worker.jobs_dir / job_id / "go").touch()
        while True:
            assert time.monotonic() < deadline, "the job never finished"
            r = await _poll(client, job_id, "stdout", offset)
            received += r.content
            offset = int(r.headers["x-log-next-offset"])
            if r.headers["x-job-finished"] == "true" and offset == int(r.headers["x-log-size"]):
                break
            await anyio.sleep(0.05)
    assert received == b"first\nsecond\n"
    assert r.headers["x-job-status"] == "SUCCEEDED"
    assert (await _poll(client, job_id, "stderr", 0)).content == b"warn\n"
    partial = await client.get(f"/api/v1/jobs/{job_id}/logs/stdout", params={"offset": 2, "limit": 3})
    assert partial.content == b"rst" and partial.headers["x-log-next-offset"] == "5"
    past = await client.get(f"/api/v1/jobs/{job_id}/logs/stdout", params={"offset": 999})
    assert past.status_code == 400 and "past the end" in past.json()["error"]["message"]
    for stream in ("other", "..%2F..%2Fetc%2Fpasswd", "go"):
        r = await client.get(f"/api/v1/jobs/{job_id}/logs/{stream}")
        assert r.status_code == 404, (stream, r.status_code)
    assert (await client.get("/api/v1/jobs/nope/logs/stdout")).status_code == 404
    assert (await client.get(f"/api/v1/jobs/{job_id}/logs/stdout", params={"offset": -1})).status_code == 422


async def test_follow_streams_the_log_until_the_job_ends(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body(GATED))).json()["id"]
    with worker_thread(app, tmp_path / "data") as worker:
        await wait_for_status(client, job_id, {"RUNNING"})
        # Let the job go on while the stream is open: the stream ends only when the job does.
        threading.Timer(0.5, lambda: (worker.jobs_dir / job_id / "go").touch()).start()
        started = time.monotonic()
        r = await client.get(f"/api/v1/jobs/{job_id}/logs/stdout", params={"follow": "true"}, timeout=30)
        assert r.status_code == 200
        assert r.content == b"first\nsecond\n"
        assert time.monotonic() - started >= 0.4
    assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "SUCCEEDED"
    again = await client.get(f"/api/v1/jobs/{job_id}/logs/stdout", params={"follow": "true", "offset": 6})
    assert again.content == b"second\n"


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[str]:
    """The suite's app served by a real uvicorn on loopback."""
    with serve_in_thread(app) as url:
        yield url


async def test_follow_streams_bytes_as_they_are_written_over_real_http(
    client: httpx.AsyncClient, app: FastAPI, live_server: str, tmp_path: Path
) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body(GATED))).json()["id"]
    with worker_thread(app, tmp_path / "data") as worker:
        await wait_for_status(client, job_id, {"RUNNING"})
        async with (
            httpx.AsyncClient(base_url=live_server, timeout=30) as http,
            http.stream("GET", f"/api/v1/jobs/{job_id}/logs/stdout", params={"follow": "true"}) as response,
        ):
            assert response.status_code == 200
            chunks = response.aiter_bytes()
            first = await chunks.__anext__()
            # The first line arrived while the job still runs, blocked on "go": the body is live.
            assert first == b"first\n"
            assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "RUNNING"
            (worker.jobs_dir / job_id / "go").touch()
            rest = b"".join([chunk async for chunk in chunks])
    assert first + rest == b"first\nsecond\n"


async def test_embedded_server_runs_jobs_with_its_in_process_worker(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "embedded",
        jobs_poll_interval=0.05,
        search_indexer_enabled=False,
        sync_scheduler_enabled=False,
    )
    assert settings.is_embedded_database and settings.should_run_job_worker
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://headwater.test") as client:
            await shell_setup(client)
            ids = [(await client.post("/api/v1/jobs", json=job_body(f"echo job-{i}"))).json()["id"] for i in range(5)]
            for index, job_id in enumerate(ids):
                job = await wait_for_status(client, job_id, {"SUCCEEDED", "FAILED", "KILLED"})
                assert job["status"] == "SUCCEEDED", job
                stdout = await client.get(f"/api/v1/jobs/{job_id}/output/stdout")
                assert stdout.text == f"job-{index}\n"
            execution = (await client.get(f"/api/v1/jobs/{ids[0]}/execution")).json()
            assert execution["worker_id"] == app.state.job_worker.worker_id
            assert execution["work_dir"].startswith(str((tmp_path / "embedded").resolve()))
            sleeper = (await client.post("/api/v1/jobs", json=job_body("sleep 60"))).json()["id"]
            await wait_for_status(client, sleeper, {"RUNNING"})
    # Stopping the server kills what its worker runs and records it.
    with app.state.sessionmaker() as session:
        from headwater.jobs.models import Job

        job = session.query(Job).filter(Job.id == sleeper).one()
        assert job.status == "KILLED" and job.status_message == "worker stopped"
    app.state.engine.dispose()
