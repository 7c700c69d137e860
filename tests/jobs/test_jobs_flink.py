"""Real Flink jobs end to end through the API: ``flink run`` of the Flink that ``make flink`` installs in its own
virtualenv, on a local mini-cluster whose configuration binds 127.0.0.1, with output files checked; a running
PyFlink job killed by request and another by its timeout, with every process of its tree (the launcher, its JVM,
the PyFlink driver and the Python UDF workers the JVM starts) checked gone by pid."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import httpx
import pytest
from engine_helpers import (
    AGGREGATE_TOTALS,
    FLINK_SQL,
    KEY_TOTALS_EDGES,
    flink_setup,
    read_csv_parts,
    require_flink_home,
    run_job,
    run_pyflink_aggregate,
)
from jobs_helpers import wait_until
from process_helpers import gone, job_processes

from headwater.jobs.engines import FlinkEngine, JobContext, write_local_flink_conf
from headwater.jobs.worker import JobWorker

pytestmark = pytest.mark.anyio


def _context(config: dict[str, object], command: list[str], args: list[str]) -> JobContext:
    return JobContext(
        job_id="j1", job_name="agg", run_uuid="r-1", args=args, command=command, cluster_config=dict(config)
    )


def test_flink_launch_local_and_on_a_jobmanager(tmp_path: Path) -> None:
    home = require_flink_home()
    local = FlinkEngine().launch(_context({"flink_home": str(home)}, ["flink"], ["-py", "job.py", "x"]))
    assert local.argv[:4] == [str(home / "bin" / "flink"), "run", "-t", "local"]
    assert local.argv[-3:] == ["-py", "job.py", "x"]
    assert "-pyclientexec" in local.argv  # the venv of a pip-installed Flink runs PyFlink scripts
    assert local.env["_python_worker_execution_mode"] == "process"  # no loopback server on [::]
    assert "openlineage.run.tags=headwater_run_id:r-1;headwater_job_id:j1" in local.argv
    remote = FlinkEngine().launch(
        _context(
            {"flink_home": str(home), "jobmanager": "127.0.0.1:8081", "openlineage_url": "http://127.0.0.1:8000/"},
            ["flink", "-c", "Main"],
            ["app.jar"],
        )
    )
    assert remote.argv[2:4] == ["-m", "127.0.0.1:8081"] and remote.argv[-3:] == ["-c", "Main", "app.jar"]
    assert "-pyclientexec" not in remote.argv and "_python_worker_execution_mode" not in remote.env
    # A kill must reach the job on the session cluster, beyond the client's processes; a mini-cluster is one of them.
    assert remote.cancel is not None and local.cancel is None
    assert "openlineage.transport.url=http://127.0.0.1:8000" in remote.argv
    conf = write_local_flink_conf(home, tmp_path / "conf")
    text = (conf / "config.yaml").read_text()
    assert "localhost" not in text and text.count("127.0.0.1") >= 6
    assert (conf / "log4j-cli.properties").is_file()


@pytest.mark.integration
@pytest.mark.single_backend("postgres")  # one real Flink run per case (~15 s): the engine path is database-blind
async def test_pyflink_job_end_to_end(client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path) -> None:
    await flink_setup(client, tmp_path / "flink-conf")
    job, sink, elapsed = await run_pyflink_aggregate(client, worker, tmp_path, "flink-aggregate")
    assert job["status"] == "SUCCEEDED", (job["status_message"], job["stderr"][-3000:])
    assert job["seen"][-2:] == ["RUNNING", "SUCCEEDED"] and job["exit_code"] == 0
    assert read_csv_parts(sink) == AGGREGATE_TOTALS
    assert f"TAGS headwater_run_id:{job['run_id']};headwater_job_id:{job['id']}" in job["stdout"]
    print(f"flink job end to end: {elapsed:.1f} s")


@pytest.mark.integration
@pytest.mark.single_backend("postgres")
async def test_flink_job_that_fails_ends_failed_with_its_exit_code(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    await flink_setup(client, tmp_path / "flink-conf")
    job = await run_job(
        client,
        worker,
        {
            "name": "flink-broken",
            "user": "alice",
            # Planning fails: the query names a column the table does not have.
            "command_args": [
                "-e",
                "CREATE TABLE t (k STRING) WITH ('connector'='datagen', 'number-of-rows'='1');"
                "SELECT missing_column FROM t",
            ],
            "cluster_criteria": [["sched:flink"]],
            "command_criteria": ["type:flink-sql"],
            "timeout": 240,
        },
    )
    assert job["status"] == "FAILED" and job["exit_code"] not in (None, 0), job
    assert job["status_message"] == f"exit code {job['exit_code']}"
    assert "missing_column" in job["stderr"] + job["stdout"]


@pytest.mark.integration
@pytest.mark.single_backend("postgres")
async def test_flink_sql_job_records_its_column_lineage(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    await flink_setup(client, tmp_path / "flink-conf", lineage_namespace="flink://local")
    source = tmp_path / "events.csv"
    source.write_text("a,1,x\nb,2,x\na,3,x\nb,9,skip;me\n")
    sink = tmp_path / "key_totals"
    script = tmp_path / "totals.sql"
    script.write_text(FLINK_SQL.format(source=source.as_uri(), sink=sink.as_uri()))
    job = await run_job(
        client,
        worker,
        {
            "name": "flink-sql-totals",
            "user": "alice",
            "command_args": ["-f", str(script)],
            "cluster_criteria": [["sched:flink"]],
            "command_criteria": ["type:flink-sql"],
            "timeout": 240,
        },
    )
    assert job["status"] == "SUCCEEDED", (job["status_message"], job["stderr"][-3000:])
    assert read_csv_parts(sink) == [["a", "4"], ["b", "2"]]
    graph = (
        await client.get(
            "/api/v1/lineage/graph",
            params={"namespace": "flink://local", "name": "key_totals", "field": "total", "direction": "upstream"},
        )
    ).json()
    edges = {(e["source"], e["transformation_type"], e["subtype"], e["origin"]) for e in graph["edges"]}
    assert edges == KEY_TOTALS_EDGES
    assert {e["last_run_id"] for e in graph["edges"]} == {job["run_id"]}  # one id: status, logs and lineage
    run = (await client.get(f"/api/v1/lineage/runs/{job['run_id']}")).json()
    assert run["state"] == "COMPLETE", run


# An unbounded job whose Python UDF sleeps: it runs until killed, with the UDF in a Python worker process the
# JVM starts (PyFlink's "process" execution mode), so the tree is launcher JVM + driver + UDF worker.
ENDLESS_UDF_SCRIPT = textwrap.dedent(
    """
    import time
    from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
    from pyflink.table.udf import udf

    @udf(result_type=DataTypes.BIGINT())
    def slow(n):
        time.sleep(0.5)
        return n

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.create_temporary_function("slow", slow)
    env.execute_sql("CREATE TABLE numbers (n BIGINT) WITH ('connector'='datagen', 'rows-per-second'='2')")
    env.execute_sql("CREATE TABLE shown (n BIGINT) WITH ('connector'='print')")
    env.execute_sql("INSERT INTO shown SELECT slow(n) FROM numbers").wait()
    """
)


def _leader(worker: JobWorker, job_id: str) -> int | None:
    return next((run.process.pid for run in worker.running.values() if run.job_id == job_id), None)


def _kinds(processes: dict[int, str], script: Path) -> dict[str, list[int]]:
    """The job's processes by role: the flink launcher's JVM, the PyFlink driver, the Python UDF workers."""
    return {
        "jvm": [pid for pid, cmd in processes.items() if "org.apache.flink.client.cli.CliFrontend" in cmd],
        "driver": [pid for pid, cmd in processes.items() if str(script) in cmd and "python" in cmd],
        "udf worker": [pid for pid, cmd in processes.items() if "pyflink.fn_execution.beam.beam_boot" in cmd],
    }


async def _start_endless_udf_job(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path, timeout: int
) -> tuple[str, Path, dict[int, str]]:
    """Submit the endless UDF job and run the worker until its UDF worker runs; its id, script and processes."""
    await flink_setup(client, tmp_path / "flink-conf")
    script = tmp_path / "endless.py"
    script.write_text(ENDLESS_UDF_SCRIPT)
    body = {
        "name": "flink-endless",
        "user": "alice",
        "command_args": ["-py", str(script)],
        "cluster_criteria": [["sched:flink"]],
        "command_criteria": ["type:flink"],
        "timeout": timeout,
    }
    r = await client.post("/api/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]

    def udf_running() -> bool:
        return bool(_kinds(job_processes(job_id, _leader(worker, job_id)), script)["udf worker"])

    wait_until(udf_running, worker, timeout=min(timeout, 150))
    processes = job_processes(job_id, _leader(worker, job_id))
    kinds = _kinds(processes, script)
    assert all(kinds.values()), (kinds, processes)
    return job_id, script, processes


@pytest.mark.integration
@pytest.mark.single_backend("postgres")
async def test_killing_a_running_flink_job_ends_its_whole_process_tree(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    started = time.monotonic()
    job_id, _, processes = await _start_endless_udf_job(client, worker, tmp_path, timeout=300)
    running_after = time.monotonic() - started
    assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "RUNNING"
    r = await client.delete(f"/api/v1/jobs/{job_id}")
    assert r.status_code == 202, r.text
    killed_at = time.monotonic()
    worker.drain(timeout=60)
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "KILLED" and job["status_message"] == "killed by request", job
    still = {pid: cmd for pid, cmd in processes.items() if not gone(pid)}
    assert still == {}, still
    assert job_processes(job_id) == {}  # nothing of the job escaped the group (reparented, setsid)
    print(f"flink kill: udf worker up after {running_after:.1f} s, tree gone {time.monotonic() - killed_at:.1f} s")


@pytest.mark.integration
@pytest.mark.single_backend("postgres")
async def test_a_flink_job_past_its_timeout_loses_its_whole_process_tree(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    # Long enough for the JVM, the driver and the UDF worker to be up (15-25 s on a busy 2-core machine).
    timeout = 45
    started = time.monotonic()
    job_id, _, processes = await _start_endless_udf_job(client, worker, tmp_path, timeout=timeout)
    assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "RUNNING"
    worker.drain(timeout=timeout + 60)
    elapsed = time.monotonic() - started
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    assert job["status"] == "KILLED" and job["status_message"] == f"timed out after {timeout} s", job
    assert timeout <= elapsed < timeout + worker.kill_grace + 15
    still = {pid: cmd for pid, cmd in processes.items() if not gone(pid)}
    assert still == {}, still
    assert job_processes(job_id) == {}
    print(f"flink timeout: job ended {elapsed:.1f} s after submission (timeout {timeout} s)")
