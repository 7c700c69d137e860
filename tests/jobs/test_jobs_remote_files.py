"""Workers on other hosts: a job's logs and outputs read through the API while a worker whose disk the API cannot
see runs it, relayed through the database (headwater.jobs.relay), and from the database archive once that worker
host is gone (headwater.jobs.archive).

The worker is a separate ``headwater worker`` process with a data directory of its own. Where this machine lets
the test make namespaces (root, ``unshare``), that process runs in a network namespace of its own (no network at
all: it reaches PostgreSQL through its Unix socket in /var/run/postgresql, SQLite through the file) and a UTS
namespace whose host name differs from the API's; elsewhere it runs on this host with HEADWATER_JOBS_HOST naming
another host. Either way the API never reads the worker's directory itself: it does so only for jobs of its own
host name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, relay_timeout, shell_setup, wait_for_status
from live_http import serve_in_thread
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.anyio


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """Contexts the test enters, left when it ends."""
    with ExitStack() as contexts:
        yield contexts


REMOTE_HOST = "hw-remote-worker"
PG_SOCKET_DIR = "/var/run/postgresql"
ARCHIVE_CAP = 4_000_000
# Outputs first (data.bin: 1.9 MB, two archive chunks), then a line every 0.4 s, then big.bin (6.9 MB: over the
# archive's cap, so it is left on the worker host).
SCRIPT = (
    "mkdir out; seq 1 300000 > out/data.bin; echo partial > result.txt; "
    "for i in 1 2 3 4 5 6 7 8; do echo line-$i; sleep 0.4; done; "
    "echo done > result.txt; seq 1 1000000 > out/big.bin"
)
LINES = b"".join(f"line-{i}\n".encode() for i in range(1, 9))
DATA = b"".join(f"{i}\n".encode() for i in range(1, 300_001))
BIG = b"".join(f"{i}\n".encode() for i in range(1, 1_000_001))


def _namespaces_work() -> bool:
    if not shutil.which("unshare") or not Path(PG_SOCKET_DIR).is_dir():
        return False
    probe = subprocess.run(["unshare", "--net", "--uts", "true"], capture_output=True, check=False)
    return probe.returncode == 0


ISOLATED = _namespaces_work()


def _worker_url(url: str) -> str:
    """The suite's database as the worker reaches it: PostgreSQL through its Unix socket when the worker has no
    network; SQLite through the file."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not ISOLATED:
        return url
    return parsed.set(host=None, port=None, query={"host": PG_SOCKET_DIR}).render_as_string(hide_password=False)


def _start_worker(url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HEADWATER_DATABASE_URL": _worker_url(url),
        "HEADWATER_DATA_DIR": str(data_dir),
        "HEADWATER_JOBS_POLL_INTERVAL": "0.05",
        "HEADWATER_JOBS_HEARTBEAT_INTERVAL": "0.5",
        "HEADWATER_JOBS_DB_ARCHIVE_MAX_BYTES": str(ARCHIVE_CAP),
        "HEADWATER_LOG_LEVEL": "warning",
    }
    worker = [sys.executable, "-m", "headwater.cli", "worker", "--slots", "2"]
    if ISOLATED:
        command = ["unshare", "--net", "--uts", "sh", "-c", f'hostname {REMOTE_HOST} && exec "$@"', "sh", *worker]
    else:
        env["HEADWATER_JOBS_HOST"] = REMOTE_HOST
        command = worker
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[str]:
    """The suite's app served by a real uvicorn on loopback (so a followed log arrives chunk by chunk)."""
    with serve_in_thread(app) as url:
        yield url


async def _execution(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    execution: dict[str, Any] = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()
    return execution


@pytest.mark.integration
@pytest.mark.parametrize(
    "where", ["network-and-uts-namespace" if ISOLATED else "same-host-other-host-name"], ids=lambda where: where
)
async def test_a_worker_whose_disk_the_api_cannot_see_serves_logs_and_outputs_and_its_archive_outlives_it(
    client: httpx.AsyncClient,
    app: FastAPI,
    live_server: str,
    tmp_path: Path,
    stack: ExitStack,
    where: str,
) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body(SCRIPT))).json()["id"]
    worker_dir = tmp_path / "remote-worker-data"
    assert not worker_dir.is_relative_to(app.state.settings.data_dir)
    worker = _start_worker(app.state.settings.database_url, worker_dir)
    try:
        await wait_for_status(client, job_id, {"RUNNING"}, timeout=60)
        execution = await _execution(client, job_id)
        assert execution["host"] == REMOTE_HOST
        assert Path(execution["work_dir"]).is_relative_to(worker_dir.resolve())

        # While it runs: the followed log shows its first line before the job is over, then the rest.
        async with (
            httpx.AsyncClient(base_url=live_server, timeout=60) as http,
            http.stream("GET", f"/api/v1/jobs/{job_id}/logs/stdout", params={"follow": "true"}) as response,
        ):
            assert response.status_code == 200
            chunks = response.aiter_bytes()
            first = await chunks.__anext__()
            assert first.startswith(b"line-1\n")
            assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "RUNNING"
            tail = await client.get(f"/api/v1/jobs/{job_id}/logs/stdout")
            assert tail.status_code == 200 and tail.content.startswith(b"line-1\n")
            assert tail.headers["x-job-finished"] == "false"
            listing = await client.get(f"/api/v1/jobs/{job_id}/output")
            assert listing.status_code == 200, listing.text
            files = {entry["path"]: entry for entry in listing.json()}
            assert files["out/data.bin"]["size"] == len(DATA) and files["out"]["type"] == "directory"
            download = await client.get(f"/api/v1/jobs/{job_id}/output/out/data.bin")
            assert download.status_code == 200 and download.content == DATA  # two 1 MiB relays and a rest
            across = await client.get(
                f"/api/v1/jobs/{job_id}/output/out/data.bin", headers={"Range": "bytes=1048570-1048589"}
            )
            assert across.status_code == 206 and across.content == DATA[1048570:1048590]
            assert across.headers["content-range"] == f"bytes 1048570-1048589/{len(DATA)}"
            rest = b"".join([chunk async for chunk in chunks])
        assert first + rest == LINES

        job = await wait_for_status(client, job_id, {"SUCCEEDED", "FAILED", "KILLED"}, timeout=60)
        assert job["status"] == "SUCCEEDED"
        assert (await client.get(f"/api/v1/jobs/{job_id}/output/out/big.bin")).content == BIG
        deadline = time.monotonic() + 30
        while (execution := await _execution(client, job_id))["files_archived_at"] is None:
            assert time.monotonic() < deadline, "the worker never archived the job's files"
            await anyio.sleep(0.1)
        assert execution["files_not_archived"] == 1  # big.bin, over HEADWATER_JOBS_DB_ARCHIVE_MAX_BYTES
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        _, errors = worker.communicate(timeout=30)
    assert worker.returncode == 0, errors.decode(errors="replace")[-2000:]

    # The worker host is gone: its process stopped, its disk wiped.
    shutil.rmtree(worker_dir)
    stack.enter_context(relay_timeout(app, 1.0))
    log = await client.get(f"/api/v1/jobs/{job_id}/logs/stdout")
    assert log.status_code == 200 and log.content == LINES and log.headers["x-job-finished"] == "true"
    followed = await client.get(f"/api/v1/jobs/{job_id}/logs/stdout", params={"follow": "true", "offset": 7})
    assert followed.content == LINES[7:]
    assert (await client.get(f"/api/v1/jobs/{job_id}/output/result.txt")).content == b"done\n"
    assert (await client.get(f"/api/v1/jobs/{job_id}/output/out/data.bin")).content == DATA
    listing = await client.get(f"/api/v1/jobs/{job_id}/output")  # asks the host, then lists the archive
    assert listing.status_code == 200
    assert {"stdout", "result.txt", "out/data.bin"} <= {entry["path"] for entry in listing.json()}
    assert "out/big.bin" not in {entry["path"] for entry in listing.json()}
    started = time.monotonic()
    gone = await client.get(f"/api/v1/jobs/{job_id}/output/out/big.bin")
    assert gone.status_code == 503, gone.text
    message = gone.json()["error"]["message"]
    assert f"the worker on host {REMOTE_HOST} that holds job {job_id!r}'s files did not answer within 1 s" in message
    assert "1 left out over HEADWATER_JOBS_DB_ARCHIVE_MAX_BYTES" in message
    assert time.monotonic() - started < 10
    missing = await client.get(f"/api/v1/jobs/{job_id}/output/nothing-here")
    assert missing.status_code == 503  # not archived, and no host to ask whether it ever existed
