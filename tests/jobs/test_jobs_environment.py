"""What a job sees of the server's environment: only an allowlist (PATH, the locale, JAVA_HOME, the engines'
homes, HEADWATER_JOBS_PASS_ENV) and what its engine, applications and request declare, never a HEADWATER_*
setting; and the request endpoint shows the names of the job's variables, never their values. Real jobs run by
the real worker; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import httpx
import pydantic
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, make_worker, shell_setup

from headwater.settings import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SERVER_SECRET = "server-only-f1e2d3"


def _variables(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


async def test_a_job_gets_no_server_setting_and_nothing_outside_the_allowlist(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_DATABASE_URL", f"postgresql://admin:{SERVER_SECRET}@db/headwater")
    monkeypatch.setenv("HEADWATER_ELASTICSEARCH_PASSWORD", SERVER_SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SERVER_SECRET)
    monkeypatch.setenv("LANG", "C.UTF-8")
    worker = make_worker(app, tmp_path / "data")
    try:
        await shell_setup(client)
        r = await client.post(
            "/api/v1/applications",
            json={"name": "tool", "environment": {"TOOL_HOME": "{app_dir}"}, "tags": ["t"]},
        )
        assert r.status_code == 201, r.text
        body = job_body("env", environment={"DECLARED_TOKEN": "job-secret-123"}, applications=["tool"])
        job_id = (await client.post("/api/v1/jobs", json=body)).json()["id"]
        worker.drain(timeout=30)
        job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        assert job["status"] == "SUCCEEDED", job
        output = (await client.get(f"/api/v1/jobs/{job_id}/output/stdout")).text
    finally:
        worker.shutdown()
    seen = _variables(output)
    assert SERVER_SECRET not in output
    assert "AWS_SECRET_ACCESS_KEY" not in seen
    assert sorted(name for name in seen if name.startswith("HEADWATER_")) == [
        "HEADWATER_APPLICATIONS_DIR",
        "HEADWATER_JOB_ATTEMPT",
        "HEADWATER_JOB_DIR",
        "HEADWATER_JOB_ID",
        "HEADWATER_JOB_USER",
    ]
    assert seen["HEADWATER_JOB_USER"] == "alice"  # local mode: the local admin runs it as the user it names
    work_dir = worker.jobs_dir / job_id
    assert seen["DECLARED_TOKEN"] == "job-secret-123"  # what the job declared
    assert seen["TOOL_HOME"] == str(work_dir / "applications" / "tool")  # what its application declared
    assert seen["LANG"] == "C.UTF-8" and seen["PATH"]  # the allowlist
    assert seen["HOME"] == str(work_dir)


async def test_variables_named_in_pass_env_reach_jobs(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SITE_PASSED_MARKER", "passed-through")
    monkeypatch.setenv("SITE_KEPT_MARKER", "kept")
    worker = make_worker(app, tmp_path / "data", pass_env=["SITE_PASSED_MARKER"])
    try:
        await shell_setup(client)
        job_id = (await client.post("/api/v1/jobs", json=job_body("env"))).json()["id"]
        worker.drain(timeout=30)
        seen = _variables((await client.get(f"/api/v1/jobs/{job_id}/output/stdout")).text)
    finally:
        worker.shutdown()
    assert seen["SITE_PASSED_MARKER"] == "passed-through" and "SITE_KEPT_MARKER" not in seen


async def test_the_request_shows_the_environment_names_never_their_values(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await shell_setup(client)
    body = job_body("true", environment={"API_TOKEN": "tok-9f8e7d", "REGION": "eu"})
    job_id = (await client.post("/api/v1/jobs", json=body)).json()["id"]
    r = await client.get(f"/api/v1/jobs/{job_id}/request")
    assert r.status_code == 200
    assert r.json()["environment"] == {"API_TOKEN": "***", "REGION": "***"}
    assert "tok-9f8e7d" not in r.text
    created = await client.post(
        "/api/v1/applications", json={"name": "creds", "environment": {"APP_KEY": "app-key-5a4b"}}
    )
    assert created.status_code == 201 and "app-key-5a4b" not in created.text
    for answer in (await client.get("/api/v1/applications/creds"), await client.get("/api/v1/applications")):
        assert answer.status_code == 200 and "app-key-5a4b" not in answer.text and '"APP_KEY":"***"' in answer.text
    # The value is kept: the job gets it.
    worker = make_worker(app, tmp_path / "data")
    try:
        run = job_body("echo $APP_KEY", applications=["creds"])
        run_id = (await client.post("/api/v1/jobs", json=run)).json()["id"]
        worker.drain(timeout=30)
        assert (await client.get(f"/api/v1/jobs/{run_id}/output/stdout")).text == "app-key-5a4b\n"
    finally:
        worker.shutdown()


async def test_an_application_sent_back_as_read_keeps_its_environment_values(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await shell_setup(client)
    body = {"name": "creds", "environment": {"APP_KEY": "app-key-5a4b", "REGION": "eu"}}
    assert (await client.post("/api/v1/applications", json=body)).status_code == 201
    read = (await client.get("/api/v1/applications/creds")).json()
    # A client edits one variable and sends back what it read: the masked one keeps its stored value.
    changed = {**read["environment"], "REGION": "us"}
    patched = await client.patch("/api/v1/applications/creds", json={"environment": changed})
    assert patched.status_code == 200, patched.text
    unknown = await client.patch("/api/v1/applications/creds", json={"environment": {"NEW_KEY": "***"}})
    assert unknown.status_code == 400 and "NEW_KEY" in unknown.json()["error"]["message"]
    worker = make_worker(app, tmp_path / "data")
    try:
        run = job_body('echo "$APP_KEY $REGION"', applications=["creds"])
        run_id = (await client.post("/api/v1/jobs", json=run)).json()["id"]
        worker.drain(timeout=30)
        assert (await client.get(f"/api/v1/jobs/{run_id}/output/stdout")).text == "app-key-5a4b us\n"
    finally:
        worker.shutdown()


def test_server_settings_cannot_be_passed_to_jobs() -> None:
    with pytest.raises(pydantic.ValidationError, match="HEADWATER_DATABASE_URL.*jobs never get those"):
        Settings(jobs_pass_env="SITE_PROXY,HEADWATER_DATABASE_URL")  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError, match="not a variable name"):
        Settings(jobs_pass_env="A=B")  # type: ignore[arg-type]
    assert Settings(jobs_pass_env="HTTP_PROXY, NO_PROXY").jobs_pass_env == ["HTTP_PROXY", "NO_PROXY"]  # type: ignore[arg-type]
