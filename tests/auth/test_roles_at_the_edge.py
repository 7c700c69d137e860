"""Each role at every edge, generated from the route inventory: anonymous is 401 on every API route that is not
public and is sent to sign in from every UI page; each role passes the routes its actions cover and is refused
the others with 403 naming the permission; and the real requests of each role succeed on a real database."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from owned import make_dataset, make_job
from sqlalchemy import Engine

from headwater.api.auth import LOGIN_PATH, declared_actions, routes_of
from headwater.auth.actions import ROLE_ACTIONS, Action, Role

pytestmark = pytest.mark.anyio

Mint = Callable[..., str]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def inventory(app: FastAPI) -> list[tuple[str, str, Action]]:
    """(method, path template, action) of every route with a method, from the app itself."""
    return [
        (method, route.path, declared_actions(route)[0])
        for route in routes_of(app.routes)
        for method in sorted(route.methods or ())
        if method in METHODS
    ]


def concrete(template: str, *, dataset_id: int, job_id: str) -> str:
    """A real URL of a route: its parameters filled with things that exist."""
    values = {
        "dataset_id": str(dataset_id),
        "job_id": job_id,
        "name": "manual",
        "run_id": "1",
        "version": "1",
        "stream": "stdout",
        "path": "out.txt",
        "level": "dataset",
        "edge_id": "1",
        "token_id": "999999",  # not the caller's own: revoking that would end the walk
    }
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "1"), template)


async def call(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str] | None = None) -> Any:
    body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return await client.request(method, url, headers=headers, **body)  # type: ignore[arg-type]


async def test_anonymous_is_401_on_every_api_route_and_sent_to_sign_in_from_every_ui_page(
    auth_app: FastAPI, auth_client: httpx.AsyncClient, engine: Engine
) -> None:
    dataset_id, _ = make_dataset(engine)
    job_id = make_job(engine, "anon-job", user="alice")
    checked = 0
    for method, template, action in inventory(auth_app):
        url = concrete(template, dataset_id=dataset_id, job_id=job_id)
        answer = await call(auth_client, method, url)
        if template.startswith("/ui") and method == "POST":
            # A UI form (signing out, editing, killing, tokens) needs the page's CSRF token before anything else,
            # and this request does not carry one.
            assert answer.status_code == 403 and answer.json()["error"]["code"] == "csrf_failed", (method, url)
        elif action is Action.PUBLIC:
            assert answer.status_code not in (401, 403), (method, url, answer.text)
        elif template.startswith("/ui"):
            assert answer.status_code == 303, (method, url)
            assert answer.headers["location"].startswith(f"{LOGIN_PATH}?next=%2Fui"), answer.headers["location"]
        else:
            assert answer.status_code == 401, (method, url, answer.text)
            assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="headwater"')
            assert answer.json()["error"]["code"] == "unauthenticated"
        checked += 1
    assert checked > 60


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_passes_what_it_is_granted_and_is_refused_the_rest_naming_the_permission(
    role: Role, auth_app: FastAPI, auth_client: httpx.AsyncClient, engine: Engine, mint: Mint
) -> None:
    dataset_id, _ = make_dataset(engine)
    # Someone else's job: a role alone decides, not ownership.
    job_id = make_job(engine, "other-job", user="someone-else")
    token = bearer(mint(f"{role.value}-user", roles=(role,)))
    granted = ROLE_ACTIONS[role] | {Action.PUBLIC, Action.SELF}
    for method, template, action in inventory(auth_app):
        url = concrete(template, dataset_id=dataset_id, job_id=job_id)
        answer = await call(auth_client, method, url, token)
        if action in granted:
            assert answer.status_code not in (401, 403), (role, method, url, answer.text)
        else:
            assert answer.status_code == 403, (role, method, url, answer.text)
            assert answer.json()["error"]["detail"] == {"permission": action.value}, (role, method, url)


async def test_a_viewer_reads_and_is_refused_writes_with_the_permission_named(
    auth_client: httpx.AsyncClient, engine: Engine, mint: Mint
) -> None:
    dataset_id, etag = make_dataset(engine)
    viewer = bearer(mint("vera", roles=(Role.VIEWER,)))
    read = await auth_client.get(f"/api/v1/datasets/{dataset_id}", headers=viewer)
    assert read.status_code == 200 and read.json()["name"] == "shop.orders"
    assert (
        await auth_client.get("/api/v1/lineage/graph", params={"dataset_id": dataset_id}, headers=viewer)
    ).status_code == 200
    assert (await auth_client.get("/api/v1/jobs", headers=viewer)).status_code == 200
    edit = await auth_client.patch(
        f"/api/v1/datasets/{dataset_id}", json={"description": "x"}, headers={**viewer, "If-Match": etag}
    )
    assert edit.status_code == 403
    assert "'catalog.edit'" in edit.json()["error"]["message"] and "vera" in edit.json()["error"]["message"]
    sql = {"sql": "INSERT INTO b SELECT a FROM a", "apply": True}
    assert (
        await auth_client.post("/api/v1/lineage/sql", json={**sql, "apply": False}, headers=viewer)
    ).status_code == 200
    refused = await auth_client.post("/api/v1/lineage/sql", json=sql, headers=viewer)
    assert refused.status_code == 403 and refused.json()["error"]["detail"] == {"permission": "lineage.write"}


async def test_an_editor_edits_metadata_and_registers_datasets_but_runs_no_jobs(
    auth_client: httpx.AsyncClient, engine: Engine, mint: Mint
) -> None:
    dataset_id, etag = make_dataset(engine)
    editor = bearer(mint("eddie", roles=(Role.EDITOR,)))
    edit = await auth_client.patch(
        f"/api/v1/datasets/{dataset_id}", json={"description": "orders"}, headers={**editor, "If-Match": etag}
    )
    assert edit.status_code == 200 and edit.json()["description"] == "orders"
    created = await auth_client.post(
        "/api/v1/datasets", json={"name": "shop.refunds", "fields": [{"name": "id", "type": "int"}]}, headers=editor
    )
    assert created.status_code == 201, created.text
    assert (
        await auth_client.post("/api/v1/sources", json={"name": "x", "kind": "manual"}, headers=editor)
    ).status_code == 403


async def test_an_operator_submits_and_kills_jobs(auth_client: httpx.AsyncClient, engine: Engine, mint: Mint) -> None:
    make_job(engine, "setup", user="someone")  # registers the shell cluster and command
    operator = bearer(mint("olga", roles=(Role.OPERATOR,)))
    body = {
        "name": "nightly",
        "user": "olga",
        "command_args": ["true"],
        "cluster_criteria": [["sched:test"]],
        "command_criteria": ["type:sh"],
    }
    submitted = await auth_client.post("/api/v1/jobs", json=body, headers=operator)
    assert submitted.status_code == 202, submitted.text
    killed = await auth_client.delete(f"/api/v1/jobs/{submitted.json()['id']}", headers=operator)
    assert killed.status_code == 202, killed.text
    assert (
        await auth_client.post("/api/v1/clusters", json={"name": "c", "type": "shell"}, headers=operator)
    ).status_code == 403


async def test_an_admin_does_everything(auth_client: httpx.AsyncClient, engine: Engine, mint: Mint) -> None:
    dataset_id, etag = make_dataset(engine)
    admin = bearer(mint("root", roles=(Role.ADMIN,)))
    cluster = await auth_client.post("/api/v1/clusters", json={"name": "c", "type": "shell"}, headers=admin)
    assert cluster.status_code == 201, cluster.text
    edit = await auth_client.patch(
        f"/api/v1/datasets/{dataset_id}", json={"tags": ["pii"]}, headers={**admin, "If-Match": etag}
    )
    assert edit.status_code == 200
    job_id = make_job(engine, "someone-elses", user="someone")
    assert (await auth_client.delete(f"/api/v1/jobs/{job_id}", headers=admin)).status_code == 202
    assert (await auth_client.get("/api/v1/sources/manual/syncs", headers=admin)).status_code == 200
