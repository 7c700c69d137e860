"""Users kill and read the logs of their own jobs, admins of all: an operator kills only their own jobs, and a
job's logs and output files (REST, the UI's job page) are its user's and admins' alone, while what the job is
(status, command, cluster) stays readable by every role. REST, GraphQL and the UI alike."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from graphql import GraphQLObjectType, build_schema
from owned import make_job
from sqlalchemy import Engine

from headwater.auth.actions import Role
from headwater.graphql.schema import schema
from headwater.jobs.worker import JobWorker

pytestmark = pytest.mark.anyio

Mint = Callable[..., str]  # the mint fixture of tests/auth/conftest.py
KILL = """mutation($id: ID!) { killJob(id: $id) { __typename ... on Job { status } ... on Error { code message } } }"""
JOB = """query($id: ID!) { job(id: $id) { __typename ... on Job { user status cluster command }
  ... on Error { code message } } }"""


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def graphql(client: httpx.AsyncClient, secret: str, query: str, **variables: Any) -> dict[str, Any]:
    answer = await client.post("/graphql", json={"query": query, "variables": variables}, headers=bearer(secret))
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


async def test_an_operator_kills_their_own_job_but_not_anothers_and_an_admin_kills_anyones(
    auth_client: httpx.AsyncClient, engine: Engine, mint: Mint
) -> None:
    olives, ottos, bobs = (make_job(engine, f"{user}-job", user=user) for user in ("olive", "otto", "bob"))
    olive, otto = mint("olive", roles=(Role.OPERATOR,)), mint("otto", roles=(Role.OPERATOR,))
    root = mint("root", roles=(Role.ADMIN,))

    refused = await auth_client.delete(f"/api/v1/jobs/{olives}", headers=bearer(otto))
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["detail"] == {"permission": "jobs.kill"}
    assert "'otto'" in refused.json()["error"]["message"] and olives in refused.json()["error"]["message"]
    still = (await auth_client.get(f"/api/v1/jobs/{olives}", headers=bearer(otto))).json()
    assert still["status"] != "KILLED"  # the refusal changed nothing, and otto still sees the job

    own = await auth_client.delete(f"/api/v1/jobs/{olives}", headers=bearer(olive))
    assert own.status_code == 202 and own.json()["status"] == "KILLED", own.text
    anyones = await auth_client.delete(f"/api/v1/jobs/{bobs}", headers=bearer(root))
    assert anyones.status_code == 202 and anyones.json()["status"] == "KILLED", anyones.text

    # GraphQL's killJob decides the same way, as typed results.
    theirs = (await graphql(auth_client, olive, KILL, id=ottos))["killJob"]
    assert theirs["__typename"] == "ForbiddenError" and "jobs.kill" in theirs["message"]
    assert (await graphql(auth_client, otto, KILL, id=ottos))["killJob"] == {"__typename": "Job", "status": "KILLED"}
    again = make_job(engine, "otto-again", user="otto")
    assert (await graphql(auth_client, root, KILL, id=again))["killJob"] == {"__typename": "Job", "status": "KILLED"}


async def test_a_viewer_is_refused_anothers_job_output_with_the_permission_named_and_a_missing_job_is_404(
    auth_client: httpx.AsyncClient, engine: Engine, mint: Mint
) -> None:
    olives = make_job(engine, "olive-job", user="olive")
    vera = mint("vera", roles=(Role.VIEWER,))
    for path in ("/logs/stdout", "/logs/stderr", "/output", "/output/stdout", "/logs-archive"):
        refused = await auth_client.get(f"/api/v1/jobs/{olives}{path}", headers=bearer(vera))
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"]["detail"] == {"permission": "jobs.logs"}, path
    for path in ("", "/status", "/request", "/execution"):
        assert (await auth_client.get(f"/api/v1/jobs/{olives}{path}", headers=bearer(vera))).status_code == 200
    missing = await auth_client.get("/api/v1/jobs/no-such-job/logs/stdout", headers=bearer(vera))
    assert missing.status_code == 404


@pytest.fixture
def auth_worker(auth_app: FastAPI, tmp_path: Path) -> Iterator[JobWorker]:
    """A worker on the authenticated app's database, driven by the test."""
    worker = JobWorker(
        auth_app.state.sessionmaker, data_dir=tmp_path / "data", slots=2, heartbeat_interval=0.2, kill_grace=2.0
    )
    yield worker
    worker.shutdown()


@pytest.mark.integration
async def test_only_a_jobs_user_and_admins_read_its_logs_and_output_and_every_role_reads_what_it_is(
    auth_client: httpx.AsyncClient, auth_worker: JobWorker, mint: Mint
) -> None:
    root = mint("root", roles=(Role.ADMIN,))
    for path, body in [
        ("/api/v1/clusters", {"name": "local", "type": "shell", "tags": ["sched:test"]}),
        ("/api/v1/commands", {"name": "sh", "executable": ["/bin/sh", "-c"], "tags": ["type:sh"]}),
    ]:
        assert (await auth_client.post(path, json=body, headers=bearer(root))).status_code == 201
    olive = mint("olive", roles=(Role.OPERATOR,))
    job = {
        "name": "secretive",
        # The logs' words are made by the job, so its arguments (shown to every role) do not hold them.
        "command_args": ["printf 'olive-%s\\n' says-hush; printf 'olive-%s\\n' warns >&2; echo kept > result.txt"],
        "cluster_criteria": [["sched:test"]],
        "command_criteria": ["type:sh"],
    }
    submitted = await auth_client.post("/api/v1/jobs", json=job, headers=bearer(olive))
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    auth_worker.drain(timeout=30)
    vera, otto = mint("vera", roles=(Role.VIEWER,)), mint("otto", roles=(Role.OPERATOR,))

    for reader in (olive, root):
        stdout = await auth_client.get(f"/api/v1/jobs/{job_id}/logs/stdout", headers=bearer(reader))
        assert stdout.status_code == 200 and stdout.text == "olive-says-hush\n", stdout.text
        files = await auth_client.get(f"/api/v1/jobs/{job_id}/output", headers=bearer(reader))
        assert "result.txt" in {entry["path"] for entry in files.json()}
        kept = await auth_client.get(f"/api/v1/jobs/{job_id}/output/result.txt", headers=bearer(reader))
        assert kept.text == "kept\n"
    for outsider in (vera, otto):
        for path in ("/logs/stdout", "/output", "/output/result.txt"):
            refused = await auth_client.get(f"/api/v1/jobs/{job_id}{path}", headers=bearer(outsider))
            assert refused.status_code == 403 and "olive-says-hush" not in refused.text, (path, refused.text)
        # What the job is stays readable: REST and GraphQL.
        shown = (await auth_client.get(f"/api/v1/jobs/{job_id}", headers=bearer(outsider))).json()
        assert (shown["status"], shown["cluster"], shown["command"]) == ("SUCCEEDED", "local", "sh")
        answer = (await graphql(auth_client, outsider, JOB, id=job_id))["job"]
        assert answer == {
            "__typename": "Job",
            "user": "olive",
            "status": "SUCCEEDED",
            "cluster": "local",
            "command": "sh",
        }

    # The UI's job page: the tails for its user and admins; for a viewer the job without them, and why.
    for reader in (olive, root):
        page = await auth_client.get(f"/ui/jobs/{job_id}", headers=bearer(reader))
        assert page.status_code == 200
        assert "olive-says-hush" in page.text and "olive-warns" in page.text
        assert 'id="logs-hidden"' not in page.text and f"/api/v1/jobs/{job_id}/output" in page.text
    page = await auth_client.get(f"/ui/jobs/{job_id}", headers=bearer(vera))
    assert page.status_code == 200
    assert "SUCCEEDED" in page.text and "secretive" in page.text  # the job itself
    assert "olive-says-hush" not in page.text and "olive-warns" not in page.text
    assert 'id="logs-hidden"' in page.text and "<code>jobs.logs</code>" in page.text
    assert f"/api/v1/jobs/{job_id}/output" not in page.text and "/logs/stdout" not in page.text


def test_graphql_answers_no_job_logs_or_output_files() -> None:
    """GraphQL's jobs carry what a job is, never its logs or files; a field that did would need jobs.logs and its
    job's ownership decided, as REST's routes and the UI's page do (docs/security/jobs.md)."""
    built = build_schema(schema.as_str())
    telling = {"log", "logs", "stdout", "stderr", "output", "file", "files", "dir"}

    def words(name: str) -> set[str]:
        return {word.lower() for word in re.findall(r"[a-z]+|[A-Z][a-z]*", name)}

    fields = [
        name
        for type_name in ("Job", "JobAttempt", "JobTransition", "JobPage")
        for name in cast(GraphQLObjectType, built.get_type(type_name)).fields
    ]
    assert built.query_type is not None
    fields += list(built.query_type.fields)
    assert [name for name in fields if words(name) & telling] == []
