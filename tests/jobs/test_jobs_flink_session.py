"""A real Flink session cluster: ``bin/start-cluster.sh`` of the Flink that ``make flink`` installs, bound to
127.0.0.1 on free ports; a PyFlink job run on it through the API (``flink run -m host:port``), its output checked
and the cluster's own REST API asked whether it ran the job; and an endless job killed through the API, which
must end on the cluster too, not only in its ``flink run`` client.

One test function, so that pytest-xdist never starts a second cluster for a second test of the module."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from engine_helpers import (
    AGGREGATE_TOTALS,
    flink_setup,
    read_csv_parts,
    require_flink_home,
    run_pyflink_aggregate,
)
from jobs_helpers import wait_until
from process_helpers import cmdline, gone, job_processes

from headwater.jobs.engines import write_local_flink_conf
from headwater.jobs.worker import JobWorker

pytestmark = pytest.mark.anyio

ENDLESS_SCRIPT = """
from pyflink.table import EnvironmentSettings, TableEnvironment

env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
env.execute_sql("CREATE TABLE numbers (n BIGINT) WITH ('connector'='datagen', 'rows-per-second'='10')")
env.execute_sql("CREATE TABLE sunk (n BIGINT) WITH ('connector'='blackhole')")
env.execute_sql("INSERT INTO sunk SELECT n FROM numbers").wait()
"""
SUBMITTED = re.compile(r"Job has been submitted with JobID ([0-9a-f]{32})")


@dataclass
class FlinkSession:
    """A running session cluster: its REST address (``host:port``), conf dir and daemon pids."""

    address: str
    conf_dir: Path
    pids: list[int]

    def rest(self, path: str) -> dict:
        """GET a path of the cluster's REST API."""
        response = httpx.get(f"http://{self.address}{path}", timeout=10)
        response.raise_for_status()
        return response.json()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _daemon_pids(conf_dir: Path) -> list[int]:
    return [int(line) for pidfile in (conf_dir / "pid").glob("*.pid") for line in pidfile.read_text().split()]


@pytest.fixture(scope="module")
def flink_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlinkSession]:
    """A local session cluster (a JobManager and a TaskManager), stopped by stop-cluster.sh, then by pid."""
    home = require_flink_home()
    conf_dir = write_local_flink_conf(
        home, tmp_path_factory.mktemp("flink-session") / "conf", rest_port=_free_port(), rpc_port=_free_port()
    )
    port = int((conf_dir / "masters").read_text().strip().rsplit(":", 1)[1])
    env = {**os.environ, "FLINK_HOME": str(home), "FLINK_CONF_DIR": str(conf_dir)}
    session = FlinkSession(address=f"127.0.0.1:{port}", conf_dir=conf_dir, pids=[])

    def stop() -> None:
        subprocess.run([home / "bin" / "stop-cluster.sh"], env=env, capture_output=True, timeout=60, check=False)
        for pid in session.pids:
            # Only a daemon of this conf dir: a pid reused by another process is left alone.
            if not gone(pid) and str(conf_dir) in cmdline(pid):
                os.kill(pid, signal.SIGKILL)

    try:
        started = subprocess.run(
            [home / "bin" / "start-cluster.sh"], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        session.pids = _daemon_pids(conf_dir)
        assert started.returncode == 0 and len(session.pids) == 2, (started.stdout, started.stderr, session.pids)
        deadline = time.monotonic() + 120
        while True:  # the TaskManager registers a few seconds after the REST endpoint answers
            try:
                if session.rest("/overview")["taskmanagers"] >= 1:
                    break
            except httpx.HTTPError:
                pass
            logs = "\n".join(p.read_text()[-2000:] for p in (conf_dir / "log").glob("*.log"))
            assert time.monotonic() < deadline, f"session cluster not up in 120 s:\n{logs}"
            assert not any(gone(pid) for pid in session.pids), f"a session daemon died:\n{logs}"
            time.sleep(0.5)
        yield session
    finally:
        stop()
    assert all(gone(pid) for pid in session.pids)


@pytest.mark.integration
@pytest.mark.single_backend("postgres")  # one real cluster per suite: the engine path is database-blind
async def test_pyflink_jobs_run_and_are_killed_on_a_session_cluster(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path, flink_session: FlinkSession
) -> None:
    await flink_setup(
        client, tmp_path / "client-conf", jobmanager=flink_session.address, lineage_namespace="flink://session"
    )
    job, sink, elapsed = await run_pyflink_aggregate(client, worker, tmp_path, "flink-session-aggregate")
    assert job["status"] == "SUCCEEDED", (job["status_message"], job["stderr"][-3000:], job["stdout"][-3000:])
    assert read_csv_parts(sink) == AGGREGATE_TOTALS
    # The job ran on the session cluster, not on a mini-cluster of the client: the cluster knows it, finished.
    found = SUBMITTED.search(job["stdout"])
    assert found, job["stdout"][-3000:]
    jobs = {j["jid"]: j for j in flink_session.rest("/jobs/overview")["jobs"]}
    assert jobs[found.group(1)]["state"] == "FINISHED", jobs
    assert jobs[found.group(1)]["name"].startswith("insert-into_default_catalog.default_database.totals")
    print(f"flink session-cluster job end to end: {elapsed:.1f} s")
    # Its client ran here, with the lineage hook: the INSERT it ran is a child run of the job's, with its edges.
    graph = (
        await client.get(
            "/api/v1/lineage/graph",
            params={"namespace": "flink://session", "name": "totals", "field": "k", "direction": "upstream"},
        )
    ).json()
    assert {(e["source"], e["transformation_type"], e["subtype"]) for e in graph["edges"]} == {
        ("flink://session/events#k", "DIRECT", "IDENTITY"),
        ("flink://session/events#k", "INDIRECT", "GROUP_BY"),
    }, graph
    (insert_run,) = {e["last_run_id"] for e in graph["edges"]}
    run = (await client.get(f"/api/v1/lineage/runs/{insert_run}")).json()
    assert run["parent_run_id"] == job["run_id"] and run["state"] == "COMPLETE", run
    assert run["job_name"] == "flink-session-aggregate.execute_sql.totals", run

    # Killing the job kills its client, and cancels what the client submitted: the cluster's job ends CANCELED.
    endless = tmp_path / "endless.py"
    endless.write_text(ENDLESS_SCRIPT)
    body = {
        "name": "flink-session-endless",
        "user": "alice",
        "command_args": ["-py", str(endless)],
        "cluster_criteria": [["sched:flink"]],
        "command_criteria": ["type:flink"],
        "timeout": 300,
    }
    r = await client.post("/api/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    stdout = worker.jobs_dir / job_id / "stdout"
    flink_job: list[str] = []

    def running_on_the_cluster() -> bool:
        if not flink_job and stdout.exists() and (match := SUBMITTED.search(stdout.read_text())):
            flink_job.append(match.group(1))
        return bool(flink_job) and flink_session.rest(f"/jobs/{flink_job[0]}")["state"] == "RUNNING"

    wait_until(running_on_the_cluster, worker, timeout=150)
    client_processes = job_processes(job_id, (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()["pid"])
    assert client_processes
    assert (await client.delete(f"/api/v1/jobs/{job_id}")).status_code == 202
    killed_at = time.monotonic()
    worker.drain(timeout=60)
    killed = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert killed["status"] == "KILLED" and killed["status_message"] == "killed by request", killed
    assert all(gone(pid) for pid in client_processes) and job_processes(job_id) == {}
    deadline = time.monotonic() + 30
    while (state := flink_session.rest(f"/jobs/{flink_job[0]}")["state"]) != "CANCELED":
        assert time.monotonic() < deadline and state in {"RUNNING", "CANCELLING"}, state
        time.sleep(0.2)
    print(f"flink session-cluster job cancelled {time.monotonic() - killed_at:.1f} s after the kill")
