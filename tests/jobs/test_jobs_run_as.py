"""Jobs run as an unprivileged OS user (HEADWATER_JOBS_RUN_AS) by a worker running as root: a job cannot read the
database file, another job's directory, or the file cache's metadata; each job of a uid range gets its own uid;
a job cannot swap its log for a link to a file the server would then serve; a worker that is not root refuses the
setting. The tests create real OS users with useradd (and remove them); they need root, which CI runs as."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, make_worker, shell_setup, spark_setup, wait_until

from headwater.jobs.exit_status import read_exit_status
from headwater.jobs.worker import JobWorker
from headwater.settings import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SECRET = "only-for-job-a-7c1d"


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("starting jobs as another user needs a worker running as root")
    if shutil.which("useradd") is None:
        message = "useradd is missing: install the passwd package"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def job_user() -> Iterator[pwd.struct_passwd]:
    """A real unprivileged system user, removed afterwards."""
    _need_root()
    name = f"hwjob{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory as a careless install leaves it: world-readable, with an embedded database 0644 and a file
    cache entry; under /tmp, so the job's user can reach it (pytest's own temporary directories are 0700)."""
    root = Path(tempfile.mkdtemp(prefix="hw-runas-", dir="/tmp"))
    os.chmod(root, 0o755)
    (root / "headwater.db").write_text("SQLite format 3 - the server's database")
    os.chmod(root / "headwater.db", 0o644)
    meta = root / "cache" / "files" / "0123abcd" / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text('{"url": "https://artifacts.example/app.jar?token=cache-secret"}')
    for path in (root / "cache", root / "cache" / "files", meta.parent):
        os.chmod(path, 0o755)
    os.chmod(meta, 0o644)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _run(client: httpx.AsyncClient, worker: JobWorker, script: str) -> tuple[str, dict[str, object]]:
    job_id = (await client.post("/api/v1/jobs", json=job_body(script))).json()["id"]
    worker.drain(timeout=30)
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    return (await client.get(f"/api/v1/jobs/{job_id}/output/stdout")).text, job


def _probe(data_dir: Path, other_dir: Path) -> str:
    """A script trying to read what a job must not read; each attempt prints its exit status."""
    return (
        f"cat {other_dir}/secret.txt; echo other=$?; "
        f"cat {data_dir}/headwater.db; echo db=$?; "
        f"ls {data_dir}; echo ls=$?; "
        f"cat {data_dir}/cache/files/0123abcd/meta.json; echo meta=$?; "
        'echo mine > "$HOME/own.txt" && cat own.txt; id -u'
    )


async def test_a_job_run_as_a_user_reads_neither_the_database_nor_other_jobs_nor_the_cache(
    client: httpx.AsyncClient, app: FastAPI, job_user: pwd.struct_passwd, data_dir: Path
) -> None:
    worker = make_worker(app, data_dir, run_as=job_user.pw_name)
    try:
        await shell_setup(client)
        first, job = await _run(client, worker, f"echo {SECRET} > secret.txt; cat secret.txt; id -u")
        assert job["status"] == "SUCCEEDED", job
        assert first == f"{SECRET}\n{job_user.pw_uid}\n"  # its own files it reads; it ran as the user
        other = worker.jobs_dir / str(job["id"])
        output, job = await _run(client, worker, _probe(data_dir, other))
    finally:
        worker.shutdown()
    assert job["status"] == "SUCCEEDED", job
    lines = output.splitlines()
    assert {"other=1", "db=1", "meta=1"} <= set(lines) and "ls=0" not in lines, output
    assert SECRET not in output and "SQLite" not in output and "cache-secret" not in output
    assert lines[-2:] == ["mine", str(job_user.pw_uid)]
    # A finished job's directory is the worker's again: no later job of that user can open it.
    assert other.stat().st_uid == os.geteuid() and stat.S_IMODE(other.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "headwater.db").stat().st_mode) == 0o600
    database = app.state.settings.database_url
    if database.startswith("sqlite:///"):  # the suite's own SQLite file is protected the same way
        assert stat.S_IMODE(Path(database.removeprefix("sqlite:///")).stat().st_mode) == 0o600


def _free_uids(count: int) -> str:
    """``count`` consecutive uids with no passwd entry and no process, as a range ``lo-hi``."""
    used = {entry.pw_uid for entry in pwd.getpwall()}
    used |= {os.stat(f"/proc/{pid}").st_uid for pid in os.listdir("/proc") if pid.isdigit()}
    for low in range(61_000, 64_000):
        if not used & set(range(low, low + count)):
            return f"{low}-{low + count - 1}"
    raise AssertionError("no free uids")


async def test_each_running_job_of_a_uid_range_has_its_own_uid(
    client: httpx.AsyncClient, app: FastAPI, data_dir: Path
) -> None:
    _need_root()
    uids = _free_uids(2)
    worker = make_worker(app, data_dir, run_as=uids)
    try:
        await shell_setup(client)
        holder = job_body(f"echo {SECRET} > secret.txt; id -u > uid.txt; sleep 60")
        holder_id = (await client.post("/api/v1/jobs", json=holder)).json()["id"]
        holder_dir = worker.jobs_dir / holder_id
        wait_until(lambda: (holder_dir / "uid.txt").is_file() and (holder_dir / "uid.txt").read_text() != "", worker)
        reader = job_body(f"cat {holder_dir}/secret.txt; echo other=$?; id -u")
        reader_id = (await client.post("/api/v1/jobs", json=reader)).json()["id"]
        wait_until(lambda: read_exit_status(worker.jobs_dir / reader_id) is not None, worker)
        output = (await client.get(f"/api/v1/jobs/{reader_id}/output/stdout")).text
        holder_uid = (holder_dir / "uid.txt").read_text().strip()
        assert (await client.delete(f"/api/v1/jobs/{holder_id}")).status_code == 202
        worker.drain(timeout=30)
    finally:
        worker.shutdown()
    low, high = (int(part) for part in uids.split("-"))
    lines = output.splitlines()
    assert "other=1" in lines and SECRET not in output, output
    assert {int(holder_uid), int(lines[-1])} == {low, high}  # two jobs at once, two uids


async def test_a_job_cannot_make_the_server_serve_a_file_through_a_link(
    client: httpx.AsyncClient, app: FastAPI, job_user: pwd.struct_passwd, data_dir: Path
) -> None:
    worker = make_worker(app, data_dir, run_as=job_user.pw_name)
    try:
        await shell_setup(client)
        target = data_dir / "headwater.db"
        job_id = (await client.post("/api/v1/jobs", json=job_body(f"rm stdout; ln -s {target} stdout"))).json()["id"]
        worker.drain(timeout=30)
        assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "SUCCEEDED"
        for url in (f"/api/v1/jobs/{job_id}/output/stdout", f"/api/v1/jobs/{job_id}/logs/stdout"):
            answer = await client.get(url)
            assert "SQLite" not in answer.text, (url, answer.status_code)
    finally:
        worker.shutdown()


def test_a_worker_that_is_not_root_refuses_run_as() -> None:
    _need_root()
    from headwater.jobs.isolation import JobIsolation, RunAsError

    # Really not root for the call: the effective uid dropped (the saved uid, root, takes it back after).
    os.seteuid(65534)
    try:
        with pytest.raises(RunAsError, match="this worker runs as uid 65534, not root") as refused:
            JobIsolation(run_as="nobody")
    finally:
        os.seteuid(0)
    assert "Run the worker as root, or unset HEADWATER_JOBS_RUN_AS" in str(refused.value)


def test_run_as_root_or_an_unknown_user_is_refused() -> None:
    from headwater.jobs.isolation import RunAsError, parse_run_as

    with pytest.raises(RunAsError, match="must not run as root"):
        parse_run_as("root")
    with pytest.raises(RunAsError, match="must not run as root"):
        parse_run_as("0-10")
    with pytest.raises(RunAsError, match="no such user"):
        parse_run_as(f"nosuchuser{uuid.uuid4().hex[:6]}")
    with pytest.raises(RunAsError, match="first uid is above its last"):
        parse_run_as("70000-60000")
    assert parse_run_as("61000-61003").candidates() == range(61000, 61004)


SPARK_SCRIPT = """
import os, sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("headwater-run-as").getOrCreate()
print("UID", os.getuid())
df = spark.createDataFrame([("a", 1), ("b", 2), ("a", 3)], ["key", "value"])
df.groupBy("key").sum("value").orderBy("key").write.mode("overwrite").parquet(sys.argv[1])
spark.stop()
"""


@pytest.mark.single_backend("postgres")  # one Spark run: the engine's needs do not depend on the database
async def test_a_spark_job_runs_as_the_user_with_only_the_allowlisted_environment(
    client: httpx.AsyncClient, app: FastAPI, job_user: pwd.struct_passwd, data_dir: Path
) -> None:
    import pyarrow.parquet as pq

    script = data_dir / "spark-job.py"  # readable by the job's user (pytest's own directories are not)
    script.write_text(SPARK_SCRIPT)
    os.chmod(script, 0o644)
    worker = make_worker(app, data_dir, run_as=job_user.pw_name)
    try:
        await spark_setup(client)
        body = {
            "name": "aggregate",
            "user": "alice",
            "command_args": [str(script), "out.parquet"],
            "cluster_criteria": [["sched:spark"]],
            "command_criteria": ["type:spark"],
            "timeout": 300,
        }
        job_id = (await client.post("/api/v1/jobs", json=body)).json()["id"]
        worker.drain(timeout=240)
        final = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        stderr = (await client.get(f"/api/v1/jobs/{job_id}/output/stderr")).text
        stdout = (await client.get(f"/api/v1/jobs/{job_id}/output/stdout")).text
    finally:
        worker.shutdown()
    assert final["status"] == "SUCCEEDED", (final, stderr[-3000:])
    assert f"UID {job_user.pw_uid}" in stdout
    rows = sorted(pq.read_table(str(worker.jobs_dir / job_id / "out.parquet")).to_pylist(), key=lambda r: r["key"])
    assert rows == [{"key": "a", "sum(value)": 4}, {"key": "b", "sum(value)": 2}]


def test_a_server_that_runs_no_worker_ignores_run_as(app_settings: Settings) -> None:
    from headwater.app import create_app
    from headwater.jobs.isolation import RunAsError

    settings = app_settings.model_copy(update={"jobs_run_as": f"nosuchuser{uuid.uuid4().hex[:6]}"})
    app = create_app(settings.model_copy(update={"jobs_worker_enabled": False}), prepare=False)
    app.state.sessionmaker.kw["bind"].dispose()
    with pytest.raises(RunAsError, match="no such user on this host"):
        create_app(settings.model_copy(update={"jobs_worker_enabled": True}), prepare=False)
