"""A job's files relayed through the database from the worker that holds them (headwater.jobs.relay) and kept in
the database archive (headwater.jobs.archive), with in-process workers that record another host name, so the API
cannot read their directories itself. The worker in a process and a network namespace of its own is in
test_jobs_remote_files.py."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import (
    changed_settings,
    job_body,
    make_worker,
    relay_timeout,
    shell_setup,
    wait_for_status,
    worker_thread,
)
from sqlalchemy import func, select

from headwater.db import session_scope
from headwater.jobs.models import JobArchiveChunk, JobArchivedFile, JobFileRequest
from headwater.jobs.relay import sweep_requests

pytestmark = pytest.mark.anyio


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """Contexts the test enters, left when it ends."""
    with ExitStack() as contexts:
        yield contexts


# Links out of its directory, a FIFO and a plain file; then it waits (at most 30 s) for "go".
TRICKS = (
    "echo hi; ln -s /etc/passwd leak; mkdir sub; ln -s /etc sub/etc; echo x > sub/ok.txt; mkfifo pipe; "
    "i=0; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"
)
SEQ = b"".join(f"{i}\n".encode() for i in range(1, 250_001))  # 1.6 MB: two archive chunks


async def _refusals(client: httpx.AsyncClient, job_id: str) -> None:
    listing = await client.get(f"/api/v1/jobs/{job_id}/output")
    assert listing.status_code == 200, listing.text
    paths = {entry["path"] for entry in listing.json()}
    assert {"stdout", "sub", "sub/ok.txt"} <= paths and not {"leak", "sub/etc"} & paths
    assert (await client.get(f"/api/v1/jobs/{job_id}/output/sub/ok.txt")).content == b"x\n"
    # A link is refused as leaving the directory (400) by the worker, and is simply not in the archive (404).
    for path in ("leak", "sub/etc/passwd", "pipe", "..%2F..%2Fetc%2Fpasswd"):
        r = await client.get(f"/api/v1/jobs/{job_id}/output/{path}")
        assert r.status_code in (400, 404), (path, r.status_code, r.text)
        assert "root:" not in r.text


async def test_another_hosts_files_are_relayed_and_never_leave_the_job_directory(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body(TRICKS))).json()["id"]
    with worker_thread(app, tmp_path / "data", host="other-host") as worker:
        await wait_for_status(client, job_id, {"RUNNING"})
        assert (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()["host"] == "other-host"
        deadline = time.monotonic() + 20
        while not (worker.jobs_dir / job_id / "pipe").exists():  # the script has made its links and FIFO
            assert time.monotonic() < deadline, "the job never made its files"
            time.sleep(0.05)
        await _refusals(client, job_id)  # answered by the worker, through job_file_requests
        with changed_settings(app, jobs_listen=False):
            await _refusals(client, job_id)  # the asker polls for the answer instead of waiting for its NOTIFY
        (worker.jobs_dir / job_id / "go").touch()
        await wait_for_status(client, job_id, {"SUCCEEDED"})
        deadline = time.monotonic() + 20
        while (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()["files_archived_at"] is None:
            assert time.monotonic() < deadline, "never archived"
            time.sleep(0.05)
    await _refusals(client, job_id)  # from the archive, which never took a link or a FIFO
    with session_scope(app.state.sessionmaker) as session:
        assert session.scalar(select(func.count()).select_from(JobFileRequest)) == 0  # each read, then deleted


async def test_the_archive_serves_ranges_across_chunks_and_expires_with_the_retention_period(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path, stack: ExitStack
) -> None:
    stack.enter_context(relay_timeout(app, 0.5))
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("seq 1 250000; echo oops >&2"))).json()["id"]
    gone_host = make_worker(app, tmp_path / "gone", host="gone-host")
    try:
        gone_host.drain(timeout=20)
        assert gone_host.archive_finished() == 1 and gone_host.archive_finished() == 0
    finally:
        gone_host.shutdown()
    with session_scope(app.state.sessionmaker) as session:
        of_stdout = select(JobArchivedFile.id).where(JobArchivedFile.path == "stdout").scalar_subquery()
        chunks = session.scalar(select(func.count()).where(JobArchiveChunk.file_id == of_stdout))
        stored = session.scalar(
            select(func.sum(func.length(JobArchiveChunk.data))).where(JobArchiveChunk.file_id == of_stdout)
        )
    assert chunks == 2  # 1 MiB, then the rest
    assert stored is not None and stored < len(SEQ) / 2  # compressed
    r = await client.get(f"/api/v1/jobs/{job_id}/logs/stdout", params={"offset": 1_048_570, "limit": 20})
    assert r.status_code == 200 and r.content == SEQ[1_048_570:1_048_590]
    assert r.headers["x-log-size"] == str(len(SEQ)) and r.headers["x-job-finished"] == "true"
    assert (await client.get(f"/api/v1/jobs/{job_id}/logs/stderr")).content == b"oops\n"
    assert (await client.get(f"/api/v1/jobs/{job_id}/output/stdout")).content == SEQ
    past = await client.get(f"/api/v1/jobs/{job_id}/logs/stdout", params={"offset": len(SEQ) + 1})
    assert past.status_code == 400 and "past the end" in past.text

    page = await client.get(f"/ui/jobs/{job_id}")
    assert page.status_code == 200 and "oops" in page.text and "249999\n250000" in page.text  # tails, archived

    # Another host's housekeeping expires the archive of a job whose host is gone for good.
    other = make_worker(app, tmp_path / "other", host="other-host", retention=dt.timedelta(hours=1))
    assert other.clean_expired() == []
    assert (await client.get(f"/api/v1/jobs/{job_id}/logs/stderr")).status_code == 200  # not expired yet
    other.retention = dt.timedelta(0)
    other.clean_expired()
    other.shutdown()
    with session_scope(app.state.sessionmaker) as session:
        assert session.scalar(select(func.count()).select_from(JobArchivedFile)) == 0
        assert session.scalar(select(func.count()).select_from(JobArchiveChunk)) == 0
    r = await client.get(f"/api/v1/jobs/{job_id}/logs/stdout")
    assert r.status_code == 503
    message = r.json()["error"]["message"]
    assert "the worker on host gone-host" in message and "did not answer within 0.5 s" in message
    assert "retention removed it" in message
    page = await client.get(f"/ui/jobs/{job_id}")  # the page still shows, saying why the logs cannot
    assert page.status_code == 200 and "the worker on host gone-host" in page.text


async def test_requests_nobody_collected_are_swept(app: FastAPI, client: httpx.AsyncClient, tmp_path: Path) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("echo hi"))).json()["id"]
    with session_scope(app.state.sessionmaker) as session:
        from headwater.jobs.service import get_job

        pk = get_job(session, job_id=job_id).pk
        old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
        session.add(JobFileRequest(job_pk=pk, host="h", kind="list", created_at=old))
        session.add(JobFileRequest(job_pk=pk, host="h", kind="list"))
    with session_scope(app.state.sessionmaker) as session:
        assert sweep_requests(session) == 1
        assert session.scalar(select(func.count()).select_from(JobFileRequest)) == 1


async def test_a_stopping_worker_archives_the_jobs_it_killed(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("echo started; sleep 60"))).json()["id"]
    with worker_thread(app, tmp_path / "data", host="leaving-host"):
        await wait_for_status(client, job_id, {"RUNNING"})
        deadline = time.monotonic() + 20
        while (await client.get(f"/api/v1/jobs/{job_id}/logs/stdout")).content != b"started\n":
            assert time.monotonic() < deadline, "the job never wrote its line"
            time.sleep(0.05)
    execution = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()
    assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "KILLED"
    assert execution["files_archived_at"] is not None and execution["files_not_archived"] == 0
    log = await client.get(f"/api/v1/jobs/{job_id}/logs/stdout")  # no worker left: from the archive
    assert log.content == b"started\n" and log.headers["x-job-finished"] == "true"


async def test_the_archive_takes_logs_first_and_leaves_out_whole_files_over_the_cap(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path, stack: ExitStack
) -> None:
    stack.enter_context(relay_timeout(app, 0.3))
    await shell_setup(client)
    script = (
        "mkdir driver; seq 1 5000 > driver/driver.log; echo hi; seq 1 4000 > a.txt; seq 1 3000 > b.txt; "
        "ln -s /etc/passwd link"
    )
    job_id = (await client.post("/api/v1/jobs", json=job_body(script))).json()["id"]
    capped = make_worker(app, tmp_path / "capped", host="capped-host", archive_max_bytes=50_000)
    try:
        capped.drain(timeout=20)
        capped.archive_finished()
    finally:
        capped.shutdown()
    execution = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()
    assert execution["files_not_archived"] == 1  # b.txt: 23.9 kB of driver log and 18.9 kB of a.txt came first
    listing = await client.get(f"/api/v1/jobs/{job_id}/output")  # the host does not answer: the archive's listing
    paths = {entry["path"] for entry in listing.json()}
    assert {"stdout", "stderr", "driver", "driver/driver.log", "a.txt"} <= paths
    assert not {"b.txt", "link"} & paths
    driver_log = await client.get(f"/api/v1/jobs/{job_id}/output/driver/driver.log")
    assert driver_log.content == b"".join(f"{i}\n".encode() for i in range(1, 5001))
    left_out = await client.get(f"/api/v1/jobs/{job_id}/output/b.txt")
    assert left_out.status_code == 503 and "1 left out over HEADWATER_JOBS_DB_ARCHIVE_MAX_BYTES" in left_out.text
