"""Jobs run twice after a database outage (issue 14, finding 7): trials of an outage longer than the heartbeat
timeout, counting the jobs of which two copies ran at the same time.

Each trial: a fresh set of jobs that append their attempt number to a marks file four times a second (8 s a copy,
two attempts allowed); a real ``headwater worker`` process (standing for host "a") reaches PostgreSQL through a TCP proxy and
claims them all; then a second worker (host "b") starts on a direct connection; the proxy is cut for longer than
the heartbeat timeout, then restored; the trial waits until every job has ended. A job ran twice when a line of an
earlier attempt was written after a later attempt began (both copies alive at once).

Run it on the code under test, or on an older checkout (``PYTHONPATH=<checkout> python benchmarks/...``) for the
baseline: the settings it passes that an older Headwater does not know are ignored there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import _postgres
import httpx
from jobs_common import environment, fresh_database, load_average, server
from sqlalchemy import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "jobs"))
from db_proxy import DbProxy  # noqa: E402  (the tests' proxy: one fault, one implementation)
from double_runs import MARKING, ran_twice  # noqa: E402  (and their reading of a double run)

FINAL = {"SUCCEEDED", "FAILED", "KILLED", "INVALID"}
# Short, valid fencing settings: 3 s > kill grace 0.5 + fence margin 1 + heartbeat interval 0.5.
SETTINGS = {
    "HEADWATER_JOBS_HEARTBEAT_INTERVAL": "0.5",
    "HEADWATER_JOBS_HEARTBEAT_TIMEOUT": "3",
    "HEADWATER_JOBS_KILL_GRACE": "0.5",
    "HEADWATER_JOBS_FENCE_MARGIN": "1",
    "HEADWATER_JOBS_POLL_INTERVAL": "0.1",
    "HEADWATER_JOBS_LISTEN": "false",
    "HEADWATER_JOBS_REAPER_INTERVAL": "0",  # the workers reap; the server only answers the API
}


def start_worker(url: str, data_dir: Path, host: str) -> subprocess.Popen[bytes]:
    """A real ``headwater worker`` on ``url``, its banner read (it is looping)."""
    # Each worker stands for a host of its own (its host name is all that tells hosts apart): neither may see the
    # other's processes as local orphans to kill, as on two machines.
    launcher = f"import socket; socket.gethostname = lambda: {host!r}; from headwater.cli import app; app()"
    data_dir.mkdir(parents=True)
    log_path = data_dir / "worker.log"
    # Its output goes to a file, never to a pipe nobody reads: a worker logging an outage would fill a pipe and
    # block in a write, and a blocked worker cannot fence.
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", launcher, "worker", "--slots", "4"],
            env=environment(url, data_dir, **SETTINGS),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while "Job worker" not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start: {log_path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a worker (its jobs are killed)."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_statuses(api: str, ids: list[str], wanted: set[str], timeout: float) -> dict[str, str]:
    """Poll the API until every job is in ``wanted``; their statuses (whatever they are at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = {job_id: httpx.get(f"{api}/api/v1/jobs/{job_id}", timeout=10).json()["status"] for job_id in ids}
        if all(status in wanted for status in statuses.values()) or time.monotonic() > deadline:
            return statuses
        time.sleep(0.2)


def trial(index: int, url: str, api: str, proxy: DbProxy, base: Path, *, jobs: int, outage: float) -> dict[str, object]:
    """One outage; what happened to its jobs."""
    marks = base / f"marks-{index}"
    marks.mkdir()
    script = MARKING.format(ticks=32, marks=marks)
    ids = []
    for n in range(jobs):
        body = {
            "id": f"trial-{index}-{n}-{uuid.uuid4().hex[:6]}",
            "name": "double-run",
            "user": "bench",
            "command_args": [script],
            "cluster_criteria": [["bench"]],
            "command_criteria": ["type:sh"],
            "max_attempts": 2,
        }
        answer = httpx.post(f"{api}/api/v1/jobs", json=body, timeout=10)
        answer.raise_for_status()
        ids.append(answer.json()["id"])
    cut_off = start_worker(proxy.url_for(url), base / f"a-{index}", "host-a")
    survivor = None
    try:
        running = wait_statuses(api, ids, {"RUNNING"}, timeout=60)
        if set(running.values()) != {"RUNNING"}:
            raise RuntimeError(f"trial {index}: jobs did not start on the first worker: {running}")
        survivor = start_worker(url, base / f"b-{index}", "host-b")
        proxy.cut()
        time.sleep(outage)
        proxy.restore()
        finals = wait_statuses(api, ids, FINAL, timeout=90)
    finally:
        proxy.restore()
        stop(cut_off)
        if survivor is not None:
            stop(survivor)
    twice = ran_twice(marks)
    return {"trial": index, "ran_twice": len(twice), "statuses": sorted(finals.values())}


def main() -> None:
    """Run the trials and print one line per trial and a summary (JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=4, help="jobs per trial, all held by the worker cut off")
    parser.add_argument("--outage", type=float, default=5.0, help="seconds the proxy stays cut (timeout: 3 s)")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    url = fresh_database("double_run")
    target = make_url(url)
    load_before = load_average()
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="hw-double-run-") as temp,
        DbProxy((target.host or "127.0.0.1", target.port or 5432)) as proxy,
    ):
        base = Path(temp)
        with server(url, base) as api:
            httpx.post(
                f"{api}/api/v1/clusters",
                json={"name": "bench", "type": "shell", "tags": ["bench"], "max_concurrent_jobs": 64},
                timeout=10,
            ).raise_for_status()
            httpx.post(
                f"{api}/api/v1/commands",
                json={"name": "sh", "executable": ["/bin/sh", "-c"], "tags": ["type:sh"]},
                timeout=10,
            ).raise_for_status()
            for index in range(options.trials):
                result = trial(index, url, api, proxy, base, jobs=options.jobs, outage=options.outage)
                results.append(result)
                print(f"trial {index + 1:2d}: {result['ran_twice']} job(s) ran twice; {result['statuses']}", flush=True)
    _postgres.drop_database(url)
    total = sum(int(r["ran_twice"]) for r in results)  # type: ignore[call-overload]
    trials_with = sum(1 for r in results if r["ran_twice"])
    summary = {
        "trials": len(results),
        "jobs_per_trial": options.jobs,
        "outage_s": options.outage,
        "jobs_ran_twice": total,
        "trials_with_a_double_run": trials_with,
        "load_before": load_before,
        "load_after": load_average(),
        "pid": os.getpid(),
    }
    print(json.dumps(summary) if options.json else summary)


if __name__ == "__main__":
    main()
