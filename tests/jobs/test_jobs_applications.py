"""Applications: CRUD, the ordered list a command needs, and their files and environment placed in each
job's directory by the worker; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from jobs_helpers import job_body, shell_setup

from headwater.jobs.worker import JobWorker

pytestmark = pytest.mark.anyio


async def test_application_crud_and_command_links(client: httpx.AsyncClient, tmp_path: Path) -> None:
    lib = tmp_path / "lib.jar"
    lib.write_text("jar")
    r = await client.post(
        "/api/v1/applications",
        json={"name": "spark-3", "version": "3.5", "type": "spark", "tags": ["type:spark"], "dependencies": [str(lib)]},
    )
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/api/v1/applications/spark-3"
    assert r.json()["status"] == "ACTIVE" and r.json()["dependencies"] == [str(lib)]
    assert (await client.post("/api/v1/applications", json={"name": "spark-3"})).status_code == 409
    for bad in (
        {"name": "rel", "dependencies": ["lib.jar"]},
        {"name": "dots", "configs": ["/etc/../etc/passwd"]},
        {"name": "env", "environment": {"1BAD": "x"}},
        {"name": "twice", "dependencies": ["/a/x.jar", "/b/x.jar"]},
        {"name": "st", "status": "GONE"},
    ):
        answer = await client.post("/api/v1/applications", json=bad)
        assert answer.status_code == 422, (bad, answer.text)
    await client.post("/api/v1/applications", json={"name": "hadoop", "configs": [f"file://{tmp_path}"]})

    command = {"name": "c", "executable": ["/bin/true"], "applications": ["hadoop", "spark-3"]}
    created = await client.post("/api/v1/commands", json=command)
    assert created.status_code == 201 and created.json()["applications"] == ["hadoop", "spark-3"]
    unknown = await client.post("/api/v1/commands", json={**command, "name": "d", "applications": ["nope"]})
    assert unknown.status_code == 400 and "'nope'" in unknown.json()["error"]["message"]
    assert (await client.get("/api/v1/commands/d")).status_code == 404  # nothing half-written
    twice = await client.post("/api/v1/commands", json={**command, "name": "e", "applications": ["hadoop", "hadoop"]})
    assert twice.status_code == 422
    reordered = await client.patch("/api/v1/commands/c", json={"applications": ["spark-3"]})
    assert reordered.json()["applications"] == ["spark-3"]
    assert (await client.get("/api/v1/commands")).json()["items"][0]["applications"] == ["spark-3"]

    in_use = await client.delete("/api/v1/applications/spark-3")
    assert in_use.status_code == 409 and "'c'" in in_use.json()["error"]["message"]
    patched = await client.patch("/api/v1/applications/spark-3", json={"status": "DEPRECATED", "version": "3.6"})
    assert patched.json()["status"] == "DEPRECATED" and patched.json()["version"] == "3.6"
    page = (await client.get("/api/v1/applications", params={"limit": 1})).json()
    assert page["total"] == 2 and [a["name"] for a in page["items"]] == ["hadoop"]
    assert (await client.delete("/api/v1/applications/hadoop")).status_code == 204
    assert (await client.get("/api/v1/applications/hadoop")).status_code == 404
    await client.delete("/api/v1/commands/c")
    assert (await client.delete("/api/v1/applications/spark-3")).status_code == 204


async def test_job_gets_application_files_and_environment(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    await shell_setup(client)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "site.xml").write_text("<conf/>")
    tool = tmp_path / "tool.sh"
    tool.write_text("echo tool-ran")
    await client.post(
        "/api/v1/applications",
        json={
            "name": "tools",
            "dependencies": [str(tool)],
            "configs": [f"file://{conf}"],
            "environment": {"TOOL_HOME": "{app_dir}", "SHARED": "from-app"},
        },
    )
    await client.post(
        "/api/v1/commands",
        json={"name": "sh-tools", "executable": ["/bin/sh", "-c"], "tags": ["type:tools"], "applications": ["tools"]},
    )
    script = 'sh "$TOOL_HOME/tool.sh"; cat "$TOOL_HOME/conf/site.xml"; echo " $SHARED $HEADWATER_APPLICATIONS_DIR"'
    body = job_body(script, command_criteria=["type:tools"], environment={"SHARED": "from-job"})
    job_id = (await client.post("/api/v1/jobs", json=body)).json()["id"]
    worker.drain(timeout=20)
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "SUCCEEDED", job
    stdout = (await client.get(f"/api/v1/jobs/{job_id}/output/stdout")).text
    app_root = worker.jobs_dir / job_id / "applications"
    assert stdout == f"tool-ran\n<conf/> from-job {app_root}\n"  # the job's own environment wins
    listing = {e["path"] for e in (await client.get(f"/api/v1/jobs/{job_id}/output")).json()}
    assert {"applications/tools/tool.sh", "applications/tools/conf/site.xml"} <= listing


async def test_inactive_or_missing_application_fails_the_job_with_the_reason(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    await shell_setup(client)
    await client.post("/api/v1/applications", json={"name": "gone", "dependencies": [str(tmp_path / "none.jar")]})
    await client.post("/api/v1/applications", json={"name": "off", "status": "INACTIVE"})
    for name, app in (("needs-gone", "gone"), ("needs-off", "off")):
        await client.post(
            "/api/v1/commands",
            json={"name": name, "executable": ["/bin/true"], "tags": [f"type:{name}"], "applications": [app]},
        )
    missing = (await client.post("/api/v1/jobs", json=job_body("x", command_criteria=["type:needs-gone"]))).json()
    inactive = (await client.post("/api/v1/jobs", json=job_body("x", command_criteria=["type:needs-off"]))).json()
    worker.drain(timeout=20)
    missing = (await client.get(f"/api/v1/jobs/{missing['id']}")).json()
    assert missing["status"] == "FAILED" and "none.jar" in missing["status_message"], missing
    assert "'gone'" in missing["status_message"]
    inactive = (await client.get(f"/api/v1/jobs/{inactive['id']}")).json()
    assert inactive["status"] == "FAILED" and "'off', which is INACTIVE" in inactive["status_message"], inactive


async def test_a_job_may_name_its_own_applications(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    await shell_setup(client)
    for name in ("base", "extra"):
        (tmp_path / f"{name}.txt").write_text(name)
        await client.post(
            "/api/v1/applications",
            json={"name": name, "dependencies": [str(tmp_path / f"{name}.txt")], "environment": {"APP": name}},
        )
    await client.post(
        "/api/v1/commands",
        json={"name": "sh-apps", "executable": ["/bin/sh", "-c"], "tags": ["type:apps"], "applications": ["base"]},
    )
    script = 'ls "$HEADWATER_APPLICATIONS_DIR"; echo "$APP"'
    default = (await client.post("/api/v1/jobs", json=job_body(script, command_criteria=["type:apps"]))).json()
    override = await client.post(
        "/api/v1/jobs", json=job_body(script, command_criteria=["type:apps"], applications=["extra"])
    )
    assert override.status_code == 202, override.text
    unknown = await client.post("/api/v1/jobs", json=job_body(script, applications=["missing"]))
    assert unknown.status_code == 400 and "'missing'" in unknown.json()["error"]["message"]
    assert (await client.post("/api/v1/jobs", json=job_body(script, applications=["a", "a"]))).status_code == 422
    worker.drain(timeout=20)
    assert (await client.get(f"/api/v1/jobs/{default['id']}/output/stdout")).text == "base\nbase\n"
    assert (await client.get(f"/api/v1/jobs/{override.json()['id']}/output/stdout")).text == "extra\nextra\n"
    request = (await client.get(f"/api/v1/jobs/{override.json()['id']}/request")).json()
    assert request["applications"] == ["extra"]


@pytest.mark.single_backend("postgres")
async def test_a_value_postgresql_cannot_store_is_refused_with_400_not_500(client: httpx.AsyncClient) -> None:
    # Validation lets a NUL character through here; PostgreSQL's text cannot hold one.
    answer = await client.post("/api/v1/applications", json={"name": "nul", "description": "before\u0000after"})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_value" and "NUL" in error["message"]
    assert (await client.get("/api/v1/applications/nul")).status_code == 404
