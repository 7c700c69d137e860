"""Nothing a job starts outlives it: descendants that left the job's process group with ``setsid`` (one whose
parent still waits, one orphaned daemon, one that ignores SIGTERM) end when the job is killed, and when it ends on
its own; the job's exit status is written into its directory. Real processes, found by the pid files they write;
on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from jobs_helpers import job_body, shell_setup, wait_until
from process_helpers import gone

from headwater.jobs.exit_status import read_exit_status
from headwater.jobs.worker import JobWorker

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

# Three escapes from the process group, each writing its pid: a setsid child its shell waits for, a daemon whose
# parent exits at once (re-parented), and a setsid child that ignores SIGTERM.
ESCAPES = (
    "setsid sh -c 'echo $$ > waited.pid; exec sleep 300' & "
    "(setsid sh -c 'echo $$ > daemon.pid; exec sleep 300' &) ; "
    "setsid sh -c 'trap \"\" TERM; echo $$ > stubborn.pid; while :; do sleep 1; done' & "
)
PID_FILES = ("waited.pid", "daemon.pid", "stubborn.pid")


@pytest.fixture
def started() -> Iterator[list[int]]:
    """Pids the test saw started; any still running afterwards is killed by its pid (never by name)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def _escaped(work_dir: Path, worker: JobWorker, started: list[int]) -> list[int]:
    wait_until(
        lambda: all((work_dir / name).is_file() and (work_dir / name).read_text().strip() for name in PID_FILES), worker
    )
    pids = [int((work_dir / name).read_text()) for name in PID_FILES]
    started.extend(pids)
    leader = next(iter(worker.running.values())).process.pid
    for pid in pids:
        assert not gone(pid)
        assert os.getsid(pid) != os.getsid(leader)  # out of the job's session and process group
    return pids


def _all_gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gone(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


async def test_a_kill_ends_descendants_that_left_the_process_group(
    client: httpx.AsyncClient, worker: JobWorker, started: list[int]
) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body(ESCAPES + "wait"))).json()["id"]
    worker.run_once()
    pids = _escaped(worker.jobs_dir / job_id, worker, started)
    assert (await client.delete(f"/api/v1/jobs/{job_id}")).status_code == 202
    worker.drain(timeout=30)
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "KILLED"
    survivors = [pid for pid in pids if not gone(pid)]
    assert _all_gone(pids, timeout=1.0), f"still running after the kill: {survivors}"


async def test_a_job_that_ends_leaves_nothing_running_and_its_exit_status(
    client: httpx.AsyncClient, worker: JobWorker, started: list[int]
) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body(ESCAPES + "sleep 0.5; exit 7"))).json()["id"]
    worker.run_once()
    work_dir = worker.jobs_dir / job_id
    pids = _escaped(work_dir, worker, started)
    worker.drain(timeout=30)
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "FAILED" and job["exit_code"] == 7
    assert read_exit_status(work_dir) == 7
    assert _all_gone(pids, timeout=1.0), f"still running after the job ended: {[p for p in pids if not gone(p)]}"


async def test_a_timed_out_job_records_the_signal_that_ended_it(client: httpx.AsyncClient, worker: JobWorker) -> None:
    await shell_setup(client)
    job_id = (await client.post("/api/v1/jobs", json=job_body("sleep 60", timeout=1))).json()["id"]
    worker.drain(timeout=30)
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "KILLED" and job["exit_code"] == -signal.SIGTERM
    assert read_exit_status(worker.jobs_dir / job_id) == -signal.SIGTERM
