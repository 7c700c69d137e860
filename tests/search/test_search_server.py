"""Search inside the server and the CLI: the indexer runs from the app's lifespan (a setting turns it off),
catalog writes succeed while Elasticsearch is unreachable, and ``headwater search reindex`` rebuilds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from headwater import migrations
from headwater.app import create_app
from headwater.cli import app as cli
from headwater.settings import Settings

pytestmark = pytest.mark.anyio
MakeDatabase = Callable[..., str]


async def test_the_lifespan_runs_the_indexer(fresh_database: MakeDatabase, tmp_path: object) -> None:
    url = fresh_database("sqlite", "lifespan")
    migrations.upgrade(url)
    settings = Settings(database_url=url, search_index_interval=0.05, cache_enabled=False, sync_scheduler_enabled=False)
    app = create_app(settings, prepare=False)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://headwater.test") as client,
    ):
        assert (await client.post("/api/v1/datasets", json={"name": "live.indexed"})).status_code == 201
        deadline = time.monotonic() + 10
        while True:
            found = (await client.get("/api/v1/search", params={"q": "live.indexed"})).json()["items"]
            if found:
                break
            assert time.monotonic() < deadline, "the server's indexer did not index the dataset"
            await asyncio.sleep(0.05)
        assert found[0]["name"] == "live.indexed"
    off = create_app(settings.model_copy(update={"search_indexer_enabled": False}), prepare=False)
    async with off.router.lifespan_context(off):
        assert not off.state.search_indexer_thread._thread.is_alive()  # noqa: SLF001


async def test_catalog_writes_succeed_while_elasticsearch_is_unreachable(
    fresh_database: MakeDatabase, unused_port: int
) -> None:
    url = fresh_database("sqlite", "es-down")
    migrations.upgrade(url)
    settings = Settings(
        database_url=url,
        search_backend="elasticsearch",
        elasticsearch_url=f"http://127.0.0.1:{unused_port}",
        elasticsearch_timeout=2,
        search_index_interval=0.05,
        cache_enabled=False,
        sync_scheduler_enabled=False,
    )
    app = create_app(settings, prepare=False)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://headwater.test") as client,
    ):
        for i in range(3):
            assert (await client.post("/api/v1/datasets", json={"name": f"written.while_down_{i}"})).status_code == 201
        search = await client.get("/api/v1/search", params={"q": "written"})
        assert search.status_code == 503 and search.json()["error"]["code"] == "search_unavailable"
        status = (await client.get("/api/v1/search/status")).json()
        assert status["available"] is False and status["lag"] == 3 and status["catalog"]["datasets"] == 3


@pytest.mark.integration
def test_cli_reindex_and_status(fresh_database: MakeDatabase, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from headwater.settings import get_settings

    url = fresh_database("sqlite", "cli")
    monkeypatch.setenv("HEADWATER_DATABASE_URL", url)
    monkeypatch.setenv("HEADWATER_DATA_DIR", str(tmp_path / "data"))  # the demo builds its warehouse there
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
        assert runner.invoke(cli, ["demo"]).exit_code == 0
        behind = runner.invoke(cli, ["search", "status"])
        assert behind.exit_code == 1 and "NOT in sync" in behind.output
        result = runner.invoke(cli, ["search", "reindex"])
        assert result.exit_code == 0, result.output
        assert "15 dataset(s)" in result.output
        status = runner.invoke(cli, ["search", "status", "--json"])
        assert status.exit_code == 0 and '"in_sync": true' in status.output
    finally:
        get_settings.cache_clear()
