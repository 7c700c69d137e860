"""Two catalogs federate one table: a Hive-facing Iceberg catalog and the Polaris endpoint the streaming team uses
list the same ``warehouse.sales.orders``, each under its own namespace, so the catalog holds two datasets. An
admin merges them; the next syncs of both sources keep them one (a source still listing the merged dataset does
not bring it back), until the merge is undone. Real syncs of a real Iceberg catalog, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from test_sync_adoption import HIVE, ORDERS, Lake, post

from headwater.catalog import sync

pytestmark = pytest.mark.anyio

POLARIS = "iceberg://polaris.prod:8181"


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    """An Iceberg catalog holding warehouse.sales.orders."""
    lake = Lake(tmp_path / "lake")
    lake.create_orders()
    yield lake


async def _by_name(client: httpx.AsyncClient, namespace: str) -> httpx.Response:
    return await client.get("/api/v1/datasets/by-name", params={"namespace": namespace, "name": ORDERS})


async def test_a_merged_dataset_stays_merged_while_its_source_still_lists_it(
    client: httpx.AsyncClient, sync_factory: sessionmaker[Session], lake: Lake
) -> None:
    for name, namespace in (("warehouse", HIVE), ("polaris", POLARIS)):
        body = {"name": name, "kind": "iceberg", "namespace": namespace, "config": lake.config()}
        assert (await post(client, "/api/v1/sources", body)).status_code == 201
        assert sync.run_sync(sync_factory, source_name=name).added == 1
    hive_id = (await _by_name(client, HIVE)).json()["id"]
    polaris_id = (await _by_name(client, POLARIS)).json()["id"]
    assert hive_id != polaris_id

    merged = await client.post(f"/api/v1/datasets/{hive_id}/merges", json={"duplicate_id": polaris_id})
    assert merged.status_code == 201, merged.text
    for name in ("polaris", "warehouse"):
        again = sync.run_sync(sync_factory, source_name=name)
        assert (again.status, again.failed, again.added, again.errors) == ("succeeded", 0, 0, [])
    by_polaris = await _by_name(client, POLARIS)
    assert by_polaris.json()["id"] == hive_id and by_polaris.json()["source"] == "warehouse"
    kept = (await client.get(f"/api/v1/datasets/{polaris_id}", params={"include_deleted": "true"})).json()
    assert kept["merged_into"] == hive_id and kept["deleted_at"] is not None
    listed = (await client.get("/api/v1/datasets", params={"name_prefix": ORDERS})).json()["items"]
    assert [d["id"] for d in listed] == [hive_id]

    undone = await client.post(f"/api/v1/dataset-merges/{merged.json()['id']}/undo")
    assert undone.status_code == 200, undone.text
    assert sync.run_sync(sync_factory, source_name="polaris").status == "succeeded"
    back = (await _by_name(client, POLARIS)).json()
    assert back["id"] == polaris_id and back["deleted_at"] is None and back["source"] == "polaris"
