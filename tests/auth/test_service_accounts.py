"""Service accounts: admins make, list and disable them; disabling revokes every token at once; others are
refused."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from headwater.auth.actions import Role

pytestmark = pytest.mark.anyio

Mint = Callable[..., str]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_disabling_a_service_account_revokes_its_tokens_at_once(
    auth_client: httpx.AsyncClient, mint: Mint
) -> None:
    admin = bearer(mint("root", roles=(Role.ADMIN,)))
    made = await auth_client.post(
        "/api/v1/service-accounts", json={"name": "ci", "groups": ["builders"]}, headers=admin
    )
    assert made.status_code == 201 and made.json()["created_by"] == "root"
    token = await auth_client.post("/api/v1/tokens", json={"label": "ci", "service_account": "ci"}, headers=admin)
    secret = token.json()["secret"]
    me = (await auth_client.get("/api/v1/me", headers=bearer(secret))).json()
    assert (me["name"], me["kind"], me["groups"]) == ("ci", "service", ["builders"])

    disabled = await auth_client.post("/api/v1/service-accounts/ci/disable", headers=admin)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert (await auth_client.get("/api/v1/me", headers=bearer(secret))).status_code == 401
    again = await auth_client.post("/api/v1/tokens", json={"label": "x", "service_account": "ci"}, headers=admin)
    assert again.status_code == 409 and "disabled" in again.json()["error"]["message"]
    listed = (await auth_client.get("/api/v1/service-accounts", headers=admin)).json()
    assert [(a["name"], a["disabled"]) for a in listed["items"]] == [("ci", True)]


async def test_only_admins_manage_service_accounts_and_bad_names_are_400s(
    auth_client: httpx.AsyncClient, mint: Mint
) -> None:
    editor = bearer(mint("ed", roles=(Role.EDITOR,)))
    admin = bearer(mint("root", roles=(Role.ADMIN,)))
    refused = await auth_client.post("/api/v1/service-accounts", json={"name": "x"}, headers=editor)
    assert refused.status_code == 403 and refused.json()["error"]["detail"]["permission"] == "admin"
    assert (await auth_client.get("/api/v1/service-accounts", headers=editor)).status_code == 403
    bad = await auth_client.post("/api/v1/service-accounts", json={"name": "Has Space"}, headers=admin)
    assert bad.status_code in (400, 422)
    assert (await auth_client.post("/api/v1/service-accounts/ghost/disable", headers=admin)).status_code == 404
