"""The jobs API end to end with real processes: CRUD, submission and resolution, execution, kill, timeout,
output download; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, make_worker, shell_setup, wait_until

from headwater.jobs.worker import JobWorker

pytestmark = pytest.mark.anyio


def _gone(pid: int) -> bool:
    """The process no longer runs (gone, or a zombie waiting for a reaper that is not us)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _job_pk(app: FastAPI, job_id: str) -> int:
    from headwater.jobs.models import Job

    with app.state.sessionmaker() as session:
        job = session.query(Job).filter(Job.id == job_id).one()
        return job.pk


async def test_cluster_and_command_crud(client: httpx.AsyncClient) -> None:
    await shell_setup(client)
    again = await client.post("/api/v1/clusters", json={"name": "local", "type": "shell"})
    assert again.status_code == 409 and "'local' already exists" in again.json()["error"]["message"]
    bad = await client.post("/api/v1/clusters", json={"name": "x", "type": "hadoop"})
    assert bad.status_code == 422 and "type" in bad.json()["error"]["message"]
    missing = await client.get("/api/v1/clusters/nope")
    assert missing.status_code == 404 and "'nope'" in missing.json()["error"]["message"]
    patched = await client.patch("/api/v1/clusters/local", json={"status": "OUT_OF_SERVICE"})
    assert patched.status_code == 200 and patched.json()["status"] == "OUT_OF_SERVICE"
    page = (await client.get("/api/v1/clusters", params={"limit": 1})).json()
    assert page["total"] == 1 and page["items"][0]["name"] == "local"
    commands = (await client.get("/api/v1/commands")).json()
    assert [c["name"] for c in commands["items"]] == ["sh"]
    assert (await client.post("/api/v1/commands", json={"name": "sh", "executable": ["x"]})).status_code == 409
    assert (await client.post("/api/v1/commands", json={"name": "e", "executable": []})).status_code == 422
    assert (await client.delete("/api/v1/commands/sh")).status_code == 204
    assert (await client.get("/api/v1/commands/sh")).status_code == 404


async def test_job_succeeds_with_output_and_history(client: httpx.AsyncClient, worker: JobWorker, app: FastAPI) -> None:
    await shell_setup(client)
    r = await client.post(
        "/api/v1/jobs",
        json=job_body('echo "hello $GREETING"; echo oops >&2', environment={"GREETING": "world"}, tags=["nightly"]),
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert r.headers["location"] == f"/api/v1/jobs/{job_id}"
    assert r.json()["status"] == "RESOLVED" and r.json()["cluster"] == "local" and r.json()["command"] == "sh"
    worker.drain(timeout=20)
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "SUCCEEDED" and job["exit_code"] == 0 and job["tags"] == ["nightly"]
    history = (await client.get(f"/api/v1/jobs/{job_id}/status")).json()
    assert [t["to_status"] for t in history["transitions"]] == [
        "ACCEPTED", "RESOLVED", "CLAIMED", "INIT", "RUNNING", "SUCCEEDED",
    ]  # fmt: skip
    assert all(t["at"] for t in history["transitions"])
    execution = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()
    assert execution["pid"] > 0 and execution["host"] == socket.gethostname() and execution["exit_code"] == 0
    listing = (await client.get(f"/api/v1/jobs/{job_id}/output")).json()
    assert {e["path"] for e in listing} >= {"stdout", "stderr"}
    stdout = await client.get(f"/api/v1/jobs/{job_id}/output/stdout")
    assert stdout.status_code == 200 and stdout.text == "hello world\n"
    ranged = await client.get(f"/api/v1/jobs/{job_id}/output/stdout", headers={"Range": "bytes=6-10"})
    assert ranged.status_code == 206 and ranged.text == "world"
    assert (await client.get(f"/api/v1/jobs/{job_id}/output/stderr")).text == "oops\n"
    request = (await client.get(f"/api/v1/jobs/{job_id}/request")).json()
    assert request["command_args"] == ['echo "hello $GREETING"; echo oops >&2']
    listed = (
        await client.get("/api/v1/jobs", params={"user": "alice", "status": "SUCCEEDED", "tag": "nightly"})
    ).json()
    assert [j["id"] for j in listed["items"]] == [job_id]
    assert (await client.get("/api/v1/jobs", params={"tag": "other"})).json()["total"] == 0


async def test_non_zero_exit_fails_and_keeps_exit_code(client: httpx.AsyncClient, worker: JobWorker) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("exit 3"))).json()["id"]
    worker.drain(timeout=20)
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "FAILED" and job["exit_code"] == 3 and job["status_message"] == "exit code 3"


async def test_missing_program_fails_with_reason(client: httpx.AsyncClient, worker: JobWorker) -> None:
    await shell_setup(client)
    await client.post("/api/v1/commands", json={"name": "ghost", "executable": ["/no/such/program"], "tags": ["g"]})
    body = job_body("x", command_criteria=["g"])
    job_id = (await client.post("/api/v1/jobs", json=body)).json()["id"]
    worker.drain(timeout=20)
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "FAILED" and "/no/such/program" in job["status_message"]


async def test_kill_takes_down_the_whole_process_group(client: httpx.AsyncClient, worker: JobWorker) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("sleep 60 & echo $! > child.pid; wait"))).json()["id"]
    child_file = worker.jobs_dir / job_id / "child.pid"
    wait_until(lambda: child_file.exists() and child_file.read_text().strip() != "", worker)
    child = int(child_file.read_text())
    leader = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()["pid"]
    assert not _gone(child)
    r = await client.delete(f"/api/v1/jobs/{job_id}")
    assert r.status_code == 202
    worker.drain(timeout=20)
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "KILLED" and job["status_message"] == "killed by request"
    assert _gone(leader) and _gone(child)
    with pytest.raises(ProcessLookupError):
        os.killpg(leader, 0) if not _gone(child) else os.kill(leader, 0)


async def test_kill_before_start_and_of_finished_job(client: httpx.AsyncClient, worker: JobWorker) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("true"))).json()["id"]
    killed = (await client.delete(f"/api/v1/jobs/{job_id}")).json()
    assert killed["status"] == "KILLED"
    worker.drain(timeout=5)
    assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "KILLED"
    assert (await client.delete("/api/v1/jobs/nope")).status_code == 404


async def test_timeout_kills_the_job(client: httpx.AsyncClient, worker: JobWorker) -> None:
    await shell_setup(client)
    started = time.monotonic()
    job_id = (await client.post("/api/v1/jobs", json=job_body("sleep 60", timeout=1))).json()["id"]
    worker.drain(timeout=20)
    assert time.monotonic() - started < 15
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "KILLED" and job["status_message"] == "timed out after 1 s"


async def test_criteria_matching_nothing_make_the_job_invalid(client: httpx.AsyncClient) -> None:
    await shell_setup(client)
    body = job_body("true", cluster_criteria=[["sched:prod"], ["env:nowhere", "sched:test"]])
    r = await client.post("/api/v1/jobs", json=body)
    assert r.status_code == 202
    job = r.json()
    assert job["status"] == "INVALID"
    assert "cluster_criteria[0] ['sched:prod'] matched no UP cluster" in job["status_message"]
    assert "cluster_criteria[1]" in job["status_message"]
    no_command = (await client.post("/api/v1/jobs", json=job_body("true", command_criteria=["type:spark"]))).json()
    assert no_command["status"] == "INVALID" and "type:spark" in no_command["status_message"]
    # the first criterion that matches wins, in order
    await client.post("/api/v1/clusters", json={"name": "other", "type": "shell", "tags": ["sched:test", "b"]})
    second = await client.post("/api/v1/jobs", json=job_body("true", cluster_criteria=[["nope"], ["b"]]))
    assert second.json()["status"] == "RESOLVED" and second.json()["cluster"] == "other"
    await client.patch("/api/v1/clusters/other", json={"status": "OUT_OF_SERVICE"})
    down = await client.post("/api/v1/jobs", json=job_body("true", cluster_criteria=[["b"]]))
    assert down.json()["status"] == "INVALID"


async def test_request_validation(client: httpx.AsyncClient) -> None:
    await shell_setup(client)
    too_long = await client.post("/api/v1/jobs", json=job_body("true", command_args=["a" * 6000, "b" * 4001]))
    assert too_long.status_code == 422
    assert "10001 characters" in too_long.json()["error"]["message"]
    assert "10000" in too_long.json()["error"]["message"]
    at_cap = await client.post("/api/v1/jobs", json=job_body("true", command_args=["a" * 6000, "b" * 4000]))
    assert at_cap.status_code == 202
    no_criteria = await client.post("/api/v1/jobs", json=job_body("true", cluster_criteria=[]))
    assert no_criteria.status_code == 422 and "cluster_criteria" in no_criteria.json()["error"]["message"]
    first = await client.post("/api/v1/jobs", json=job_body("true", id="my-job-1"))
    assert first.status_code == 202 and first.json()["id"] == "my-job-1"
    reused = await client.post("/api/v1/jobs", json=job_body("true", id="my-job-1"))
    assert reused.status_code == 409 and "'my-job-1'" in reused.json()["error"]["message"]
    bad_id = await client.post("/api/v1/jobs", json=job_body("true", id="../etc"))
    assert bad_id.status_code == 422


async def test_output_download_never_leaves_the_job_dir(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    await shell_setup(client)
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    job_id = (
        await client.post("/api/v1/jobs", json=job_body(f"mkdir sub; echo hi > sub/a.txt; ln -s {secret} link"))
    ).json()["id"]
    worker.drain(timeout=20)
    assert (await client.get(f"/api/v1/jobs/{job_id}/output/sub/a.txt")).text == "hi\n"
    listing = {e["path"] for e in (await client.get(f"/api/v1/jobs/{job_id}/output")).json()}
    assert "sub/a.txt" in listing and "link" not in listing
    for attempt in (
        "..%2F..%2Fsecret.txt",
        "%2e%2e/%2e%2e/secret.txt",
        "sub/..%2F..%2F..%2Fsecret.txt",
        "%2Fetc%2Fpasswd",
        "link",
        "sub/..%5C..%5Csecret.txt",
    ):
        r = await client.get(f"/api/v1/jobs/{job_id}/output/{attempt}")
        assert r.status_code in (400, 404), (attempt, r.status_code)
        assert "secret" not in r.text.replace("secret.txt", ""), attempt
    assert (await client.get(f"/api/v1/jobs/{job_id}/output/nothing")).status_code == 404


async def test_cluster_concurrency_limit_holds(client: httpx.AsyncClient, app: FastAPI, tmp_path: Path) -> None:
    await shell_setup(client, max_concurrent=2)
    ids = [(await client.post("/api/v1/jobs", json=job_body("sleep 30"))).json()["id"] for _ in range(4)]
    first = make_worker(app, tmp_path / "a", slots=3)
    second = make_worker(app, tmp_path / "b", slots=3)
    try:
        first.run_once()
        second.run_once()
        assert len(first.running) + len(second.running) == 2
        statuses = [(await client.get(f"/api/v1/jobs/{i}")).json()["status"] for i in ids]
        assert statuses.count("RUNNING") == 2 and statuses.count("RESOLVED") == 2
    finally:
        first.shutdown()
        second.shutdown()
