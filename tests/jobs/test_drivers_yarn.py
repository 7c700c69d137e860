"""The YARN cluster manager on what YARN and Spark print and answer (yarn_recorded.py names the sources; Hadoop
3.3/3.4, Spark 3.x/4.x). No YARN runs here: the yarn CLI is a stand-in script that prints the recorded outputs
(yarn_standin.py), and the ResourceManager's REST API a stand-in server answering its documented JSON."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pytest
import yarn_recorded as recorded
from drivers_helpers import finish, recorded_submitter, start_supervisor, wait_for_record
from rm_standin import ResourceManagerStandIn, StandbyResourceManagerStandIn

from headwater.jobs.drivers import AppState, ClusterManager, ManagerError, manager_for, read_app_record
from headwater.jobs.drivers.yarn import YarnManager, app_status, parse_application_report, split_container_logs

APP_ID = recorded.APP_ID
STANDIN = Path(__file__).with_name("yarn_standin.py")


# -- parsers, on the recorded messages ---------------------------------------------------------------------------


def test_the_application_id_is_found_in_spark_submits_cluster_mode_output() -> None:
    assert YarnManager({}).parse_submission(recorded.SPARK_SUBMIT_CLUSTER) == APP_ID


def test_a_submission_yarn_refused_has_no_application_id() -> None:
    # The id in the exception is one YARN never accepted: only "Submitted/Submitting application" lines count.
    assert YarnManager({}).parse_submission(recorded.SPARK_SUBMIT_REFUSED) is None


def test_ids_of_any_cluster_timestamp_are_accepted(tmp_path: Path) -> None:
    yarn = YarnStandIn(tmp_path, [["RUNNING", "UNDEFINED", "", ""]])
    manager = manager_for("yarn", yarn.config())
    assert manager.parse_submission("INFO YarnClientImpl: Submitted application application_1234_0005\n") == (
        "application_1234_0005"
    )
    with pytest.raises(ManagerError, match="does not know application_1234_0005"):
        manager.status("application_1234_0005")  # asked: a valid id the stand-in RM does not know


def test_the_recorded_report_generator_prints_what_hadoops_own_cli_test_expects() -> None:
    # Guards the stand-in: its reports are field for field what TestYarnCLI expects printApplicationReport to print.
    printed = recorded.application_report(
        "application_1234_0005", state="FINISHED", final="SUCCEEDED", diagnostics="diagnostics", am_host="host",
        aggregation="SUCCEEDED",
    )  # fmt: skip
    assert printed == recorded.TEST_YARN_CLI_REPORT


def test_the_application_report_is_parsed_field_by_field() -> None:
    report = parse_application_report(recorded.CLI_STDERR + recorded.TEST_YARN_CLI_REPORT)
    assert report["Application-Id"] == "application_1234_0005"
    assert (report["State"], report["Final-State"]) == ("FINISHED", "SUCCEEDED")
    assert report["AM Host"] == "host"
    assert report["Log Aggregation Status"] == "SUCCEEDED"
    assert report["Diagnostics"] == "diagnostics"
    assert report["Progress"] == "53.79%"


def test_a_diagnostic_over_several_lines_is_kept_whole() -> None:
    text = recorded.application_report(state="FINISHED", final="FAILED", diagnostics=recorded.FAILED_DIAGNOSTICS)
    report = parse_application_report(text)
    assert report["Diagnostics"] == recorded.FAILED_DIAGNOSTICS
    assert report["Unmanaged Application"] == "false"  # the field after it is not swallowed


@pytest.mark.parametrize(
    ("state", "final", "expected"),
    [
        ("NEW", "UNDEFINED", AppState.SUBMITTED),
        ("NEW_SAVING", "UNDEFINED", AppState.SUBMITTED),
        ("SUBMITTED", "UNDEFINED", AppState.SUBMITTED),
        ("ACCEPTED", "UNDEFINED", AppState.SUBMITTED),
        ("RUNNING", "UNDEFINED", AppState.RUNNING),
        ("FINISHED", "SUCCEEDED", AppState.SUCCEEDED),
        ("FINISHED", "FAILED", AppState.FAILED),
        ("FINISHED", "KILLED", AppState.KILLED),
        ("FINISHED", "UNDEFINED", AppState.FAILED),
        ("FAILED", "FAILED", AppState.FAILED),
        ("KILLED", "KILLED", AppState.KILLED),
        ("SOMETHING_NEW", "UNDEFINED", AppState.UNKNOWN),
    ],
)
def test_every_yarn_state_maps_to_a_headwater_state(state: str, final: str, expected: AppState) -> None:
    status = app_status(state, final)
    assert status.state is expected
    assert status.raw == (f"FINISHED/{final}" if state == "FINISHED" else state)


def test_the_aggregated_logs_are_cut_into_their_files() -> None:
    logs = split_container_logs(recorded.AGGREGATED_LOGS)
    assert [log.log_type for log in logs] == ["prelaunch.out", "stdout", "stderr"]
    assert {log.container for log in logs} == {"container_1663000676736_0003_01_000001"}
    assert [log.text for log in logs] == [recorded.PRELAUNCH_OUT, recorded.DRIVER_STDOUT, recorded.DRIVER_STDERR]


def test_spark_submit_is_told_to_return_once_yarn_accepted_the_application() -> None:
    assert manager_for("yarn", {}).submit_confs({}) == {"spark.yarn.submit.waitAppCompletion": "false"}
    assert ClusterManager.submit_confs({"anything": 1}) == {}  # the contract's default: nothing to add


# -- the CLI path, through the stand-in yarn ---------------------------------------------------------------------


class YarnStandIn:
    """The stand-in yarn CLI's state file and the wrapper script the manager runs as ``yarn``."""

    def __init__(self, directory: Path, states: list[list[str]], **extra: Any) -> None:
        self.state_file = directory / "yarn-state.json"
        self.state_file.write_text(json.dumps({"app_id": APP_ID, "states": states, **extra}))
        self.executable = directory / "yarn"
        self.executable.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" --state "{self.state_file}" "$@"\n')
        self.executable.chmod(0o755)

    @property
    def state(self) -> dict[str, Any]:
        """What the stand-in RM knows now, and the calls it answered."""
        return json.loads(self.state_file.read_text())

    def config(self, **extra: Any) -> dict[str, Any]:
        """A yarn cluster config naming the stand-in."""
        return {"yarn": str(self.executable), "logs_poll": 0.05, "logs_wait": 1, **extra}


def test_status_follows_the_application_through_its_states(tmp_path: Path) -> None:
    yarn = YarnStandIn(
        tmp_path,
        [["ACCEPTED", "UNDEFINED", "", "NOT_START"], ["RUNNING", "UNDEFINED", "", "NOT_START"],
         ["FINISHED", "SUCCEEDED", "", "SUCCEEDED"]],
    )  # fmt: skip
    manager = manager_for("yarn", yarn.config())
    seen = [manager.status(APP_ID) for _ in range(3)]
    assert [s.state for s in seen] == [AppState.SUBMITTED, AppState.RUNNING, AppState.SUCCEEDED]
    assert seen[1].where == "worker-2.example.com"
    assert yarn.state["calls"][0] == ["application", "-status", APP_ID]


def test_a_failed_driver_reports_yarns_diagnostics(tmp_path: Path) -> None:
    yarn = YarnStandIn(tmp_path, [["FINISHED", "FAILED", recorded.FAILED_DIAGNOSTICS, "SUCCEEDED"]])
    status = manager_for("yarn", yarn.config()).status(APP_ID)
    assert status.state is AppState.FAILED and status.raw == "FINISHED/FAILED"
    assert status.detail.startswith("User class threw exception: java.lang.RuntimeException: boom")
    assert "\n" not in status.detail


def test_kill_of_a_running_application_goes_through_yarn(tmp_path: Path) -> None:
    yarn = YarnStandIn(tmp_path, [["RUNNING", "UNDEFINED", "", "NOT_START"]])
    manager = manager_for("yarn", yarn.config())
    manager.kill(APP_ID)
    assert ["application", "-kill", APP_ID] in yarn.state["calls"]
    assert manager.status(APP_ID).state is AppState.KILLED


def test_kill_of_an_ended_or_unknown_application_is_no_error(tmp_path: Path) -> None:
    yarn = YarnStandIn(tmp_path, [["FINISHED", "SUCCEEDED", "", "SUCCEEDED"]])
    manager = manager_for("yarn", yarn.config())
    manager.kill(APP_ID)
    manager.kill("application_1663000676736_0999")
    assert manager.status(APP_ID).state is AppState.SUCCEEDED


def test_an_application_the_rm_does_not_know_is_a_manager_error(tmp_path: Path) -> None:
    manager = manager_for("yarn", YarnStandIn(tmp_path, [["RUNNING", "UNDEFINED", "", ""]]).config())
    with pytest.raises(ManagerError, match="does not know application_1663000676736_0999"):
        manager.status("application_1663000676736_0999")


def test_an_unreachable_resourcemanager_is_a_manager_error_naming_the_cause(tmp_path: Path) -> None:
    manager = manager_for("yarn", YarnStandIn(tmp_path, [["RUNNING", "UNDEFINED", "", ""]], unreachable=True).config())
    with pytest.raises(
        ManagerError, match="could not reach the ResourceManager: .*ConnectException: Call From worker-1"
    ):
        manager.status(APP_ID)


def test_a_yarn_cli_that_hangs_is_given_up_after_its_timeout(tmp_path: Path) -> None:
    yarn = YarnStandIn(tmp_path, [["RUNNING", "UNDEFINED", "", ""]], hang=True)
    manager = manager_for("yarn", yarn.config(command_timeout=0.5))
    with pytest.raises(ManagerError, match="did not answer within"):
        manager.status(APP_ID)


def test_a_string_that_is_no_application_id_is_refused_before_yarn_runs(tmp_path: Path) -> None:
    yarn = YarnStandIn(tmp_path, [["RUNNING", "UNDEFINED", "", ""]])
    with pytest.raises(ManagerError, match="not a YARN application id"):
        manager_for("yarn", yarn.config()).kill("application_1; rm -rf /")
    assert "calls" not in yarn.state


def test_a_missing_yarn_cli_says_how_to_name_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("HADOOP_HOME", raising=False)
    monkeypatch.delenv("HADOOP_YARN_HOME", raising=False)
    with pytest.raises(ManagerError, match="set the cluster's `yarn` key, HADOOP_HOME"):
        manager_for("yarn", {}).status(APP_ID)


def test_the_yarn_cli_is_found_under_hadoop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bin").mkdir()
    YarnStandIn(tmp_path / "bin", [["RUNNING", "UNDEFINED", "", ""]])
    monkeypatch.setenv("HADOOP_HOME", str(tmp_path))
    assert manager_for("yarn", {}).status(APP_ID).state is AppState.RUNNING


def test_an_invalid_config_is_refused_with_the_key_named() -> None:
    with pytest.raises(ManagerError, match="command_timeout"):
        manager_for("yarn", {"command_timeout": -1})


def test_the_drivers_aggregated_logs_are_fetched_into_driver(tmp_path: Path) -> None:
    yarn = YarnStandIn(tmp_path, [["FINISHED", "SUCCEEDED", "", "SUCCEEDED"]], logs="aggregated")
    dest = tmp_path / "job" / "driver"
    written = manager_for("yarn", yarn.config()).fetch_logs(APP_ID, dest)
    assert sorted(p.name for p in written) == ["prelaunch.out", "stderr", "stdout", "yarn-logs.txt"]
    assert (dest / "stdout").read_text() == recorded.DRIVER_STDOUT
    assert "LogAggregationType: AGGREGATED" in (dest / "yarn-logs.txt").read_text()
    assert ["logs", "-applicationId", APP_ID, "-am", "-1", "-size", f"-{8 * 1024 * 1024}"] in yarn.state["calls"]


def test_yarn_is_asked_for_the_tail_of_each_log_file(tmp_path: Path) -> None:
    yarn = YarnStandIn(tmp_path, [["FINISHED", "SUCCEEDED", "", "SUCCEEDED"]], logs="aggregated")
    manager_for("yarn", yarn.config(log_max_bytes=12, log_files_max=1000)).fetch_logs(APP_ID, tmp_path / "driver")
    assert (tmp_path / "driver" / "stdout").read_text() == recorded.DRIVER_STDOUT[-12:]
    assert (tmp_path / "driver" / "stderr").read_text() == recorded.DRIVER_STDERR[-12:]


def test_the_whole_logs_output_is_cut_at_its_bound(tmp_path: Path) -> None:
    yarn = YarnStandIn(tmp_path, [["FINISHED", "SUCCEEDED", "", "SUCCEEDED"]], logs="aggregated")
    config = yarn.config(log_max_bytes=100, log_files_max=4)  # the tails fit, the whole output (> 400 B) does not
    written = manager_for("yarn", config).fetch_logs(APP_ID, tmp_path / "driver")
    whole = (tmp_path / "driver" / "yarn-logs.txt").read_text()
    marker = "\n[headwater: cut at log_max_bytes x log_files_max]\n"
    assert whole.endswith(marker) and len(whole.encode()) == 400 + len(marker)
    assert "stderr" not in {p.name for p in written}  # past the cut


def test_a_log_type_cannot_name_a_file_outside_driver(tmp_path: Path) -> None:
    hostile = (
        recorded.log_block("..", "x\n")
        + recorded.log_block("../escape", "y\n")
        + recorded.log_block("/etc/passwd", "z\n")
    )
    yarn = YarnStandIn(tmp_path, [["FINISHED", "SUCCEEDED", "", "SUCCEEDED"]], logs="custom", custom_logs=hostile)
    written = manager_for("yarn", yarn.config()).fetch_logs(APP_ID, tmp_path / "job" / "driver")
    assert all(p.parent == tmp_path / "job" / "driver" for p in written)
    assert sorted(p.name for p in written) == ["_..", "_.._escape", "_etc_passwd", "yarn-logs.txt"]
    assert not (tmp_path / "job" / "escape").exists()


@pytest.mark.parametrize("aggregation", ["DISABLED", "SUCCEEDED"])
def test_no_logs_and_no_error_when_yarn_aggregated_none(tmp_path: Path, aggregation: str) -> None:
    # DISABLED: yarn logs is not even asked; SUCCEEDED but nothing there: LogsCLI's "Can not find" is no error.
    yarn = YarnStandIn(tmp_path, [["FINISHED", "SUCCEEDED", "", aggregation]], logs="missing")
    assert manager_for("yarn", yarn.config()).fetch_logs(APP_ID, tmp_path / "driver") == []
    assert any(call[0] == "logs" for call in yarn.state["calls"]) is (aggregation != "DISABLED")


def test_the_hadoop_2_no_aggregation_message_is_recognised_too(tmp_path: Path) -> None:
    from headwater.jobs.drivers.yarn import NO_AGGREGATED_LOGS

    assert any(marker in recorded.LOGS_NOT_AGGREGATED_OLD for marker in NO_AGGREGATED_LOGS)
    assert any(marker in recorded.LOGS_NOT_AGGREGATED for marker in NO_AGGREGATED_LOGS)


def test_log_fetching_waits_for_an_aggregation_under_way(tmp_path: Path) -> None:
    yarn = YarnStandIn(
        tmp_path,
        [["FINISHED", "SUCCEEDED", "", "RUNNING"], ["FINISHED", "SUCCEEDED", "", "RUNNING"],
         ["FINISHED", "SUCCEEDED", "", "SUCCEEDED"]],
        logs="aggregated",
    )  # fmt: skip
    written = manager_for("yarn", yarn.config()).fetch_logs(APP_ID, tmp_path / "driver")
    statuses = [call for call in yarn.state["calls"] if call[:2] == ["application", "-status"]]
    assert len(statuses) == 3 and written


# -- the supervisor, with the stand-in yarn --------------------------------------------------------------------------


def test_the_supervisor_follows_a_yarn_application_to_success(tmp_path: Path) -> None:
    yarn = YarnStandIn(
        tmp_path,
        [["ACCEPTED", "UNDEFINED", "", "NOT_START"], ["RUNNING", "UNDEFINED", "", "NOT_START"],
         ["FINISHED", "SUCCEEDED", "", "SUCCEEDED"]],
        logs="aggregated",
    )  # fmt: skip
    work = tmp_path / "job"
    process = start_supervisor("yarn", yarn.config(), recorded_submitter(tmp_path, recorded.SPARK_SUBMIT_CLUSTER), work)
    code, stdout, stderr = finish(process)
    assert code == 0, stderr
    assert "Submitted application " + APP_ID in stdout  # the submitter's output is the job's stdout
    record = read_app_record(work)
    assert record is not None
    assert (record.manager, record.app_id, record.state, record.raw) == (
        "yarn",
        APP_ID,
        "SUCCEEDED",
        "FINISHED/SUCCEEDED",
    )
    assert "driver/stdout" in record.logs
    assert f"{APP_ID} RUNNING (RUNNING) on worker-2.example.com" in stderr


def test_the_supervisor_exits_1_when_the_driver_failed(tmp_path: Path) -> None:
    yarn = YarnStandIn(tmp_path, [["FINISHED", "FAILED", recorded.FAILED_DIAGNOSTICS, "DISABLED"]])
    work = tmp_path / "job"
    process = start_supervisor("yarn", yarn.config(), recorded_submitter(tmp_path, recorded.SPARK_SUBMIT_CLUSTER), work)
    code, _, stderr = finish(process)
    assert code == 1
    assert "User class threw exception" in stderr
    record = read_app_record(work)
    assert record is not None and record.state == "FAILED" and record.logs == []


def test_the_supervisor_fails_a_submission_yarn_refused(tmp_path: Path) -> None:
    yarn = YarnStandIn(tmp_path, [["RUNNING", "UNDEFINED", "", ""]])
    work = tmp_path / "job"
    argv = recorded_submitter(tmp_path, recorded.SPARK_SUBMIT_REFUSED, exit_code=1)
    code, _, stderr = finish(start_supervisor("yarn", yarn.config(), argv, work))
    assert code == 1
    assert "printed no yarn application id" in stderr
    assert read_app_record(work) is None and "calls" not in yarn.state


def test_nothing_is_submitted_without_a_yarn_cli_to_follow_it(tmp_path: Path) -> None:
    work = tmp_path / "job"
    argv = recorded_submitter(tmp_path, recorded.SPARK_SUBMIT_CLUSTER)
    code, stdout, _ = finish(start_supervisor("yarn", {"yarn": str(tmp_path / "no-yarn")}, argv, work))
    assert code == 2
    assert f"headwater: not submitted: no yarn CLI at '{tmp_path / 'no-yarn'}'" in stdout
    assert "Submitting application" not in stdout and read_app_record(work) is None


def test_sigterm_kills_the_yarn_application_and_the_supervisor_exits_143(tmp_path: Path) -> None:
    yarn = YarnStandIn(tmp_path, [["RUNNING", "UNDEFINED", "", "NOT_START"]], logs="missing")
    work = tmp_path / "job"
    process = start_supervisor("yarn", yarn.config(), recorded_submitter(tmp_path, recorded.SPARK_SUBMIT_CLUSTER), work)
    wait_for_record(work, "RUNNING")
    process.send_signal(signal.SIGTERM)
    code, _, stderr = finish(process)
    assert code == 128 + signal.SIGTERM, stderr
    assert ["application", "-kill", APP_ID] in yarn.state["calls"]
    record = read_app_record(work)
    assert record is not None and record.state == "KILLED"


# -- the REST path, through a stand-in ResourceManager ---------------------------------------------------------------


@pytest.fixture
def rm_standin() -> Iterator[ResourceManagerStandIn]:
    """A ResourceManager stand-in, started for the test and stopped after it."""
    standin = ResourceManagerStandIn(
        [["ACCEPTED", "UNDEFINED", "", "NOT_START"], ["RUNNING", "UNDEFINED", "", "NOT_START"]]
    ).start()
    yield standin
    standin.stop()


@pytest.mark.integration
def test_status_and_kill_go_through_the_rest_api_when_configured(rm_standin: ResourceManagerStandIn) -> None:
    manager = manager_for(
        "yarn", {"resourcemanager_url": rm_standin.url + "/", "rm_user": "hadoop", "yarn": "/nonexistent"}
    )
    assert manager.status(APP_ID).state is AppState.SUBMITTED
    running = manager.status(APP_ID)
    assert running.state is AppState.RUNNING and running.where == "worker-2.example.com:8042"
    manager.kill(APP_ID)
    assert manager.status(APP_ID).state is AppState.KILLED
    manager.kill(APP_ID)  # again: already ended, no error
    method, path, query, body = astuple(rm_standin.requests[2])
    assert (method, path, body) == ("PUT", f"/ws/v1/cluster/apps/{APP_ID}/state", {"state": "KILLED"})
    assert query == {"user.name": ["hadoop"]}


@pytest.mark.integration
def test_an_application_the_rm_rest_api_does_not_know_is_a_manager_error(rm_standin: ResourceManagerStandIn) -> None:
    manager = manager_for("yarn", {"resourcemanager_url": rm_standin.url})
    with pytest.raises(ManagerError, match="app with id: application_1663000676736_0998 not found"):
        manager.status("application_1663000676736_0998")


@pytest.mark.integration
def test_a_resourcemanager_that_went_away_is_a_manager_error(rm_standin: ResourceManagerStandIn) -> None:
    manager = manager_for("yarn", {"resourcemanager_url": rm_standin.url, "timeout": 2})
    rm_standin.stop()
    with pytest.raises(ManagerError, match="could not reach the ResourceManager"):
        manager.status(APP_ID)


@pytest.mark.integration
def test_with_an_ha_pair_the_active_resourcemanager_answers(rm_standin: ResourceManagerStandIn) -> None:
    standby = StandbyResourceManagerStandIn(rm_standin.url).start()
    try:
        manager = manager_for("yarn", {"resourcemanager_url": ["http://127.0.0.1:9", standby.url, rm_standin.url]})
        assert manager.status(APP_ID).state is AppState.SUBMITTED
        assert len(standby.requests) == 1  # redirected, not followed: the active RM is asked directly
        assert manager.status(APP_ID).state is AppState.RUNNING
        assert len(standby.requests) == 1  # the active one is asked first from then on
        rm_standin.stop()  # the active RM goes down: nothing answers but the standby
        with pytest.raises(
            ManagerError, match=r"could not reach the ResourceManager \(.*ConnectError.*standby \(307\)"
        ):
            manager.status(APP_ID)
    finally:
        standby.stop()


@pytest.mark.integration
def test_a_refusal_of_the_egress_policy_is_a_manager_error(rm_standin: ResourceManagerStandIn) -> None:
    from headwater.egress import EgressPolicy, http_client

    with http_client(EgressPolicy()) as refusing:  # loopback is not allowed by default
        manager = manager_for("yarn", {"resourcemanager_url": rm_standin.url}, http=refusing)
        with pytest.raises(ManagerError, match="could not reach the ResourceManager .*EgressRefused"):
            manager.kill(APP_ID)
    assert rm_standin.requests == []


@pytest.mark.integration
def test_the_supervisor_follows_and_kills_through_the_rest_api(
    rm_standin: ResourceManagerStandIn, tmp_path: Path
) -> None:
    yarn = YarnStandIn(tmp_path, [["RUNNING", "UNDEFINED", "", "DISABLED"]])  # only for the logs
    config = yarn.config(resourcemanager_url=rm_standin.url)
    work = tmp_path / "job"
    process = start_supervisor("yarn", config, recorded_submitter(tmp_path, recorded.SPARK_SUBMIT_CLUSTER), work)
    wait_for_record(work, "RUNNING")
    process.send_signal(signal.SIGTERM)
    code, _, stderr = finish(process)
    assert code == 143, stderr
    assert any(r.method == "PUT" for r in rm_standin.requests)
    assert "calls" not in yarn.state or all(c[0] == "logs" for c in yarn.state["calls"])
