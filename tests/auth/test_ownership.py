"""Ownership adds to roles: a dataset's owners (a user, or a group they are in) edit its metadata without the
editor role, a job's user kills it and reads it without a role granting that for everyone's jobs; others are
refused with 403, and what does not exist stays 404. REST and GraphQL alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from owned import make_dataset, make_job
from sqlalchemy import Engine

from headwater.auth.actions import Role

pytestmark = pytest.mark.anyio

Mint = Callable[..., str]


def bearer(secret: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **extra}


async def graphql(client: httpx.AsyncClient, secret: str, query: str, **variables: Any) -> dict[str, Any]:
    answer = await client.post("/graphql", json={"query": query, "variables": variables}, headers=bearer(secret))
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


UPDATE = """mutation($id: ID!, $rev: Int!) { updateDataset(id: $id, input: {description: "mine"}, expectedRevision: $rev)
  { __typename ... on Dataset { description } ... on Error { code message } } }"""
KILL = """mutation($id: ID!) { killJob(id: $id) { __typename ... on Job { status } ... on Error { code message } } }"""


async def test_an_owner_without_the_editor_role_edits_their_dataset_and_a_non_owner_viewer_is_refused(
    auth_client: httpx.AsyncClient, engine: Engine, mint: Mint
) -> None:
    dataset_id, etag = make_dataset(engine, owners=("alice",))
    alice = mint("alice", roles=(Role.VIEWER,))
    bob = mint("bob", roles=(Role.VIEWER,))
    url = f"/api/v1/datasets/{dataset_id}"
    refused = await auth_client.patch(url, json={"description": "bob's"}, headers=bearer(bob, **{"If-Match": etag}))
    assert refused.status_code == 403
    assert refused.json()["error"]["detail"] == {"permission": "catalog.edit"}
    assert "shop.orders" in refused.json()["error"]["message"]
    edited = await auth_client.patch(url, json={"description": "alice's"}, headers=bearer(alice, **{"If-Match": etag}))
    assert edited.status_code == 200, edited.text
    assert edited.json()["description"] == "alice's"
    # Ownership is of metadata: deleting the dataset still needs the editor role.
    deleted = await auth_client.delete(url, params={"reason": "mine"}, headers=bearer(alice))
    assert deleted.status_code == 403


async def test_a_group_owner_edits_and_a_missing_dataset_is_404_not_403(
    auth_client: httpx.AsyncClient, engine: Engine, mint: Mint
) -> None:
    dataset_id, etag = make_dataset(engine, owners=("team-payments",))
    carol = mint("carol", roles=(Role.VIEWER,), groups=("team-payments",))
    dave = mint("dave", roles=(Role.VIEWER,), groups=("team-search",))
    url = f"/api/v1/datasets/{dataset_id}"
    assert (
        await auth_client.patch(url, json={"tags": ["x"]}, headers=bearer(dave, **{"If-Match": etag}))
    ).status_code == 403
    edited = await auth_client.patch(url, json={"tags": ["gold"]}, headers=bearer(carol, **{"If-Match": etag}))
    assert edited.status_code == 200 and edited.json()["tags"] == ["gold"]
    missing = await auth_client.patch(
        f"/api/v1/datasets/{dataset_id + 1000}", json={"tags": ["x"]}, headers=bearer(dave, **{"If-Match": etag})
    )
    assert missing.status_code == 404


async def test_a_jobs_user_kills_and_reads_their_own_job_without_a_role_but_not_anothers(
    auth_client: httpx.AsyncClient, engine: Engine, mint: Mint
) -> None:
    mine = make_job(engine, "alice-job", user="alice")
    theirs = make_job(engine, "bob-job", user="bob")
    alice = mint("alice")  # no role at all: only ownership
    for path, permission in [
        ("", "jobs.read"),
        ("/status", "jobs.read"),
        ("/request", "jobs.read"),
        ("/execution", "jobs.read"),
        ("/logs/stdout", "jobs.logs"),
        ("/output", "jobs.logs"),
    ]:
        answer = await auth_client.get(f"/api/v1/jobs/{mine}{path}", headers=bearer(alice))
        assert answer.status_code not in (401, 403), (path, answer.text)
        refused = await auth_client.get(f"/api/v1/jobs/{theirs}{path}", headers=bearer(alice))
        assert refused.status_code == 403 and refused.json()["error"]["detail"] == {"permission": permission}
    assert (await auth_client.delete(f"/api/v1/jobs/{theirs}", headers=bearer(alice))).status_code == 403
    killed = await auth_client.delete(f"/api/v1/jobs/{mine}", headers=bearer(alice))
    assert killed.status_code == 202, killed.text
    assert (await auth_client.delete("/api/v1/jobs/no-such-job", headers=bearer(alice))).status_code == 404
    # Listing everyone's jobs is not ownership: it needs the role.
    assert (await auth_client.get("/api/v1/jobs", headers=bearer(alice))).status_code == 403


async def test_graphql_mutations_honour_ownership_the_same_way(
    auth_client: httpx.AsyncClient, engine: Engine, mint: Mint
) -> None:
    dataset_id, _ = make_dataset(engine, owners=("alice",))
    mine = make_job(engine, "alice-job", user="alice")
    theirs = make_job(engine, "bob-job", user="bob")
    alice, bob = mint("alice", roles=(Role.VIEWER,)), mint("bob", roles=(Role.VIEWER,))
    refused = (await graphql(auth_client, bob, UPDATE, id=str(dataset_id), rev=1))["updateDataset"]
    assert refused["__typename"] == "ForbiddenError" and "catalog.edit" in refused["message"]
    edited = (await graphql(auth_client, alice, UPDATE, id=str(dataset_id), rev=1))["updateDataset"]
    assert edited == {"__typename": "Dataset", "description": "mine"}
    missing = (await graphql(auth_client, alice, UPDATE, id=str(dataset_id + 1000), rev=1))["updateDataset"]
    assert missing["__typename"] == "NotFoundError"
    assert (await graphql(auth_client, alice, KILL, id=theirs))["killJob"]["__typename"] == "ForbiddenError"
    assert (await graphql(auth_client, alice, KILL, id=mine))["killJob"] == {"__typename": "Job", "status": "KILLED"}
    assert (await graphql(auth_client, alice, KILL, id="nope"))["killJob"]["__typename"] == "NotFoundError"
