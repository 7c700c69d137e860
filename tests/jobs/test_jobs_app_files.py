"""Application files named by http(s) URL: fetched from a real HTTP server (the standard library's, on 127.0.0.1)
into the host's cache once, revalidated for each later job, and failures that name the URL; on SQLite and
PostgreSQL."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, make_worker, shell_setup, worker_thread

from headwater.db import session_scope
from headwater.jobs import reaper
from headwater.jobs.files import FileCache
from headwater.jobs.worker import JobWorker

pytestmark = pytest.mark.anyio


@dataclass
class ArtifactStore:
    """What the test server serves (path -> (body, etag)) and the requests it answered."""

    base: str = ""
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    answered: list[tuple[str, int]] = field(default_factory=list)  # (path, status)
    delay: float = 0.0  # seconds before each answer (a slow store)
    stop: Callable[[], None] = lambda: None  # take the server down (the fixture sets it)


@pytest.fixture
def store() -> Iterator[ArtifactStore]:
    """A real HTTP server on 127.0.0.1 with ETag revalidation (304 on If-None-Match), stopped after the test."""
    served = ArtifactStore()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(served.delay)
            path = self.path.split("?", 1)[0]
            found = served.files.get(path)
            status = 404 if found is None else 304 if self.headers.get("If-None-Match") == found[1] else 200
            served.answered.append((path, status))  # before answering: the client may look as soon as it is sent
            if found is None:
                self.send_error(404, "no such artifact")
                return
            body, etag = found
            if status == 304:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stopped = threading.Event()

    def stop() -> None:
        if not stopped.is_set():
            stopped.set()
            server.shutdown()
            server.server_close()

    served.stop = stop
    try:
        yield served
    finally:
        stop()


async def _run(client: httpx.AsyncClient, worker: JobWorker, app: str) -> dict[str, object]:
    body = job_body('sh "$HEADWATER_APPLICATIONS_DIR/tools/tool.sh"', applications=[app])
    job_id = (await client.post("/api/v1/jobs", json=body)).json()["id"]
    worker.drain(timeout=30)
    job: dict[str, object] = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    if job["status"] == "SUCCEEDED":
        job["stdout"] = (await client.get(f"/api/v1/jobs/{job_id}/output/stdout")).text
    return job


@pytest.mark.integration
async def test_a_file_named_by_url_is_fetched_once_then_revalidated(
    client: httpx.AsyncClient, worker: JobWorker, store: ArtifactStore
) -> None:
    await shell_setup(client)
    store.files["/libs/tool.sh"] = (b"echo v1", '"v1"')
    made = await client.post(
        "/api/v1/applications", json={"name": "tools", "dependencies": [f"{store.base}/libs/tool.sh"]}
    )
    assert made.status_code == 201, made.text

    first = await _run(client, worker, "tools")
    assert first["status"] == "SUCCEEDED" and first["stdout"] == "v1\n", first
    second = await _run(client, worker, "tools")
    assert second["stdout"] == "v1\n"
    assert store.answered == [("/libs/tool.sh", 200), ("/libs/tool.sh", 304)]  # downloaded once, then revalidated
    placed = worker.jobs_dir / str(second["id"]) / "applications" / "tools" / "tool.sh"
    assert placed.stat().st_nlink >= 2  # a hard link to the host's cached copy, not another copy
    assert placed.stat().st_mode & 0o777 == 0o555  # which no job may change for the next ones; runnable

    store.files["/libs/tool.sh"] = (b"echo v2", '"v2"')  # a new version published under the same URL
    third = await _run(client, worker, "tools")
    assert third["stdout"] == "v2\n" and store.answered[-1] == ("/libs/tool.sh", 200)
    assert placed.read_text() == "echo v1"  # the earlier job's copy is its own: it kept what it ran


@pytest.mark.integration
async def test_failures_name_the_url_and_a_cached_copy_outlives_the_server(
    client: httpx.AsyncClient, app: FastAPI, store: ArtifactStore, tmp_path: Path
) -> None:
    await shell_setup(client)
    store.files["/libs/tool.sh"] = (b"echo cached", '"c1"')
    store.files["/libs/huge.sh"] = (b"x" * 4096, '"h1"')
    for name, path in (("tools", "/libs/tool.sh"), ("missing", "/libs/nope.sh"), ("huge", "/libs/huge.sh")):
        made = await client.post("/api/v1/applications", json={"name": name, "dependencies": [f"{store.base}{path}"]})
        assert made.status_code == 201, made.text
    worker = make_worker(app, tmp_path / "data", file_max_bytes=1024)
    try:
        missing = await _run(client, worker, "missing")
        assert missing["status"] == "FAILED"
        assert f"GET {store.base}/libs/nope.sh answered 404" in str(missing["status_message"]), missing
        assert "'missing'" in str(missing["status_message"])
        huge = await _run(client, worker, "huge")
        assert huge["status"] == "FAILED" and "4096 bytes; the limit is 1024" in str(huge["status_message"]), huge
        assert (await _run(client, worker, "tools"))["stdout"] == "cached\n"
        store.stop()  # the artifact store goes away: the copy cached on this host serves the next job
        assert (await _run(client, worker, "tools"))["stdout"] == "cached\n"
        store.files.clear()
        gone = await _run(client, worker, "missing")  # nothing cached for this one: it fails, naming why
        assert gone["status"] == "FAILED" and f"could not fetch {store.base}/libs/nope.sh" in str(
            gone["status_message"]
        )
    finally:
        worker.shutdown()


@pytest.mark.integration
async def test_a_slow_download_keeps_the_jobs_heartbeat(
    client: httpx.AsyncClient, app: FastAPI, store: ArtifactStore, tmp_path: Path
) -> None:
    await shell_setup(client)
    store.files["/libs/tool.sh"] = (b"echo slow", '"s1"')
    store.delay = 2.5  # longer than the heartbeat timeout below
    await client.post("/api/v1/applications", json={"name": "tools", "dependencies": [f"{store.base}/libs/tool.sh"]})
    body = job_body('sh "$HEADWATER_APPLICATIONS_DIR/tools/tool.sh"', applications=["tools"])
    job_id = (await client.post("/api/v1/jobs", json=body)).json()["id"]
    with worker_thread(app, tmp_path / "data", heartbeat_interval=0.1, heartbeat_timeout=1.0):
        # Meanwhile, what another worker does: reap the jobs whose heartbeat is older than the timeout.
        deadline = time.monotonic() + 30
        while (job := (await client.get(f"/api/v1/jobs/{job_id}")).json())["status"] not in ("SUCCEEDED", "FAILED"):
            assert time.monotonic() < deadline, job
            with session_scope(app.state.sessionmaker) as session:
                reaper.reap_lost_jobs(session, timeout_seconds=1.0)
            await anyio.sleep(0.1)
    # Without heartbeats during the download the job would have been reaped as "worker lost".
    assert job["status"] == "SUCCEEDED", job
    assert store.answered == [("/libs/tool.sh", 200)]


async def test_file_urls_that_cannot_work_are_refused_at_once(client: httpx.AsyncClient) -> None:
    for bad, reason in (
        ("https://alice:secret@artifacts.example/tool.jar", "credentials"),
        ("https://artifacts.example/tool.jar#v1", "fragment"),
        ("https://artifacts.example/", "names no file"),
        ("https:///tool.jar", "names no host"),
        ("https://artifacts.example/libs/..", "names no file"),
        ("https://artifacts.example/libs/%00tool.jar", "names no file"),
        ("https://artifacts..example/tool.jar", "names no host"),
        ("https://artifacts.example:port/tool.jar", "not a URL a worker can fetch"),
        ("https://artifacts.example/tool.jar\n", "control characters"),
        ("https://artifacts.example/" + "x" * 300 + ".jar", "over 255 bytes"),
    ):
        answer = await client.post("/api/v1/applications", json={"name": "bad", "dependencies": [bad]})
        assert answer.status_code == 422 and reason in answer.json()["error"]["message"], (bad, answer.text)
    same_name = {"name": "twice", "dependencies": ["https://a.example/x/tool.jar?v=1", "/opt/lib/tool.jar"]}
    assert (await client.post("/api/v1/applications", json=same_name)).status_code == 422


@pytest.mark.integration
def test_cache_entries_no_job_used_within_the_retention_are_removed(store: ArtifactStore, tmp_path: Path) -> None:
    store.files["/a.jar"] = (b"a", '"a"')
    store.files["/b.jar"] = (b"b", '"b"')
    cache = FileCache(tmp_path / "cache")
    old, fresh = cache.fetch(f"{store.base}/a.jar"), cache.fetch(f"{store.base}/b.jar")
    week_ago = time.time() - 7 * 24 * 3600
    os.utime(old.parent.parent / "meta.json", (week_ago, week_ago))
    assert cache.remove_unused(older_than=24 * 3600) == 1
    assert not old.exists() and fresh.read_bytes() == b"b"
    # Used again (revalidated, 304): an entry counts as fresh however old its download.
    os.utime(fresh.parent.parent / "meta.json", (week_ago, week_ago))
    assert cache.fetch(f"{store.base}/b.jar") == fresh and store.answered[-1] == ("/b.jar", 304)
    assert cache.remove_unused(older_than=24 * 3600) == 0 and fresh.exists()
