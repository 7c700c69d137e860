"""Concurrent submissions while two looping workers claim: no job lost, none run twice; and output download
attempts that would leave the job directory; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, shell_setup, wait_for_status, worker_thread
from sqlalchemy import func, select

from headwater.jobs.models import Job, JobAttempt, JobTransition
from headwater.jobs.worker import JobWorker

pytestmark = pytest.mark.anyio


async def test_concurrent_submissions_all_run_exactly_once(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await shell_setup(client, max_concurrent=6)
    marks = tmp_path / "ran"
    count = 60
    ids: list[str] = []

    # In flight at once: below the connection pool (SQLite's 5 + 10 overflow), as a real server's clients are.
    limiter = anyio.CapacityLimiter(12)

    async def submit(index: int) -> None:
        async with limiter:
            r = await client.post(
                # Long enough that one worker's four slots cannot drain the queue alone before the other claims.
                "/api/v1/jobs",
                json=job_body(f'sleep 0.2; echo "$HEADWATER_JOB_ID" >> {marks}', id=f"c-{index}"),
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])

    with worker_thread(app, tmp_path / "a", slots=4) as first, worker_thread(app, tmp_path / "b", slots=4) as second:
        async with anyio.create_task_group() as group:
            for index in range(count):
                group.start_soon(submit, index)
        for job_id in ids:
            job = await wait_for_status(client, job_id, {"SUCCEEDED", "FAILED", "KILLED", "INVALID"}, timeout=60)
            assert job["status"] == "SUCCEEDED", job
    assert sorted(marks.read_text().split()) == sorted(f"c-{i}" for i in range(count))
    with app.state.sessionmaker() as session:
        claims = list(session.scalars(select(JobTransition.job_pk).where(JobTransition.to_status == "CLAIMED")))
        attempts = session.scalar(select(func.count()).select_from(JobAttempt))
        owners = set(session.scalars(select(Job.worker_id)))
    assert len(claims) == len(set(claims)) == count and attempts == count
    assert owners == {first.worker_id, second.worker_id}  # both took part


async def test_output_download_refuses_every_way_out(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    await shell_setup(client)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    script = f"mkdir sub; echo hi > sub/a.txt; ln -s {outside} dirlink; ln -s ../.. up; ln -s sub/a.txt alias"
    job_id = (await client.post("/api/v1/jobs", json=job_body(script))).json()["id"]
    worker.drain(timeout=20)
    for attempt in (
        "dirlink/secret.txt",  # a symlinked directory pointing outside
        "up/outside/secret.txt",  # a relative symlink climbing out
        "sub%2F..%2F..%2F..%2Foutside%2Fsecret.txt",
        "%252e%252e/%252e%252e/outside/secret.txt",  # double-encoded: a literal name, not a parent
        "sub/a.txt%00.png",
        "%2E%2E",  # encoded, so the client does not normalise it away
        "sub/%2E%2E/%2E%2E",
        "%2F",
    ):
        r = await client.get(f"/api/v1/jobs/{job_id}/output/{attempt}")
        assert r.status_code in (400, 404), (attempt, r.status_code)
        assert b"secret" not in r.content.replace(b"secret.txt", b""), attempt
    # a symlink that stays inside the directory is harmless and served
    assert (await client.get(f"/api/v1/jobs/{job_id}/output/alias")).text == "hi\n"
    assert (await client.get(f"/api/v1/jobs/{job_id}/output/sub/a.txt")).text == "hi\n"
    listing = {e["path"] for e in (await client.get(f"/api/v1/jobs/{job_id}/output")).json()}
    assert not {"dirlink", "up", "alias"} & listing and "sub/a.txt" in listing
