"""Flink application mode for real: each job gets its own Flink cluster (``standalone-job.sh`` + a TaskManager of
the Flink that ``make flink`` installs), on 127.0.0.1, run by the cluster-manager supervisor through the worker.

Checked: a PyFlink job succeeds with its fixed Flink job id and its status read from its JobManager; a streaming
job killed through the API is cancelled on its cluster (the REST API's CANCELED read before the cluster stopped)
and every process of the cluster is gone, no port left listening; with a ``savepoint_dir`` the kill stops the job
with a savepoint whose path lands in the job's reason, and a second job of the same name asking for the last
savepoint is restored from it (Flink's own checkpoint statistics say so); a failing job is FAILED with its root
cause in the reason; the clusters' logs are readable through the job's output. The launch itself is unit-tested.
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from engine_helpers import AGGREGATE_TOTALS, flink_setup, read_csv_parts, require_flink_home, run_job
from engine_helpers import run_pyflink_aggregate as _run_aggregate
from fastapi import FastAPI
from jobs_helpers import make_worker, wait_until
from process_helpers import job_processes

from headwater.jobs.drivers import SPEC_ENV, read_app_record
from headwater.jobs.drivers.flink_application import PYTHON_DRIVER
from headwater.jobs.drivers.flink_conf import latest_savepoint, savepoint_target
from headwater.jobs.engines import FLINK_SQL_RUNNER, EngineError, FlinkEngine, JobContext
from headwater.jobs.worker import JobWorker

pytestmark = pytest.mark.anyio

ENDLESS = textwrap.dedent(
    """
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.execute_sql("CREATE TABLE numbers (n BIGINT) WITH ('connector'='datagen', 'rows-per-second'='10')")
    env.execute_sql("CREATE TABLE sunk (n BIGINT) WITH ('connector'='blackhole')")
    env.execute_sql("INSERT INTO sunk SELECT n FROM numbers").wait()
    """
)
# Fails while running on the TaskManager, not while planning: the cast of a generated string cannot succeed.
FAILING = textwrap.dedent(
    """
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.execute_sql("CREATE TABLE words (w STRING) WITH ('connector'='datagen', 'number-of-rows'='5', 'fields.w.length'='4')")
    env.execute_sql("CREATE TABLE sunk (n INT) WITH ('connector'='blackhole')")
    env.execute_sql("INSERT INTO sunk SELECT CAST(CONCAT('x', w) AS INT) FROM words").wait()
    """
)


@pytest.fixture
def worker(app: FastAPI, tmp_path: Path) -> Iterator[JobWorker]:
    """The jobs' worker with the production kill grace (5 s, not the 2 s of other tests): after the SIGTERM of a
    kill, the supervisor reads the final state from the JobManager, copies the logs and stops the cluster, which
    on this shared 2-core machine under load took more than 2 s."""
    job_worker = make_worker(app, tmp_path / "data", kill_grace=5.0)
    yield job_worker
    job_worker.shutdown()


def _context(config: dict[str, object], command: list[str], args: list[str]) -> JobContext:
    return JobContext(
        job_id="j1", job_name="pipe/line", run_uuid=str(uuid.UUID(int=7)), args=args, command=command,
        cluster_config={"mode": "application", **config},
    )  # fmt: skip


def test_application_mode_launches_a_supervised_per_job_cluster(tmp_path: Path) -> None:
    home = require_flink_home()
    launch = FlinkEngine().launch(_context({"flink_home": str(home)}, ["flink"], ["-py", "job.py", "x"]))
    split = launch.argv.index("--")
    assert launch.argv[1:3] == ["-I", "-c"] and "headwater.jobs.drivers.supervise" in launch.argv[3]
    assert launch.argv[launch.argv.index("--poll") + 1] == "0.5"
    program = launch.argv[split + 1 :]
    assert program[:2] == [str(home / "bin" / "standalone-job.sh"), "start-foreground"]
    assert program[program.index("--job-classname") + 1] == PYTHON_DRIVER
    assert program[program.index("--job-id") + 1] == uuid.UUID(int=7).hex  # the run id: known before it runs
    assert program[-3:] == ["-py", "job.py", "x"] and "-Dopenlineage.job.name=pipe/line" in program
    assert any(arg.startswith("-Dpython.client.executable=") for arg in program)
    spec = json.loads(launch.env[SPEC_ENV])
    assert spec["manager"] == "flink-application" and spec["config"]["job_id"] == uuid.UUID(int=7).hex
    assert spec["config"]["python_job"] is True and spec["config"]["restore"] is None
    # No kill from the worker: the application cluster is the job's own processes (the supervisor cancels first).
    assert launch.cancel is None
    assert "PYTHONPATH" in launch.env  # the lineage hook, for the program the JobManager runs

    # A jar job: its class from -c, the jar on the user classpath; a job may ask for the last savepoint.
    jar = FlinkEngine().launch(
        _context({"flink_home": str(home)}, ["flink"], ["-s", "latest", "-c", "M", "a.jar", "y"])
    )
    program = jar.argv[jar.argv.index("--") + 1 :]
    assert program[program.index("--job-classname") + 1] == "M" and program[-1] == "y" and "a.jar" not in program
    spec = json.loads(jar.env[SPEC_ENV])
    assert spec["config"]["jars"] == ["a.jar"] and spec["config"]["restore"] == "latest"
    assert spec["config"]["python_job"] is False and "PYTHONPATH" not in jar.env
    # flink-sql runs Headwater's SQL runner as the program; no "--" (the PythonDriver passes it to argparse).
    sql = FlinkEngine().launch(_context({"flink_home": str(home)}, ["flink-sql"], ["-f", "t.sql"]))
    assert sql.argv[-4:] == ["-py", str(FLINK_SQL_RUNNER), "-f", "t.sql"]
    # The cluster may ask for every job: each restores the last savepoint of its own name.
    every = FlinkEngine().launch(_context({"flink_home": str(home), "restore": "latest"}, ["flink"], ["-py", "j.py"]))
    assert json.loads(every.env[SPEC_ENV])["config"]["restore"] == "latest"
    with pytest.raises(EngineError, match="only mode"):
        FlinkEngine().launch(_context({"flink_home": str(home), "mode": "aplication"}, ["flink"], ["-py", "j.py"]))
    with pytest.raises(EngineError, match="either jobmanager"):
        FlinkEngine().launch(_context({"flink_home": str(home), "jobmanager": "127.0.0.1:1"}, ["flink"], ["a.jar"]))


def test_the_last_savepoint_is_the_newest_complete_one_of_the_job_name(tmp_path: Path) -> None:
    target = Path(savepoint_target(str(tmp_path), "pipe/line"))
    assert target == tmp_path / "pipe_line"
    assert latest_savepoint(tmp_path.as_uri(), "pipe/line") is None
    for name, age in (("savepoint-aa-1", 30), ("savepoint-aa-2", 10), ("savepoint-aa-3", 0)):
        (target / name).mkdir(parents=True)
        if name != "savepoint-aa-3":  # still being written: no _metadata yet
            (target / name / "_metadata").write_text("x")
            os.utime(target / name / "_metadata", (time.time() - age, time.time() - age))
    assert latest_savepoint(str(tmp_path), "pipe/line") == (target / "savepoint-aa-2").as_uri()
    assert latest_savepoint(str(tmp_path), "other") is None


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _rest(worker: JobWorker, job_id: str, path: str) -> dict:
    record = read_app_record(worker.jobs_dir / job_id)
    assert record is not None
    response = httpx.get(f"http://{record.config['rest_address']}{path}", timeout=10)
    response.raise_for_status()
    return response.json()


def _cluster_gone(worker: JobWorker, job_id: str) -> None:
    """No process of the job is left and nothing listens on its cluster's REST or RPC port."""
    record = read_app_record(worker.jobs_dir / job_id)
    assert record is not None
    rest_port = int(record.config["rest_address"].rsplit(":", 1)[1])
    conf = (worker.jobs_dir / job_id / "flink-app" / "conf" / "config.yaml").read_text()
    rpc_port = int(conf.split("rpc:")[1].split("port:")[1].split()[0])
    assert job_processes(job_id) == {}
    assert not _listening(rest_port) and not _listening(rpc_port)


async def _setup(client: httpx.AsyncClient, tmp_path: Path, **config: object) -> None:
    await flink_setup(
        client, tmp_path / "flink-conf", mode="application", lineage_namespace="flink://app", **config
    )  # fmt: skip


@pytest.mark.integration
@pytest.mark.single_backend("postgres")  # one real cluster per case: the engine path is database-blind
async def test_a_pyflink_job_runs_on_its_own_application_cluster(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    await _setup(client, tmp_path)
    job, sink, elapsed = await _run_aggregate(client, worker, tmp_path, "flink-app-aggregate")
    assert job["status"] == "SUCCEEDED", (job["status_message"], job["stderr"][-3000:], job["stdout"][-3000:])
    assert read_csv_parts(sink) == AGGREGATE_TOTALS
    record = read_app_record(worker.jobs_dir / job["id"])
    assert record is not None and record.manager == "flink-application"
    # The Flink job id is the job's run id, and its end was read from the JobManager's REST API.
    assert record.app_id == uuid.UUID(job["run_id"]).hex and (record.state, record.raw) == ("SUCCEEDED", "FINISHED")
    assert job["status_message"] == f"Flink job {record.app_id} SUCCEEDED on the cluster (FINISHED)"
    assert "SUBMITTED (STARTING)" in job["stderr"] and "SUCCEEDED (FINISHED)" in job["stderr"]
    # The program ran in the JobManager, whose console is the job's stdout; the cluster's logs are in driver/.
    assert f"TAGS headwater_run_id:{job['run_id']};headwater_job_id:{job['id']}" in job["stdout"]
    names = {entry["path"] for entry in (await client.get(f"/api/v1/jobs/{job['id']}/output")).json()}
    logs = [name for name in names if name.startswith("driver/flink-")]
    assert any("standalonejob" in name for name in logs) and any("taskexecutor" in name for name in logs), names
    driver_stdout = (await client.get(f"/api/v1/jobs/{job['id']}/output/driver/stdout")).text
    assert f"TAGS headwater_run_id:{job['run_id']}" in driver_stdout  # the JobManager's console, kept
    jm_log = (await client.get(f"/api/v1/jobs/{job['id']}/output/{min(logs)}")).text
    assert f"Job {record.app_id}" in jm_log or record.app_id in jm_log
    _cluster_gone(worker, job["id"])
    print(f"flink application-mode job end to end: {elapsed:.1f} s")
    # The lineage hook ran in the PyFlink program on the JobManager: its INSERT is a child run of the job's.
    graph = (
        await client.get(
            "/api/v1/lineage/graph",
            params={"namespace": "flink://app", "name": "totals", "field": "k", "direction": "upstream"},
        )
    ).json()
    (insert_run,) = {e["last_run_id"] for e in graph["edges"]}
    run = (await client.get(f"/api/v1/lineage/runs/{insert_run}")).json()
    assert run["parent_run_id"] == job["run_id"] and run["state"] == "COMPLETE", run


@pytest.mark.integration
@pytest.mark.single_backend("postgres")
async def test_a_failing_application_job_is_failed_with_its_root_cause(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    await _setup(client, tmp_path)
    script = tmp_path / "failing.py"
    script.write_text(FAILING)
    job = await run_job(
        client, worker,
        {"name": "flink-app-failing", "user": "alice", "command_args": ["-py", str(script)],
         "cluster_criteria": [["sched:flink"]], "command_criteria": ["type:flink"], "timeout": 240},
    )  # fmt: skip
    assert job["status"] == "FAILED" and job["exit_code"] == 1, (job["status_message"], job["stderr"][-3000:])
    record = read_app_record(worker.jobs_dir / job["id"])
    assert record is not None and (record.state, record.raw) == ("FAILED", "FAILED")
    # The root cause Flink recorded for the job, not only an exit code.
    assert "NumberFormatException" in record.detail or "cast" in record.detail.lower(), record.detail
    assert record.detail in job["status_message"], job["status_message"]
    _cluster_gone(worker, job["id"])

    # A program that fails before it submits a job: the application failed, and the reason says with what.
    script.write_text("raise ValueError('no job for you')\n")
    job = await run_job(
        client, worker,
        {"name": "flink-app-failing-early", "user": "alice", "command_args": ["-py", str(script)],
         "cluster_criteria": [["sched:flink"]], "command_criteria": ["type:flink"], "timeout": 240},
    )  # fmt: skip
    assert job["status"] == "FAILED", (job["status_message"], job["stderr"][-3000:])
    assert job["status_message"].endswith("FAILED on the cluster (application FAILED): ValueError: no job for you")
    assert "ValueError: no job for you" in job["stdout"]  # the program's traceback, from the JobManager's console
    _cluster_gone(worker, job["id"])


async def _start_endless(client: httpx.AsyncClient, worker: JobWorker, script: Path, args: list[str]) -> str:
    """Submit the endless job as ``flink-app-endless`` and run the worker until Flink runs it; its id."""
    body = {
        "name": "flink-app-endless", "user": "alice", "command_args": [*args, "-py", str(script)],
        "cluster_criteria": [["sched:flink"]], "command_criteria": ["type:flink"], "timeout": 300,
    }  # fmt: skip
    r = await client.post("/api/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]

    def running() -> bool:  # every task of the job running, as a long-running job's are when it is stopped
        record = read_app_record(worker.jobs_dir / job_id)
        if record is None or record.raw != "RUNNING":
            return False
        vertices = _rest(worker, job_id, f"/jobs/{record.app_id}")["vertices"]
        return all(vertex["status"] == "RUNNING" for vertex in vertices)

    wait_until(running, worker, timeout=150)
    return job_id


async def _kill(client: httpx.AsyncClient, worker: JobWorker, job_id: str) -> dict:
    assert (await client.delete(f"/api/v1/jobs/{job_id}")).status_code == 202
    worker.drain(timeout=90)
    return (await client.get(f"/api/v1/jobs/{job_id}")).json()


@pytest.mark.integration
@pytest.mark.single_backend("postgres")
async def test_killing_an_application_job_cancels_it_on_its_cluster_and_stops_the_cluster(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    await _setup(client, tmp_path)
    script = tmp_path / "endless.py"
    script.write_text(ENDLESS)
    job_id = await _start_endless(client, worker, script, [])
    flink_job = read_app_record(worker.jobs_dir / job_id).app_id  # type: ignore[union-attr]
    assert _rest(worker, job_id, f"/jobs/{flink_job}")["state"] == "RUNNING"
    started = time.monotonic()
    killed = await _kill(client, worker, job_id)
    print(f"flink application-mode job killed and its cluster stopped in {time.monotonic() - started:.1f} s")
    assert killed["status"] == "KILLED", killed
    record = read_app_record(worker.jobs_dir / job_id)
    # CANCELED is what the JobManager's REST API answered: read before close() stopped the cluster.
    assert record is not None and (record.state, record.raw) == ("KILLED", "CANCELED"), record
    assert killed["status_message"] == f"killed by request; Flink job {flink_job} KILLED on the cluster (CANCELED)"
    _cluster_gone(worker, job_id)


@pytest.mark.integration
@pytest.mark.single_backend("postgres")
async def test_a_kill_stops_with_a_savepoint_that_the_next_job_of_the_name_restores(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    savepoints = tmp_path / "savepoints"
    await _setup(client, tmp_path, savepoint_dir=savepoints.as_uri())
    script = tmp_path / "endless.py"
    script.write_text(ENDLESS)
    first = await _start_endless(client, worker, script, [])
    killed = await _kill(client, worker, first)
    assert killed["status"] == "KILLED", killed
    record = read_app_record(worker.jobs_dir / first)
    assert record is not None and (record.state, record.raw) == ("KILLED", "FINISHED"), record  # stopped, drained
    saved = latest_savepoint(str(savepoints), "flink-app-endless")
    assert saved is not None and Path(saved.removeprefix("file://")).parent == savepoints / "flink-app-endless"
    flink_path = f"file:{Path(saved.removeprefix('file://'))}"  # Flink writes file:/path
    assert f"stopped with savepoint {flink_path}" in killed["status_message"], killed["status_message"]
    _cluster_gone(worker, first)

    second = await _start_endless(client, worker, script, ["-s", "latest"])
    flink_job = read_app_record(worker.jobs_dir / second).app_id  # type: ignore[union-attr]
    restored = _rest(worker, second, f"/jobs/{flink_job}/checkpoints")["latest"]["restored"]
    assert restored["is_savepoint"] and restored["external_path"] == flink_path, restored
    killed = await _kill(client, worker, second)
    assert killed["status"] == "KILLED", killed
    assert f"restored from savepoint {flink_path}" in killed["status_message"], killed["status_message"]
    assert killed["status_message"].count("stopped with savepoint file:") == 1, killed["status_message"]
    _cluster_gone(worker, second)
