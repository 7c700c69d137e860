"""The tokens API: made with the secret shown once, listed without it, scoped no wider than the maker, revoked at
once; and who am I."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from headwater.auth.actions import Role

pytestmark = pytest.mark.anyio

Mint = Callable[..., str]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_a_user_makes_a_token_sees_its_secret_once_uses_it_and_revokes_it(
    auth_client: httpx.AsyncClient, mint: Mint
) -> None:
    alice = mint("alice", roles=(Role.EDITOR,), groups=("analysts",))
    made = await auth_client.post("/api/v1/tokens", json={"label": "laptop"}, headers=bearer(alice))
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    assert secret.startswith("hw_") and made.json()["principal_name"] == "alice"

    me = (await auth_client.get("/api/v1/me", headers=bearer(secret))).json()
    assert me["name"] == "alice" and me["groups"] == ["analysts"] and "catalog.edit" in me["actions"]

    listed = (await auth_client.get("/api/v1/tokens", headers=bearer(alice))).json()
    assert {t["label"] for t in listed["items"]} == {"laptop", "test"}
    assert secret not in str(listed) and "secret" not in listed["items"][0]

    token_id = made.json()["id"]
    assert (await auth_client.delete(f"/api/v1/tokens/{token_id}", headers=bearer(alice))).status_code == 200
    assert (await auth_client.get("/api/v1/me", headers=bearer(secret))).status_code == 401


async def test_a_token_cannot_carry_permissions_or_namespaces_beyond_its_maker(
    auth_client: httpx.AsyncClient, mint: Mint
) -> None:
    viewer = mint("victor", roles=(Role.VIEWER,))
    refused = await auth_client.post(
        "/api/v1/tokens", json={"label": "x", "scopes": ["catalog.edit"]}, headers=bearer(viewer)
    )
    assert refused.status_code == 403 and "catalog.edit" in refused.json()["error"]["message"]

    # A token scoped to self cannot make an unscoped one: the new token gets the maker's scopes.
    narrow = mint("erin", roles=(Role.EDITOR,), scopes=())
    made = await auth_client.post("/api/v1/tokens", json={"label": "child"}, headers=bearer(narrow))
    assert made.status_code == 201 and made.json()["scopes"] == []
    child = (await auth_client.get("/api/v1/me", headers=bearer(made.json()["secret"]))).json()
    assert child["actions"] == ["self"]

    producer = mint("pat", roles=(Role.EDITOR,), namespaces=("airflow",))
    wider = await auth_client.post(
        "/api/v1/tokens", json={"label": "w", "namespaces": ["spark"]}, headers=bearer(producer)
    )
    assert wider.status_code == 403 and "spark" in wider.json()["error"]["message"]


async def test_someone_elses_token_is_not_found_but_an_admin_revokes_it(
    auth_client: httpx.AsyncClient, mint: Mint
) -> None:
    alice = mint("alice", roles=(Role.VIEWER,))
    bob = mint("bob", roles=(Role.VIEWER,))
    admin = mint("root", roles=(Role.ADMIN,))
    alices = (await auth_client.get("/api/v1/tokens", headers=bearer(alice))).json()["items"][0]["id"]
    assert (await auth_client.delete(f"/api/v1/tokens/{alices}", headers=bearer(bob))).status_code == 404
    assert (await auth_client.get("/api/v1/tokens?all=true", headers=bearer(bob))).status_code == 403
    assert (await auth_client.delete(f"/api/v1/tokens/{alices}", headers=bearer(admin))).status_code == 200
    assert (await auth_client.get("/api/v1/me", headers=bearer(alice))).status_code == 401
    everyone = (await auth_client.get("/api/v1/tokens?all=true", headers=bearer(admin))).json()
    assert everyone["total"] == 3
