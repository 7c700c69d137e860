"""The search UI in headless Chromium under Headwater's Content-Security-Policy: every page renders and the browser
reports no violation of the policy (a page with an inline script, as the UI had, does report one)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from chromium_cli import csp_violations, load, needs_chromium
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from live_http import serve_in_thread

from headwater.app import create_app
from headwater.settings import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.single_backend("sqlite")]


@needs_chromium
async def test_every_ui_page_renders_without_a_policy_violation(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    body = {"name": "db.orders", "fields": [{"name": "id", "type": "long"}], "tags": ["gold"]}
    dataset = (await client.post("/api/v1/datasets", json=body)).json()
    pages = {
        "/ui": 'id="search-box"',
        "/ui?q=orders": 'value="orders"',  # the index is empty here: a search page with no hits
        f"/ui/datasets/{dataset['id']}": "Save description",  # the local admin may edit: the forms are there
        "/ui/sources": "manual",
        "/ui/jobs": "Jobs",
        "/ui/tokens": "My API tokens",
    }
    with serve_in_thread(app) as base:
        for path, expected in pages.items():
            dom, log = load(base + path, tmp_path / "profile")
            assert expected in dom, (path, dom[:500])
            assert 'src="/ui/static/search.js"' in dom
            assert csp_violations(log) == [], (path, csp_violations(log))


@needs_chromium
def test_the_browser_check_sees_an_inline_script_refused(db_url: str, tmp_path: Path) -> None:
    app = create_app(Settings(database_url=db_url, data_dir=tmp_path, search_indexer_enabled=False), prepare=False)

    @app.get("/inline")
    def inline() -> HTMLResponse:
        return HTMLResponse("<!doctype html><p id=p>before</p><script>document.title = 'ran'</script>")

    with serve_in_thread(app) as base:
        dom, log = load(base + "/inline", tmp_path / "profile")
    assert "<title>ran</title>" not in dom
    assert any("script-src 'self'" in line for line in csp_violations(log)), log[-2000:]
