"""Application files obey the egress policy: a local file outside the allowed directories (``file:///etc/passwd``)
and a URL on a loopback port are refused at registration (422) and, when an application already names them (the
policy narrowed since), by the real worker when it prepares the job: their content never reaches the job's output.
The suite allows loopback and the temporary directory (tests/conftest.py); these tests turn that off."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, shell_setup

from headwater.app import create_app
from headwater.db import session_scope
from headwater.jobs.models import Application
from headwater.jobs.worker import JobWorker
from headwater.settings import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SECRET = b"internal-only-secret-4711"


@pytest.fixture
def internal() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 serving a secret (an internal service); its base URL and the paths asked."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(SECRET)))
            self.end_headers()
            self.wfile.write(SECRET)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def _strict(settings: Settings, data_dir: Path) -> Settings:
    # The defaults: no address outside the global internet, no local directory.
    return settings.model_copy(update={"egress_allow": [], "egress_file_dirs": [], "data_dir": data_dir})


@pytest.fixture
async def strict_client(
    app_settings: Settings, client: httpx.AsyncClient, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a server on the suite's database with the default (empty) egress allowlists."""
    strict = create_app(_strict(app_settings, tmp_path / "strict"), prepare=False)
    transport = httpx.ASGITransport(app=strict, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://headwater.test") as strict_client:
        yield strict_client


async def test_refused_files_are_refused_at_registration(
    strict_client: httpx.AsyncClient, internal: tuple[str, list[str]]
) -> None:
    base, asked = internal
    port = base.rsplit(":", 1)[1]
    for field, ref, why in [
        ("configs", "file:///etc/passwd", "HEADWATER_EGRESS_FILE_DIRS"),
        ("dependencies", "/etc/passwd", "HEADWATER_EGRESS_FILE_DIRS"),
        ("dependencies", f"{base}/secret", "127.0.0.1 is a loopback address"),
        ("dependencies", f"http://localhost:{port}/secret", "localhost resolves to a loopback address"),
        ("dependencies", "http://[::ffff:127.0.0.1]/secret", "loopback address"),
        ("dependencies", "http://169.254.169.254/latest/meta-data", "link-local address"),
    ]:
        r = await strict_client.post("/api/v1/applications", json={"name": "leak", field: [ref]})
        assert r.status_code == 422, (ref, r.text)
        error = r.json()["error"]
        assert error["code"] == "egress_refused" and why in error["message"], error
        assert error["detail"]["field"] == field
    made = await strict_client.post("/api/v1/applications", json={"name": "leak"})
    assert made.status_code == 201
    patched = await strict_client.patch("/api/v1/applications/leak", json={"configs": ["file:///etc/passwd"]})
    assert patched.status_code == 422 and patched.json()["error"]["code"] == "egress_refused"
    assert asked == []  # registration never fetched anything


async def test_the_worker_never_fetches_refused_files(
    client: httpx.AsyncClient, app: FastAPI, app_settings: Settings, internal: tuple[str, list[str]], tmp_path: Path
) -> None:
    base, asked = internal
    await shell_setup(client)
    # Applications registered while the policy allowed them (or written by an older version): the worker's policy
    # is what decides when a job needs them.
    with session_scope(app.state.sessionmaker) as session:
        for name, ref in (("etc", "file:///etc/passwd"), ("plain", "/etc/passwd"), ("internal", f"{base}/secret")):
            session.add(
                Application(name=name, status="ACTIVE", tags=[], dependencies=[ref], configs=[], environment={})
            )
    worker = JobWorker.from_settings(app.state.sessionmaker, _strict(app_settings, tmp_path / "data"))
    try:
        for name, file in (("etc", "passwd"), ("plain", "passwd"), ("internal", "secret")):
            script = f'cat "$HEADWATER_APPLICATIONS_DIR/{name}/{file}"'
            job_id = (await client.post("/api/v1/jobs", json=job_body(script, applications=[name]))).json()["id"]
            worker.drain(timeout=30)
            job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
            assert job["status"] == "FAILED", job
            message = job["status_message"] or ""
            assert "could not prepare the job" in message and f"application {name!r}" in message, message
            assert ("outside the directories" in message) if file == "passwd" else ("loopback address" in message)
            outputs = [(await client.get(f"/api/v1/jobs/{job_id}/output/{s}")).content for s in ("stdout", "stderr")]
            for leaked in (*outputs, message.encode()):
                assert b"root:" not in leaked and SECRET not in leaked
            job_dir = worker.jobs_dir / job_id
            assert not any(SECRET in p.read_bytes() for p in job_dir.rglob("*") if p.is_file() and not p.is_symlink())
        assert asked == []  # the internal service was never asked
    finally:
        worker.shutdown()
