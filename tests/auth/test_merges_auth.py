"""Merging two datasets changes what every name reaches: only admins may, and the audit log says who merged
what and who undid it. An editor who owns both datasets is refused."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from headwater.auth.actions import Role

pytestmark = pytest.mark.anyio

Mint = Callable[..., str]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_only_admins_merge_and_the_audit_log_names_them(auth_client: httpx.AsyncClient, mint: Mint) -> None:
    admin = mint("root", roles=(Role.ADMIN,))
    editor = mint("erin", roles=(Role.EDITOR,))
    ids = []
    for namespace in ("hive://metastore:9083", "s3://lake"):
        body = {"name": "sales.orders", "namespace": namespace, "fields": [{"name": "id", "type": "bigint"}]}
        made = await auth_client.post("/api/v1/datasets", json=body, headers=bearer(editor))
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    into, duplicate = ids

    refused = await auth_client.post(
        f"/api/v1/datasets/{into}/merges", json={"duplicate_id": duplicate}, headers=bearer(editor)
    )
    assert refused.status_code == 403
    listing = await auth_client.get(f"/api/v1/datasets/{into}/merges", headers=bearer(editor))
    assert listing.status_code == 403
    merged = await auth_client.post(
        f"/api/v1/datasets/{into}/merges", json={"duplicate_id": duplicate}, headers=bearer(admin)
    )
    assert merged.status_code == 201, merged.text
    assert merged.json()["merged_by"] == "root"
    merge_id = merged.json()["id"]
    refused_undo = await auth_client.post(f"/api/v1/dataset-merges/{merge_id}/undo", headers=bearer(editor))
    assert refused_undo.status_code == 403
    undone = await auth_client.post(f"/api/v1/dataset-merges/{merge_id}/undo", headers=bearer(admin))
    assert undone.status_code == 200 and undone.json()["undone_by"] == "root"

    entries = (await auth_client.get("/api/v1/audit", params={"actor": "root"}, headers=bearer(admin))).json()
    seen = [(e["method"], e["target_kind"], e["target"], e["outcome"], e["summary"]) for e in entries["items"]]
    assert seen[:2] == [
        ("POST", "dataset_merge", str(merge_id), "ok", {"undone": True}),
        ("POST", "dataset", str(into), "ok", {"merged": duplicate, "merge": merge_id}),
    ]
    refusals = (
        await auth_client.get("/api/v1/audit", params={"actor": "erin", "outcome": "refused"}, headers=bearer(admin))
    ).json()
    assert refusals["total"] == 2  # the merge and the undo (a refused read is not recorded)
