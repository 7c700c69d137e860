"""Jobs run as the principal who submits them, on the clusters and commands open to them, within a per-user limit
of active jobs: with authentication on, real jobs run by the real worker; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from headwater.auth.actions import Role
from headwater.jobs.worker import JobWorker

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

Mint = Callable[..., str]  # the mint fixture of tests/auth/conftest.py


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def auth_worker(auth_app: FastAPI, tmp_path: Path) -> Iterator[JobWorker]:
    """A worker on the authenticated app's database, driven by the test."""
    worker = JobWorker(
        auth_app.state.sessionmaker, data_dir=tmp_path / "data", slots=4, heartbeat_interval=0.2, kill_grace=2.0
    )
    yield worker
    worker.shutdown()


@pytest.fixture
def job_settings(auth_app: FastAPI) -> Iterator[Callable[..., None]]:
    """Change the authenticated app's jobs settings for one test: job_settings(jobs_user_active_limit=1)."""
    original = auth_app.state.settings

    def change(**update: Any) -> None:
        auth_app.state.settings = original.model_copy(update=update)

    yield change
    auth_app.state.settings = original  # (a State is no object monkeypatch can restore)


async def _setup(client: httpx.AsyncClient, admin: str, *, cluster_groups: list[str] | None = None) -> None:
    """The shell cluster (tagged sched:test) and sh command (type:sh) of the jobs tests, made by an admin."""
    cluster = {"name": "local", "type": "shell", "tags": ["sched:test"], "groups": cluster_groups or []}
    r = await client.post("/api/v1/clusters", json=cluster, headers=bearer(admin))
    assert r.status_code == 201, r.text
    command = {"name": "sh", "executable": ["/bin/sh", "-c"], "tags": ["type:sh"]}
    r = await client.post("/api/v1/commands", json=command, headers=bearer(admin))
    assert r.status_code == 201, r.text


def _body(script: str = "true", **extra: Any) -> dict[str, Any]:
    """A job request running ``script`` with /bin/sh -c, naming no user."""
    return {
        "name": "test-job",
        "command_args": [script],
        "cluster_criteria": [["sched:test"]],
        "command_criteria": ["type:sh"],
        **extra,
    }


async def test_an_operators_job_runs_as_them_and_its_environment_names_them(
    auth_client: httpx.AsyncClient, auth_worker: JobWorker, mint: Mint
) -> None:
    await _setup(auth_client, mint("root", roles=(Role.ADMIN,)))
    olive = mint("olive", roles=(Role.OPERATOR,))
    r = await auth_client.post("/api/v1/jobs", json=_body('echo "user=$HEADWATER_JOB_USER"'), headers=bearer(olive))
    assert r.status_code == 202, r.text
    assert r.json()["user"] == "olive"
    job_id = r.json()["id"]
    auth_worker.drain(timeout=30)
    job = (await auth_client.get(f"/api/v1/jobs/{job_id}", headers=bearer(olive))).json()
    assert job["status"] == "SUCCEEDED", job
    assert job["user"] == "olive"
    stdout = await auth_client.get(f"/api/v1/jobs/{job_id}/output/stdout", headers=bearer(olive))
    assert stdout.text.strip() == "user=olive"
    request = (await auth_client.get(f"/api/v1/jobs/{job_id}/request", headers=bearer(olive))).json()
    assert request["user"] == "olive"  # the request as recorded names who ran it


async def test_submitting_as_someone_else_is_refused_for_an_operator_and_allowed_for_an_admin(
    auth_client: httpx.AsyncClient, mint: Mint
) -> None:
    root = mint("root", roles=(Role.ADMIN,))
    await _setup(auth_client, root)
    olive = mint("olive", roles=(Role.OPERATOR,))
    refused = await auth_client.post("/api/v1/jobs", json=_body(user="bob"), headers=bearer(olive))
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "forbidden"
    assert error["detail"] == {"permission": "jobs.submit_as", "field": "user"}
    assert "'olive'" in error["message"] and "'bob'" in error["message"]
    own = await auth_client.post("/api/v1/jobs", json=_body(user="olive"), headers=bearer(olive))
    assert own.status_code == 202 and own.json()["user"] == "olive"  # naming oneself is no submit-as
    as_bob = await auth_client.post("/api/v1/jobs", json=_body(user="bob"), headers=bearer(root))
    assert as_bob.status_code == 202, as_bob.text
    assert as_bob.json()["user"] == "bob"
    listed = (await auth_client.get("/api/v1/jobs", params={"user": "olive"}, headers=bearer(root))).json()
    assert [job["user"] for job in listed["items"]] == ["olive"]  # the refused submission left no job


async def test_a_group_restricted_cluster_is_chosen_only_for_its_members(
    auth_client: httpx.AsyncClient, mint: Mint
) -> None:
    root = mint("root", roles=(Role.ADMIN,))
    await _setup(auth_client, root, cluster_groups=["etl"])
    shown = (await auth_client.get("/api/v1/clusters/local", headers=bearer(root))).json()
    assert shown["groups"] == ["etl"]
    member = mint("mia", roles=(Role.OPERATOR,), groups=("etl",))
    outsider = mint("oscar", roles=(Role.OPERATOR,), groups=("web",))
    chosen = await auth_client.post("/api/v1/jobs", json=_body(), headers=bearer(member))
    assert chosen.status_code == 202 and chosen.json()["cluster"] == "local", chosen.text
    refused = await auth_client.post("/api/v1/jobs", json=_body(), headers=bearer(outsider))
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["detail"]["groups"] == ["etl"] and "'local'" in error["message"]
    # Tags nothing carries are still a job that cannot run (INVALID), not a refusal.
    nowhere = await auth_client.post(
        "/api/v1/jobs", json=_body(cluster_criteria=[["sched:none"]]), headers=bearer(outsider)
    )
    assert nowhere.status_code == 202 and nowhere.json()["status"] == "INVALID"
    # An open cluster with the same tags is the outsider's, always; a member may be given either (the selector
    # chooses among the clusters open to them), and pinning the restricted one by name works for members only.
    r = await auth_client.post(
        "/api/v1/clusters", json={"name": "shared", "type": "shell", "tags": ["sched:test"]}, headers=bearer(root)
    )
    assert r.status_code == 201, r.text
    for _ in range(3):
        outsider_job = await auth_client.post("/api/v1/jobs", json=_body(), headers=bearer(outsider))
        assert outsider_job.status_code == 202 and outsider_job.json()["cluster"] == "shared"
    member_job = await auth_client.post("/api/v1/jobs", json=_body(), headers=bearer(member))
    assert member_job.json()["cluster"] == "local"  # the least loaded of the two open to them (shared holds 3)
    pinned = _body(cluster_criteria=[["headwater.name:local"]])
    assert (await auth_client.post("/api/v1/jobs", json=pinned, headers=bearer(member))).json()["cluster"] == "local"
    admin_job = await auth_client.post("/api/v1/jobs", json=pinned, headers=bearer(root))
    assert admin_job.json()["cluster"] == "local"  # admins may use any
    refused_pin = await auth_client.post("/api/v1/jobs", json=pinned, headers=bearer(outsider))
    assert refused_pin.status_code == 403, refused_pin.text


async def test_a_group_restricted_command_is_refused_to_outsiders(auth_client: httpx.AsyncClient, mint: Mint) -> None:
    root = mint("root", roles=(Role.ADMIN,))
    await _setup(auth_client, root)
    r = await auth_client.patch("/api/v1/commands/sh", json={"groups": ["etl"]}, headers=bearer(root))
    assert r.status_code == 200 and r.json()["groups"] == ["etl"], r.text
    outsider = mint("oscar", roles=(Role.OPERATOR,))
    refused = await auth_client.post("/api/v1/jobs", json=_body(), headers=bearer(outsider))
    assert refused.status_code == 403 and refused.json()["error"]["detail"]["groups"] == ["etl"]
    by_name = mint("oscar", roles=())  # a user listed by name may use it too
    r = await auth_client.patch("/api/v1/commands/sh", json={"groups": ["etl", "oscar"]}, headers=bearer(root))
    assert r.status_code == 200
    allowed = await auth_client.post("/api/v1/jobs", json=_body(), headers=bearer(by_name))
    assert allowed.status_code == 202, allowed.text


async def test_over_the_active_limit_is_429_until_a_job_ends(
    auth_client: httpx.AsyncClient,
    auth_worker: JobWorker,
    mint: Mint,
    job_settings: Callable[..., None],
) -> None:
    job_settings(jobs_user_active_limit=1)
    await _setup(auth_client, mint("root", roles=(Role.ADMIN,)))
    olive = mint("olive", roles=(Role.OPERATOR,))
    first = await auth_client.post("/api/v1/jobs", json=_body(), headers=bearer(olive))
    assert first.status_code == 202, first.text
    refused = await auth_client.post("/api/v1/jobs", json=_body(), headers=bearer(olive))
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) > 0
    error = refused.json()["error"]
    assert error["code"] == "too_many_requests"
    assert "limit of 1" in error["message"] and "HEADWATER_JOBS_USER_ACTIVE_LIMIT" in error["message"]
    assert error["detail"] == {"limit": 1, "active": 1, "user": "olive"}
    other = await auth_client.post("/api/v1/jobs", json=_body(), headers=bearer(mint("otto", roles=(Role.OPERATOR,))))
    assert other.status_code == 202  # the limit is per user
    invalid = await auth_client.post(
        "/api/v1/jobs", json=_body(cluster_criteria=[["sched:none"]]), headers=bearer(olive)
    )
    assert invalid.status_code == 202 and invalid.json()["status"] == "INVALID"  # it ends at once: no slot
    auth_worker.drain(timeout=30)
    ended = (await auth_client.get(f"/api/v1/jobs/{first.json()['id']}", headers=bearer(olive))).json()
    assert ended["status"] == "SUCCEEDED"
    again = await auth_client.post("/api/v1/jobs", json=_body(), headers=bearer(olive))
    assert again.status_code == 202, again.text


async def test_a_groups_override_raises_its_members_limit(
    auth_client: httpx.AsyncClient, mint: Mint, job_settings: Callable[..., None]
) -> None:
    job_settings(jobs_user_active_limit=1, jobs_user_limits=["group:batch=2", "user:solo=0"])
    await _setup(auth_client, mint("root", roles=(Role.ADMIN,)))
    batcher = mint("bea", roles=(Role.OPERATOR,), groups=("batch",))
    solo = mint("solo", roles=(Role.OPERATOR,))
    codes = [(await auth_client.post("/api/v1/jobs", json=_body(), headers=bearer(batcher))).status_code for _ in "abc"]
    assert codes == [202, 202, 429]
    codes = [(await auth_client.post("/api/v1/jobs", json=_body(), headers=bearer(solo))).status_code for _ in "abc"]
    assert codes == [202, 202, 202]  # 0: no limit


async def test_listing_my_jobs(auth_client: httpx.AsyncClient, mint: Mint) -> None:
    await _setup(auth_client, mint("root", roles=(Role.ADMIN,)))
    olive, otto = mint("olive", roles=(Role.OPERATOR,)), mint("otto", roles=(Role.OPERATOR,))
    for token in (olive, otto, olive):
        assert (await auth_client.post("/api/v1/jobs", json=_body(), headers=bearer(token))).status_code == 202
    for params in ({"user": "me"}, {"mine": "true"}, {"mine": "true", "user": "me"}):
        page = (await auth_client.get("/api/v1/jobs", params=params, headers=bearer(otto))).json()
        assert [job["user"] for job in page["items"]] == ["otto"], params
    page = (await auth_client.get("/api/v1/jobs", params={"user": "me"}, headers=bearer(olive))).json()
    assert [job["user"] for job in page["items"]] == ["olive", "olive"]
    both = await auth_client.get("/api/v1/jobs", params={"mine": "true", "user": "olive"}, headers=bearer(otto))
    assert both.status_code == 400 and both.json()["error"]["detail"] == {"field": "user"}
    query = '{ jobs(filter: {user: "me"}) { ... on JobPage { items { user } total } } }'
    answer = (await auth_client.post("/graphql", json={"query": query}, headers=bearer(otto))).json()
    assert answer["data"]["jobs"] == {"items": [{"user": "otto"}], "total": 1}


SUBMIT = """mutation($input: JobSubmitInput!) {
  submitJob(input: $input) { __typename ... on Job { user cluster } ... on Error { code message field } }
}"""


async def test_graphql_submissions_run_as_the_principal(
    auth_client: httpx.AsyncClient, mint: Mint, job_settings: Callable[..., None]
) -> None:
    job_settings(jobs_user_active_limit=1)
    root = mint("root", roles=(Role.ADMIN,))
    await _setup(auth_client, root, cluster_groups=["etl"])
    member = mint("mia", roles=(Role.OPERATOR,), groups=("etl",))
    outsider = mint("oscar", roles=(Role.OPERATOR,))
    job = {"name": "g", "clusterCriteria": [["sched:test"]], "commandCriteria": ["type:sh"], "commandArgs": ["true"]}

    async def submit(token: str, **extra: Any) -> dict[str, Any]:
        r = await auth_client.post(
            "/graphql", json={"query": SUBMIT, "variables": {"input": {**job, **extra}}}, headers=bearer(token)
        )
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()["data"]["submitJob"]
        return answer

    assert await submit(member) == {"__typename": "Job", "user": "mia", "cluster": "local"}
    over = await submit(member)
    assert over["__typename"] == "ConflictError" and over["code"] == "too_many_requests"
    as_bob = await submit(member, user="bob")
    assert as_bob["__typename"] == "ForbiddenError" and "jobs.submit_as" in as_bob["message"]
    closed = await submit(outsider)
    assert closed["__typename"] == "ForbiddenError" and "['etl']" in closed["message"]
    assert await submit(root, user="bob") == {"__typename": "Job", "user": "bob", "cluster": "local"}
