"""The audit log: every write records who, what, on what and its outcome (refusals and failures too); a
rolled-back change leaves no "ok" entry; reads are not recorded; no secret appears in an entry."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from owned import make_job
from sqlalchemy import Engine

from headwater.auth.actions import Role

pytestmark = pytest.mark.anyio

Mint = Callable[..., str]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_the_audit_log_shows_who_did_what_with_its_outcome(auth_client: httpx.AsyncClient, mint: Mint) -> None:
    admin = mint("root", roles=(Role.ADMIN,))
    viewer = mint("victor", roles=(Role.VIEWER,))
    made = await auth_client.post("/api/v1/service-accounts", json={"name": "airflow"}, headers=bearer(admin))
    assert made.status_code == 201
    refused = await auth_client.post("/api/v1/service-accounts", json={"name": "evil"}, headers=bearer(viewer))
    assert refused.status_code == 403
    duplicate = await auth_client.post("/api/v1/service-accounts", json={"name": "airflow"}, headers=bearer(admin))
    assert duplicate.status_code == 409
    anonymous = await auth_client.post("/api/v1/tokens", json={"label": "x"})
    assert anonymous.status_code == 401
    token = await auth_client.post(
        "/api/v1/tokens", json={"label": "dag", "service_account": "airflow"}, headers=bearer(admin)
    )
    secret = token.json()["secret"]
    await auth_client.get("/api/v1/me", headers=bearer(admin))  # a read: not recorded

    page = (await auth_client.get("/api/v1/audit", headers=bearer(admin))).json()
    seen = [(e["actor"], e["method"], e["target"], e["outcome"]) for e in page["items"]]
    assert seen == [
        ("root", "POST", f"token:{token.json()['id']}", "ok"),
        ("anonymous", "POST", "/api/v1/tokens", "refused"),
        ("root", "POST", "/api/v1/service-accounts", "failed"),
        ("victor", "POST", "/api/v1/service-accounts", "refused"),
        ("root", "POST", "service_account:airflow", "ok"),
    ]
    assert page["items"][0]["action"] == "self" and page["items"][3]["action"] == "admin"
    assert page["items"][0]["request_id"] == token.headers["X-Request-Id"]
    assert page["items"][1]["summary"] == {"status": 401, "credential": "none"}
    assert secret not in str(page) and secret[:20] not in str(page)

    refusals = (await auth_client.get("/api/v1/audit?outcome=refused", headers=bearer(admin))).json()
    assert [e["actor"] for e in refusals["items"]] == ["anonymous", "victor"]
    by_actor = (await auth_client.get("/api/v1/audit?actor=victor", headers=bearer(admin))).json()
    assert by_actor["total"] == 1
    first = (await auth_client.get("/api/v1/audit?limit=2", headers=bearer(admin))).json()
    second = (
        await auth_client.get(f"/api/v1/audit?limit=2&cursor={first['next_cursor']}", headers=bearer(admin))
    ).json()
    assert [e["id"] for e in first["items"] + second["items"]] == [e["id"] for e in page["items"][:4]]
    assert (await auth_client.get("/api/v1/audit", headers=bearer(viewer))).status_code == 403


async def test_a_write_that_rolls_back_leaves_a_failed_entry_and_no_ok_one(
    auth_client: httpx.AsyncClient, mint: Mint
) -> None:
    admin = mint("root", roles=(Role.ADMIN,))
    # The dataset's source does not exist: the route's transaction rolls back after it began.
    answer = await auth_client.post(
        "/api/v1/role-bindings",
        json={"subject_kind": "service_account", "subject": "ghost", "role": "editor"},
        headers=bearer(admin),
    )
    assert answer.status_code == 404
    entries = (await auth_client.get("/api/v1/audit", headers=bearer(admin))).json()["items"]
    assert [(e["outcome"], e["summary"].get("status")) for e in entries] == [("failed", 404)]


async def test_a_graphql_mutation_is_audited_and_a_query_is_not(
    auth_client: httpx.AsyncClient, mint: Mint, engine: Engine
) -> None:
    make_job(engine, "alices-job", user="alice")  # someone else's: the viewer is refused, not told it is missing
    admin = mint("root", roles=(Role.ADMIN,))
    viewer = mint("victor", roles=(Role.VIEWER,))
    query = {"query": "{ __typename }"}
    assert (await auth_client.post("/graphql", json=query, headers=bearer(viewer))).status_code == 200
    mutation = {"query": 'mutation { killJob(id: "alices-job") { __typename } }'}
    answer = await auth_client.post("/graphql", json=mutation, headers=bearer(viewer))
    assert answer.status_code == 200, answer.text
    entries = (await auth_client.get("/api/v1/audit", headers=bearer(admin))).json()["items"]
    assert [(e["actor"], e["target_kind"], e["target"], e["outcome"]) for e in entries] == [
        ("victor", "graphql", "killJob", "refused")
    ]
