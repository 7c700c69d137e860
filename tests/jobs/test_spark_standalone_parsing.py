"""The Spark standalone manager's reading of what Spark 4.3.0 prints and answers (recorded from a real master and
worker), the Spark engine's argv in cluster deploy mode, and what a cluster-mode job leaves in its directory
(retries, archives): no server needed."""

from __future__ import annotations

import functools
import json
import logging
import tarfile
from pathlib import Path

import pytest

from headwater.egress import EgressPolicy, http_client
from headwater.jobs.cluster_apps import kill_apps
from headwater.jobs.drivers import (
    SPEC_ENV,
    AppRecord,
    AppState,
    ManagerError,
    cancel_cluster_app,
    describe,
    manager_for,
    read_app_record,
    write_app_record,
)
from headwater.jobs.drivers.spark_standalone import parse_log_page, status_of
from headwater.jobs.drivers.supervise import failure_line
from headwater.jobs.engines import PYTHON_RUNNER, EngineError, JobContext, SparkEngine, spark_manager
from headwater.jobs.workspace import _archive_logs, prepare_workspace

# Recorded from Spark 4.3.0's standalone master (REST submission server) and a worker's log page.
LEGACY_SUBMIT = """26/12/06 07:03:55 INFO Utils: Successfully started service 'driverClient' on port 36549.
26/12/06 07:03:56 INFO ClientEndpoint: ... waiting before polling master for driver state
26/12/06 07:03:56 INFO ClientEndpoint: Driver successfully submitted as driver-20261206070356-0000
26/12/06 07:04:01 INFO ClientEndpoint: State of driver-20261206070356-0000 is RUNNING
"""
REST_SUBMIT = """{
  "action" : "CreateSubmissionResponse",
  "message" : "Driver successfully submitted as driver-20261206071502-0003",
  "serverSparkVersion" : "4.3.0",
  "submissionId" : "driver-20261206071502-0003",
  "success" : true
}"""
STATUS_FAILED = {
    "action": "SubmissionStatusResponse",
    "driverState": "FAILED",
    "serverSparkVersion": "4.3.0",
    "submissionId": "driver-20261206070356-0000",
    "success": True,
    "workerHostPort": "127.0.0.1:38005",
    "workerId": "worker-20261206070331-127.0.0.1-38005",
}
STATUS_ERROR = {
    "action": "SubmissionStatusResponse",
    "driverState": "ERROR",
    "message": "Exception from the cluster:\njava.nio.file.NoSuchFileException: /opt/jobs/app.jar\n\tat sun.nio...",
    "serverSparkVersion": "4.3.0",
    "submissionId": "driver-20261206072000-0004",
    "success": True,
}
STATUS_UNKNOWN_ID = {
    "action": "SubmissionStatusResponse",
    "serverSparkVersion": "4.3.0",
    "submissionId": "driver-nope",
    "success": False,
}
LOG_PAGE = (
    b"==== Bytes 9986-10286 of 10286 of /tmp/w2/driver-20261206070356-0000/stderr ====\n"
    b"Caused by: org.apache.spark.SparkUserAppException: User application exited with 1\n"
)


def test_the_driver_id_is_read_from_the_legacy_and_the_rest_submitter() -> None:
    manager = manager_for("spark-standalone", {"master": "spark://m:7077"})
    assert manager.parse_submission(LEGACY_SUBMIT) == "driver-20261206070356-0000"
    assert manager.parse_submission(REST_SUBMIT) == "driver-20261206071502-0003"
    assert manager.parse_submission("Exception in thread main: Cluster deploy mode is not supported") is None


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("SUBMITTED", AppState.SUBMITTED),
        ("RUNNING", AppState.RUNNING),
        ("RELAUNCHING", AppState.SUBMITTED),
        ("UNKNOWN", AppState.UNKNOWN),
        ("FINISHED", AppState.SUCCEEDED),
        ("FAILED", AppState.FAILED),
        ("ERROR", AppState.FAILED),
        ("KILLED", AppState.KILLED),
    ],
)
def test_every_driver_state_of_the_master_maps_to_one_of_headwaters(raw: str, state: AppState) -> None:
    status = status_of({**STATUS_FAILED, "driverState": raw})
    assert (status.state, status.raw, status.where) == (state, raw, "127.0.0.1:38005")


def test_a_driver_that_could_not_start_carries_the_masters_message_on_one_line() -> None:
    status = status_of(STATUS_ERROR)
    assert status.state is AppState.FAILED and status.raw == "ERROR"
    assert "NoSuchFileException: /opt/jobs/app.jar" in status.detail and "\n" not in status.detail


def test_an_id_the_master_does_not_know_is_an_error_naming_it() -> None:
    with pytest.raises(ManagerError, match="does not know driver 'driver-nope'"):
        status_of(STATUS_UNKNOWN_ID)


def test_a_log_page_gives_its_byte_range_and_bytes() -> None:
    start, end, total, data = parse_log_page(LOG_PAGE)
    assert (start, end, total) == (9986, 10286, 10286)
    assert data.startswith(b"Caused by:")
    with pytest.raises(ManagerError, match="no byte range"):
        parse_log_page(b"<html>Not Found</html>")


def test_the_rest_server_and_web_ui_default_to_the_masters_host() -> None:
    manager = manager_for("spark-standalone", {"master": "spark://spark-master.internal:7077"})
    assert (manager.rest_url, manager.ui_url) == (  # type: ignore[attr-defined]
        "http://spark-master.internal:6066",
        "http://spark-master.internal:8080",
    )
    with pytest.raises(ManagerError, match="rest_url"):
        manager_for("spark-standalone", {"master": "local[1]"})


def test_the_end_says_how_the_driver_ended() -> None:
    failed = AppRecord(
        manager="spark-standalone", app_id="driver-1-0", state="FAILED", raw="ERROR", detail="no such jar"
    )
    assert describe(failed) == "driver driver-1-0 FAILED on the cluster (ERROR): no such jar"
    running = AppRecord(manager="spark-standalone", app_id="driver-1-0", state="RUNNING", raw="RUNNING")
    assert describe(running) == "driver driver-1-0 still RUNNING on the cluster"


def _context(config: dict[str, object], command: list[str] | None = None) -> JobContext:
    return JobContext(
        job_id="j-1", job_name="nightly", run_uuid="2f0d7c9e-4d7a-4a43-9f55-1f2d0c7e9a10", args=["--day", "1"],
        command=command or ["spark-submit", "--py-files", "deps.zip", "/jobs/nightly.py"], cluster_config=config,
    )  # fmt: skip


def test_cluster_mode_runs_spark_submit_under_the_supervisor_with_the_managers_spec() -> None:
    # The cluster asks spark-submit to wait for the driver's end: the manager's conf wins, the supervisor follows it.
    conf = {"a": "b", "spark.standalone.submit.waitAppCompletion": "true"}
    config = {"master": "spark://m:7077", "deploy_mode": "cluster", "rest_url": "http://m:6066", "conf": conf}
    launch = SparkEngine().launch(_context(config))
    split = launch.argv.index("--")
    assert launch.argv[1:3] == ["-I", "-c"] and "headwater.jobs.drivers.supervise" in launch.argv[3]
    submit = launch.argv[split + 1 :]
    assert submit[1:5] == ["--master", "spark://m:7077", "--deploy-mode", "cluster"]
    assert "spark.standalone.submit.waitAppCompletion=false" in submit
    assert "spark.standalone.submit.waitAppCompletion=true" not in submit
    # spark-submit refuses a .py driver in cluster mode on a standalone master: PythonRunner runs it instead.
    runner = submit.index("--class")
    assert submit[runner + 1] == PYTHON_RUNNER and submit[runner + 2].endswith(".jar")
    assert submit[runner + 3 :] == ["/jobs/nightly.py", "deps.zip", "--day", "1"]
    spec = json.loads(launch.env[SPEC_ENV])
    assert spec == {"manager": "spark-standalone", "config": {k: v for k, v in config.items() if k != "conf"}}
    # The worker's kill is bound to the cluster's manager and config, not to what the job's record says.
    assert isinstance(launch.cancel, functools.partial) and launch.cancel.func is cancel_cluster_app
    assert launch.cancel.keywords == {"manager": "spark-standalone", "config": spec["config"]}
    assert "PYTHONPATH" not in launch.env  # the lineage hook's file would stay on the cluster's worker


def test_a_jar_application_in_cluster_mode_is_submitted_as_it_is() -> None:
    config = {"master": "spark://m:7077", "deploy_mode": "cluster"}
    command = ["spark-submit", "--class", "com.example.Nightly", "--verbose", "/jobs/nightly.jar"]
    submit = SparkEngine().launch(_context(config, command)).argv
    assert submit[-6:] == ["--class", "com.example.Nightly", "--verbose", "/jobs/nightly.jar", "--day", "1"]
    assert PYTHON_RUNNER not in submit


@pytest.mark.parametrize(
    ("master", "manager"),
    [("spark://a:7077", "spark-standalone"), ("yarn", "yarn"), ("k8s://https://api.internal:6443", "kubernetes")],
)
def test_the_manager_follows_from_the_master_url(master: str, manager: str) -> None:
    assert spark_manager({"master": master}) == manager


def test_cluster_mode_on_a_local_master_is_refused_with_a_reason() -> None:
    with pytest.raises(EngineError, match="deploy_mode cluster needs a master"):
        SparkEngine().launch(_context({"master": "local[2]", "deploy_mode": "cluster"}))
    with pytest.raises(EngineError, match="deploy_mode must be client or cluster"):
        SparkEngine().launch(_context({"master": "local[2]", "deploy_mode": "both"}))


TRUSTED = {"master": "spark://127.0.0.1:7077", "rest_url": "http://127.0.0.1:9"}


def test_cancelling_a_job_that_submitted_nothing_or_ended_sends_nothing(tmp_path: Path) -> None:
    assert cancel_cluster_app(tmp_path, manager="spark-standalone", config=TRUSTED) is None
    ended = AppRecord(manager="spark-standalone", app_id="driver-20261206071502-0003", config=TRUSTED)
    ended.state = "SUCCEEDED"
    write_app_record(tmp_path, ended)
    assert cancel_cluster_app(tmp_path, manager="spark-standalone", config=TRUSTED) is None


def test_a_failed_driver_without_a_message_is_explained_by_its_logs_last_exception(tmp_path: Path) -> None:
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    stdout.write_text(
        'COUNT 5\nTraceback (most recent call last):\n  File "/jobs/driver.py", line 8, in <module>\n'
        '    raise RuntimeError("the driver gave up")\nRuntimeError: the driver gave up\n'
    )
    stderr.write_text(  # what Spark 4.3.0's DriverWrapper logs then
        'Exception in thread "main" java.lang.reflect.InvocationTargetException\n'
        "Caused by: org.apache.spark.SparkUserAppException: User application exited with 1\n"
    )
    assert failure_line([stdout, stderr]) == "RuntimeError: the driver gave up"
    stderr.write_text("java.io.FileNotFoundException: /jobs/app.jar (No such file or directory)\n\tat x\n")
    assert failure_line([tmp_path / "missing", stderr]).startswith("java.io.FileNotFoundException: /jobs/app.jar")
    assert failure_line([tmp_path / "missing"]) == ""


def test_the_workers_kill_of_a_driver_goes_through_the_egress_policy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running = AppRecord(
        manager="spark-standalone", app_id="driver-20261206071502-0003", state="RUNNING", config=TRUSTED
    )
    write_app_record(tmp_path, running)
    with http_client(EgressPolicy(allow=())) as refusing, caplog.at_level(logging.WARNING):
        assert cancel_cluster_app(tmp_path, manager="spark-standalone", config=TRUSTED, http=refusing) == (
            "driver-20261206071502-0003"
        )
    # Refused by the policy (loopback is not allowed), before any connection: logged, the job's kill goes on.
    assert "killing driver-20261206071502-0003 failed" in caplog.text
    assert "which the server may not connect to" in caplog.text


def test_the_workers_kill_takes_only_the_id_from_the_jobs_record_never_its_manager_or_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The job can write its record. Aimed at another address, the kill still goes to the cluster's own master.
    forged = AppRecord(
        manager="spark-standalone", app_id="driver-20261206071502-0003", state="RUNNING",
        config={"master": "spark://10.9.9.9:7077", "rest_url": "http://10.9.9.9:6066"},
    )  # fmt: skip
    write_app_record(tmp_path, forged)
    with http_client(EgressPolicy(allow=())) as refusing, caplog.at_level(logging.WARNING):
        cancel_cluster_app(tmp_path, manager="spark-standalone", config=TRUSTED, http=refusing)
    assert "127.0.0.1" in caplog.text and "10.9.9.9" not in caplog.text
    # Another manager, or an id not of the manager's form (a path, a URL), is not acted on at all.
    for record in (
        AppRecord(manager="yarn", app_id="application_1700000000000_0001", state="RUNNING", config=TRUSTED),
        AppRecord(manager="spark-standalone", app_id="../../v1/submissions/kill/driver-x", state="RUNNING"),
    ):
        write_app_record(tmp_path, record)
        caplog.clear()
        with http_client(EgressPolicy(allow=())) as refusing, caplog.at_level(logging.WARNING):
            assert cancel_cluster_app(tmp_path, manager="spark-standalone", config=TRUSTED, http=refusing) is None
        assert "names no spark-standalone application id" in caplog.text


def test_a_retry_moves_the_earlier_attempts_application_record_and_driver_logs_aside(tmp_path: Path) -> None:
    write_app_record(tmp_path, AppRecord(manager="spark-standalone", app_id="driver-1-0", state="KILLED"))
    (tmp_path / "driver").mkdir()
    (tmp_path / "driver" / "stdout").write_text("attempt 1\n")
    prepare_workspace(tmp_path, attempt=2, attachments=[], applications=[])
    # The new attempt's supervisor writes its own record: the worker must not take the old driver for it.
    assert read_app_record(tmp_path) is None and not (tmp_path / "driver").exists()
    assert read_app_record(tmp_path / "attempts" / "1").app_id == "driver-1-0"  # type: ignore[union-attr]
    assert (tmp_path / "attempts" / "1" / "driver" / "stdout").read_text() == "attempt 1\n"


def test_archived_logs_hold_the_driver_logs_but_follow_no_link(tmp_path: Path) -> None:
    work = tmp_path / "job"
    (work / "driver").mkdir(parents=True)
    (work / "stdout").write_text("submitted\n")
    (work / "driver" / "stdout").write_text("COUNT 5\n")
    secret = tmp_path / "secret"
    secret.write_text("not the job's\n")
    (work / "driver" / "stderr").symlink_to(secret)  # a job may leave links: never archived through
    (work / "attempts" / "1" / "driver").mkdir(parents=True)
    (work / "attempts" / "1" / "driver" / "stderr").write_text("attempt 1\n")
    archive = _archive_logs("j-1", work, tmp_path / "archive")
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
        assert tar.extractfile("j-1/driver/stdout").read() == b"COUNT 5\n"  # type: ignore[union-attr]
    assert names == ["j-1/attempts/1/driver/stderr", "j-1/driver/stdout", "j-1/stdout"]


def test_a_cluster_manager_unknown_or_misconfigured_fails_the_launch_with_its_reason() -> None:
    nomad = {"master": "spark://m:7077", "deploy_mode": "cluster", "cluster_manager": "nomad"}
    with pytest.raises(EngineError, match="cluster manager nomad: no cluster manager 'nomad'"):
        SparkEngine().launch(_context(nomad))
    mesos = {"master": "mesos://m:5050", "deploy_mode": "cluster", "cluster_manager": "spark-standalone"}
    with pytest.raises(EngineError, match="needs config rest_url"):
        SparkEngine().launch(_context(mesos))


def test_the_reaper_asks_a_manager_that_did_not_answer_only_once_a_pass(caplog: pytest.LogCaptureFixture) -> None:
    config = {"master": "spark://127.0.0.1:7077", "rest_url": "http://127.0.0.1:9", "timeout": 2}
    apps = [
        ("job-1", ("spark-standalone", "driver-1-0", config)),
        ("job-2", ("spark-standalone", "driver-2-0", config)),
    ]
    with caplog.at_level(logging.ERROR):
        assert kill_apps(apps, policy=EgressPolicy(allow=("127.0.0.1",))) == []
    assert "job job-1: could not kill its spark-standalone application driver-1-0" in caplog.text
    assert "job job-2: its spark-standalone application driver-2-0 was not killed: the manager did not answer" in (
        caplog.text
    )
