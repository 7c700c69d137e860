"""The sync API and config validation over HTTP, and ``headwater sources`` on the command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from headwater.catalog import sync
from headwater.cli import app as cli_app
from headwater.settings import get_settings

pytestmark = pytest.mark.anyio


async def _add(client: httpx.AsyncClient, config: dict[str, Any], name: str = "lake") -> httpx.Response:
    return await client.post(
        "/api/v1/sources",
        json={"name": name, "kind": "iceberg", "namespace": "iceberg://lake", "config": config},
    )


async def test_sync_returns_its_report_and_reports_are_listed(client: httpx.AsyncClient, warehouse: Any) -> None:
    assert (await _add(client, warehouse.config())).status_code == 201
    first = await client.post("/api/v1/sources/lake/sync")
    assert first.status_code == 200, first.text
    report = first.json()
    assert report["source"] == "lake" and report["status"] == "succeeded" and report["added"] == 3
    assert report["complete"] is True and report["trigger"] == "api" and report["mode"] == "incremental"
    second = (await client.post("/api/v1/sources/lake/sync", params={"mode": "full"})).json()
    assert (second["mode"], second["unchanged"]) == ("full", 3)

    page = (await client.get("/api/v1/sources/lake/syncs", params={"limit": 1})).json()
    assert page["total"] == 2 and [r["id"] for r in page["items"]] == [second["id"]]
    rest = (await client.get("/api/v1/sources/lake/syncs", params={"cursor": page["next_cursor"]})).json()
    assert [r["id"] for r in rest["items"]] == [report["id"]]
    one = await client.get(f"/api/v1/sources/lake/syncs/{report['id']}")
    assert one.json()["added"] == 3
    source = (await client.get("/api/v1/sources/lake")).json()
    assert source["status"] == "healthy" and source["last_sync_at"]
    listed = (await client.get("/api/v1/datasets", params={"source": "lake"})).json()
    assert listed["total"] == 3


async def test_sync_without_waiting_answers_202_and_the_report_completes(
    client: httpx.AsyncClient, warehouse: Any
) -> None:
    await _add(client, warehouse.config())
    started = await client.post("/api/v1/sources/lake/sync", params={"wait": "false"})
    assert started.status_code == 202 and started.json()["status"] == "running"
    location = started.headers["location"]
    for _ in range(200):
        body = (await client.get(location)).json()
        if body["status"] != "running":
            break
        await asyncio.sleep(0.05)
    assert body["status"] == "succeeded" and body["added"] == 3


async def test_a_running_sync_answers_409(client: httpx.AsyncClient, app: FastAPI, warehouse: Any) -> None:
    await _add(client, warehouse.config())
    handle = sync.start_sync(app.state.sessionmaker, source_name="lake")
    busy = await client.post("/api/v1/sources/lake/sync")
    assert busy.status_code == 409 and "already running" in busy.json()["error"]["message"]
    sync.execute_sync(app.state.sessionmaker, handle)
    assert (await client.post("/api/v1/sources/lake/sync")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("POST", "/api/v1/sources/nope/sync", None, 404, ["nope"]),
        ("POST", "/api/v1/sources/manual/sync", None, 409, ["manual", "no connector"]),
        ("POST", "/api/v1/sources/lake/sync?mode=sideways", None, 422, ["mode"]),
        ("GET", "/api/v1/sources/lake/syncs/999", None, 404, ["999"]),
        ("GET", "/api/v1/sources/lake/syncs/0", None, 422, ["run_id"]),
        ("GET", "/api/v1/sources/lake/syncs?cursor=%%%", None, 400, ["cursor"]),
        ("GET", "/api/v1/sources/nope/syncs", None, 404, ["nope"]),
        (
            "POST",
            "/api/v1/sources",
            {"name": "x", "kind": "iceberg", "namespace": "iceberg://x", "config": {"type": "sql"}},
            422,
            ["config", "uri is required"],
        ),
        (
            "POST",
            "/api/v1/sources",
            {"name": "x", "kind": "iceberg", "namespace": "iceberg://x", "config": {"uri": "u", "colour": 1}},
            422,
            ["config.colour", "not a known field"],
        ),
        (
            "POST",
            "/api/v1/sources",
            {"name": "x", "kind": "postgres", "namespace": "postgres://x", "config": {"host": "h", "user": "u"}},
            422,
            ["config.database"],
        ),
        ("PATCH", "/api/v1/sources/lake", {"config": {"type": "nessie", "uri": "u"}}, 422, ["config.type"]),
        ("PATCH", "/api/v1/sources/lake", {"config": {"uri": "u", "sync_interval_seconds": 1}}, 422, ["interval"]),
    ],
)
async def test_bad_sync_requests_and_configs_are_refused(
    client: httpx.AsyncClient,
    warehouse: Any,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    words: list[str],
) -> None:
    await client.post("/api/v1/datasets", json={"namespace": "kafka://k:9092", "name": "t", "fields": []})
    await _add(client, warehouse.config())
    response = await client.request(method, path, json=body)
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    assert all(word in message for word in words), message
    if method == "PATCH":
        unchanged = (await client.get("/api/v1/sources/lake")).json()
        assert unchanged["config"] == warehouse.config()


def test_sources_cli_add_list_sync_remove(
    db_url: str, session: Any, warehouse: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("HEADWATER_DATABASE_URL", db_url)
    monkeypatch.setenv("HEADWATER_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        config = [f"{key}={value}" for key, value in warehouse.config().items()]
        args = ["sources", "add", "lake", "--kind", "iceberg", "--namespace", "iceberg://lake"]
        added = runner.invoke(cli_app, [*args, *sum((["-c", c] for c in config), [])])
        assert added.exit_code == 0, added.output
        bad = runner.invoke(cli_app, [*args[:2], "bad", *args[3:], "-c", "colour=red"])
        assert bad.exit_code == 1 and "config.colour" in bad.output
        synced = runner.invoke(cli_app, ["sources", "sync", "lake"])
        assert synced.exit_code == 0, synced.output
        assert "succeeded" in synced.output and "3 added" in synced.output
        as_json = runner.invoke(cli_app, ["sources", "sync", "lake", "--full", "--json"])
        assert json.loads(as_json.output)["unchanged"] == 3
        listed = runner.invoke(cli_app, ["sources", "list", "--json"])
        assert [(s["name"], s["status"]) for s in json.loads(listed.output)] == [("lake", "healthy")]
        refused = runner.invoke(cli_app, ["sources", "remove", "lake"])
        assert refused.exit_code == 1 and "still has 3 dataset" in refused.output
        removed = runner.invoke(cli_app, ["sources", "remove", "lake", "--purge"])
        assert removed.exit_code == 0 and "3 dataset" in removed.output
        assert json.loads(runner.invoke(cli_app, ["sources", "list", "--json"]).output) == []
    finally:
        get_settings.cache_clear()
