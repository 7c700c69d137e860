"""Job submission as multipart with attachments (Genie's way): files land in the job's working directory;
count and size limits, unsafe file names and malformed parts are refused with 4xx and leave nothing behind."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, shell_setup
from sqlalchemy import func, select

from headwater.jobs.models import Job, JobAttachment
from headwater.jobs.worker import JobWorker

pytestmark = pytest.mark.anyio
TOOL = {"X-Headwater-Client": "tests"}  # multipart needs it (or Authorization): a cross-site form cannot send it


def _multipart(request: dict[str, Any], files: list[tuple[str, bytes]]) -> dict[str, Any]:
    parts: list[tuple[str, tuple[str | None, bytes | str, str]]] = [
        ("request", (None, json.dumps(request), "application/json"))
    ]
    parts += [("attachment", (name, content, "application/octet-stream")) for name, content in files]
    return {"files": parts, "headers": TOOL}


def _counts(app: FastAPI) -> tuple[int, int]:
    with app.state.sessionmaker() as session:
        jobs = session.scalar(select(func.count()).select_from(Job)) or 0
        attachments = session.scalar(select(func.count()).select_from(JobAttachment)) or 0
    return jobs, attachments


async def test_attachments_land_in_the_job_directory(client: httpx.AsyncClient, worker: JobWorker) -> None:
    await shell_setup(client)
    body = job_body('cat query.sql; wc -c < data.bin; echo "$(pwd)" | grep -c "$HEADWATER_JOB_ID"')
    r = await client.post(
        "/api/v1/jobs", **_multipart(body, [("query.sql", b"SELECT 1;\n"), ("data.bin", bytes(range(256)) * 4)])
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert r.headers["location"] == f"/api/v1/jobs/{job_id}"
    worker.drain(timeout=20)
    assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "SUCCEEDED"
    assert (await client.get(f"/api/v1/jobs/{job_id}/output/stdout")).text == "SELECT 1;\n1024\n1\n"
    data = await client.get(f"/api/v1/jobs/{job_id}/output/data.bin")
    assert data.content == bytes(range(256)) * 4
    request = (await client.get(f"/api/v1/jobs/{job_id}/request")).json()
    assert request["command_args"] == body["command_args"]


async def test_a_request_part_alone_is_a_plain_submission(client: httpx.AsyncClient) -> None:
    await shell_setup(client)
    r = await client.post("/api/v1/jobs", **_multipart(job_body("true", id="only-request"), []))
    assert r.status_code == 202 and r.json()["id"] == "only-request" and r.json()["status"] == "RESOLVED"


@pytest.mark.parametrize(
    "name",
    ["../escape.txt", "../../etc/passwd", "sub/file.txt", "/abs.txt", "..", ".hidden", "a\\b.txt", "stdout", "stderr"],
)
async def test_unsafe_attachment_names_are_refused(client: httpx.AsyncClient, app: FastAPI, name: str) -> None:
    await shell_setup(client)
    r = await client.post("/api/v1/jobs", **_multipart(job_body("true"), [("ok.txt", b"x"), (name, b"evil")]))
    assert r.status_code == 400, (name, r.status_code, r.text)
    assert "attachment file name" in r.json()["error"]["message"]
    assert _counts(app) == (0, 0)


async def test_attachment_limits_and_malformed_parts(client: httpx.AsyncClient, app: FastAPI) -> None:
    await shell_setup(client)
    settings = app.state.settings
    too_many = [(f"f{i}.txt", b"x") for i in range(settings.jobs_attachments_max_count + 1)]
    r = await client.post("/api/v1/jobs", **_multipart(job_body("true"), too_many))
    assert r.status_code == 400 and "HEADWATER_JOBS_ATTACHMENTS_MAX_COUNT" in r.json()["error"]["message"]

    old = settings.jobs_attachments_max_bytes
    settings.jobs_attachments_max_bytes = 1000
    try:
        r = await client.post("/api/v1/jobs", **_multipart(job_body("true"), [("a", b"x" * 600), ("b", b"y" * 600)]))
        assert r.status_code == 400 and "1000 bytes" in r.json()["error"]["message"]
        at_limit = await client.post("/api/v1/jobs", **_multipart(job_body("true"), [("a", b"x" * 1000)]))
        assert at_limit.status_code == 202
    finally:
        settings.jobs_attachments_max_bytes = old
    huge = await client.post("/api/v1/jobs", **_multipart(job_body("true"), [("big", b"z" * 200_000)]))
    assert huge.status_code == 413  # over HEADWATER_MAX_BODY_BYTES before any limit of ours
    assert huge.json()["error"]["code"] == "payload_too_large"

    twice = await client.post("/api/v1/jobs", **_multipart(job_body("true"), [("a.txt", b"1"), ("a.txt", b"2")]))
    assert twice.status_code == 400 and "two attachments" in twice.json()["error"]["message"]
    no_request = await client.post("/api/v1/jobs", files=[("attachment", ("a.txt", b"1", "text/plain"))], headers=TOOL)
    assert no_request.status_code == 400 and "'request'" in no_request.json()["error"]["message"]
    stray = await client.post(
        "/api/v1/jobs",
        files=[("request", (None, json.dumps(job_body("true")), "application/json")), ("extra", (None, "1"))],
        headers=TOOL,
    )
    assert stray.status_code == 400 and "'extra'" in stray.json()["error"]["message"]
    not_json = await client.post("/api/v1/jobs", files=[("request", (None, "{nope", "application/json"))], headers=TOOL)
    assert not_json.status_code == 422 and "not valid JSON" in not_json.json()["error"]["message"]
    invalid = await client.post("/api/v1/jobs", **_multipart({**job_body("true"), "timeout": 0}, []))
    assert invalid.status_code == 422 and "timeout" in invalid.json()["error"]["message"]
    too_long = await client.post("/api/v1/jobs", **_multipart(job_body("true", command_args=["abc"] * 3334), []))
    assert too_long.status_code == 422 and "10002 characters" in too_long.json()["error"]["message"]
    text_body = await client.post("/api/v1/jobs", content=b"name=x", headers={"content-type": "text/plain"})
    assert text_body.status_code == 415 and "multipart/form-data" in text_body.json()["error"]["message"]
    assert _counts(app) == (1, 1)  # only the submission at the limit was kept
