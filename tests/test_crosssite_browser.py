"""The attack of finding 4 in a real browser: a page of another site, opened in headless Chromium, submits a job
with a multipart form, starts a sync and posts an OpenLineage event with ``fetch(..., {mode: "no-cors"})``, and
posts a form to a Host the server does not answer to. None of it reaches the catalog."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from chromium_cli import load, needs_chromium
from fastapi import FastAPI
from live_http import serve_in_thread

pytestmark = [pytest.mark.anyio, pytest.mark.integration, needs_chromium]

JOB = {
    "name": "owned",
    "user": "mallory",
    "command_args": ["echo owned"],
    "cluster_criteria": [["sched:test"]],
    "command_criteria": ["type:sh"],
}
EVENT = {
    "eventType": "COMPLETE",
    "eventTime": "2024-05-01T10:00:00Z",
    "run": {"runId": "0190a1e2-0000-7000-8000-000000000002"},
    "job": {"namespace": "evil", "name": "forged"},
    "inputs": [],
    "outputs": [{"namespace": "evil", "name": "planted"}],
    "producer": "https://evil.example",
    "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent",
}


def _page(target: str) -> str:
    """What the attacker's page does as soon as it is opened: the requests no CORS preflight guards."""
    request = json.dumps(JOB).replace("<", "\\u003c")
    event = json.dumps(json.dumps(EVENT))
    return f"""<!doctype html><title>cute cats</title>
<form id="job" method="post" enctype="multipart/form-data" action="{target}/api/v1/jobs">
<textarea name="request">{request}</textarea></form>
<script>
const quiet = {{method: "POST", mode: "no-cors"}};
Promise.allSettled([
  fetch("{target}/api/v1/sources/lake/sync?wait=false", quiet),
  fetch("{target}/api/v1/lineage", {{...quiet, headers: {{"Content-Type": "text/plain"}}, body: {event}}}),
]).then(() => document.getElementById("job").submit());
</script>"""


@contextmanager
def attacker_site(html: str) -> Iterator[str]:
    """A web site of the attacker's (another origin) serving ``html``; its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


async def _setup(client: httpx.AsyncClient) -> None:
    cluster = {"name": "local", "type": "shell", "tags": ["sched:test"]}
    assert (await client.post("/api/v1/clusters", json=cluster)).status_code == 201
    command = {"name": "sh", "executable": ["/bin/sh", "-c"], "tags": ["type:sh"]}
    assert (await client.post("/api/v1/commands", json=command)).status_code == 201
    source = {"name": "lake", "kind": "iceberg", "namespace": "iceberg://lake", "config": {"uri": "http://127.0.0.1:1"}}
    assert (await client.post("/api/v1/sources", json=source)).status_code == 201


async def _nothing_arrived(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/jobs")).json()["total"] == 0
    assert (await client.get("/api/v1/sources/lake/syncs")).json()["total"] == 0
    assert (await client.get("/api/v1/datasets", params={"namespace": "evil"})).json()["total"] == 0


@pytest.mark.single_backend("sqlite")
async def test_a_page_of_another_site_gets_nothing_done_in_a_real_browser(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    await _setup(client)
    with serve_in_thread(app) as base:
        port = base.rsplit(":", 1)[1]
        # The page is at 127.0.0.1:<other port>; it targets localhost: another site for the browser.
        with attacker_site(_page(f"http://localhost:{port}")) as page:
            # --dump-dom sometimes catches the tab between the page and the form's answer and prints nothing
            # (about 1 load in 4 here); an empty dump says nothing either way, so the page is opened again.
            for attempt in range(4):
                dom, log = load(page, tmp_path / f"profile-{attempt}", settle_ms=5000)
                if dom.strip():
                    break
    await _nothing_arrived(client)
    assert "cross_origin_refused" in dom, (dom[:2000], log[-3000:])  # the form's answer, where the browser navigated


@pytest.mark.single_backend("sqlite")
async def test_a_name_rebound_to_the_server_reads_nothing_in_a_real_browser(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    # DNS rebinding: the attacker's name is made to resolve to the server's address, so the attacker's page and
    # the API share an origin and the page could read answers; only the Host check stands in between.
    await _setup(client)
    rebind = ("--host-resolver-rules=MAP rebound.evil.example 127.0.0.1",)
    with serve_in_thread(app) as base:
        port = base.rsplit(":", 1)[1]
        dom, _ = load(f"http://rebound.evil.example:{port}/api/v1/sources", tmp_path / "profile", flags=rebind)
    assert "host_not_allowed" in dom and "iceberg://lake" not in dom, dom[:2000]
