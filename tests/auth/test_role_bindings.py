"""Role bindings: an admin grants a role to a user, a service account or a group, and takes it back; the change
holds at once for cached tokens in this process."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from headwater.auth.actions import Role

pytestmark = pytest.mark.anyio

Mint = Callable[..., str]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_a_group_grant_reaches_its_members_at_once_and_its_revocation_too(
    auth_client: httpx.AsyncClient, mint: Mint
) -> None:
    admin = bearer(mint("root", roles=(Role.ADMIN,)))
    dana = bearer(mint("dana", groups=("data-eng",)))
    assert (await auth_client.get("/api/v1/me", headers=dana)).json()["roles"] == []  # cached now
    binding = {"subject_kind": "group", "subject": "data-eng", "role": "operator"}
    granted = await auth_client.post("/api/v1/role-bindings", json=binding, headers=admin)
    assert granted.status_code == 201 and granted.json()["created_by"] == "root"
    me = (await auth_client.get("/api/v1/me", headers=dana)).json()
    assert me["roles"] == ["operator"] and "jobs.submit" in me["actions"]
    assert (await auth_client.post("/api/v1/role-bindings", json=binding, headers=admin)).status_code == 409

    listed = (await auth_client.get("/api/v1/role-bindings?subject_kind=group", headers=admin)).json()
    assert [(b["subject"], b["role"]) for b in listed["items"]] == [("data-eng", "operator")]
    revoked = await auth_client.delete("/api/v1/role-bindings", params=binding, headers=admin)
    assert revoked.status_code == 200
    assert (await auth_client.get("/api/v1/me", headers=dana)).json()["roles"] == []
    assert (await auth_client.delete("/api/v1/role-bindings", params=binding, headers=admin)).status_code == 404


async def test_only_admins_bind_roles(auth_client: httpx.AsyncClient, mint: Mint) -> None:
    editor = bearer(mint("ed", roles=(Role.EDITOR,)))
    grant = {"subject_kind": "user", "subject": "ed", "role": "admin"}
    assert (await auth_client.post("/api/v1/role-bindings", json=grant, headers=editor)).status_code == 403
    bad = {"subject_kind": "robot", "subject": "x", "role": "admin"}
    admin = bearer(mint("root", roles=(Role.ADMIN,)))
    assert (await auth_client.post("/api/v1/role-bindings", json=bad, headers=admin)).status_code in (400, 422)
