"""One contract every cluster manager keeps (headwater.jobs.drivers), run against the managers that can run here:
submitting prints an application id, its state goes from SUBMITTED/RUNNING to a final one, a kill is idempotent,
the driver's logs are fetched, and an id the manager does not know is a clear error (status) or no error (kill).

Each manager's case gives what submits a driver that runs until killed; other managers add their own case."""

from __future__ import annotations

import json
import os
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from engine_helpers import require_flink_home
from spark_cluster import StandaloneCluster

from headwater.jobs.drivers import AppState, ClusterManager, ManagerError, manager_for
from headwater.jobs.engines import FlinkEngine, JobContext, SparkEngine, write_local_flink_conf

pytestmark = pytest.mark.integration

SLEEPER = textwrap.dedent(
    """
    import sys, time
    print("driver up", flush=True)
    time.sleep(float(sys.argv[1]))
    print("driver done", flush=True)
    """
)


@dataclass
class Case:
    """A manager and the submitter argv (and environment) of a driver that runs for a minute."""

    manager: ClusterManager
    argv: list[str]
    env: dict[str, str]
    unknown_id: str
    unreachable: ClusterManager  # the same manager, pointed at a port nothing listens on


def _spark_standalone(cluster: StandaloneCluster, work: Path) -> Case:
    script = work / "sleeper.py"
    script.write_text(SLEEPER)
    context = JobContext(
        job_id="contract", job_name="contract", run_uuid="2f0d7c9e-4d7a-4a43-9f55-1f2d0c7e9a10",
        args=["60"], command=["spark-submit", str(script)], cluster_config=cluster.config(),
    )  # fmt: skip
    launch = SparkEngine().launch(context)
    submit_argv = launch.argv[launch.argv.index("--") + 1 :]  # what the supervisor would run
    env = {**os.environ, **{k: v for k, v in launch.env.items() if k != "HEADWATER_CLUSTER_MANAGER"}}
    manager = manager_for("spark-standalone", cluster.config())
    unreachable = manager_for("spark-standalone", cluster.config(rest_url="http://127.0.0.1:9"))
    return Case(manager, submit_argv, env, unknown_id="driver-20000101000000-9999", unreachable=unreachable)


FLINK_ENDLESS = textwrap.dedent(
    """
    from pyflink.table import EnvironmentSettings, TableEnvironment

    print("driver up", flush=True)
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.execute_sql("CREATE TABLE numbers (n BIGINT) WITH ('connector'='datagen', 'rows-per-second'='10')")
    env.execute_sql("CREATE TABLE sunk (n BIGINT) WITH ('connector'='blackhole')")
    env.execute_sql("INSERT INTO sunk SELECT n FROM numbers").wait()
    """
)


def _flink_application(work: Path) -> Case:
    """A Flink application cluster of its own (the Flink of ``make flink``), running a streaming PyFlink job."""
    home = require_flink_home()
    script = work / "endless.py"
    script.write_text(FLINK_ENDLESS)
    config = {
        "flink_home": str(home), "mode": "application", "conf_dir": str(write_local_flink_conf(home, work / "conf")),
        "conf": {"parallelism.default": "1"},
    }  # fmt: skip
    context = JobContext(
        job_id="contract", job_name="contract", run_uuid="6c1f0e8a-3b7d-4f52-9a0e-2d4b8c6e1f37",
        args=["-py", str(script)], command=["flink"], cluster_config=config,
    )  # fmt: skip
    launch = FlinkEngine().launch(context)
    submit_argv = launch.argv[launch.argv.index("--") + 1 :]
    spec = json.loads(launch.env["HEADWATER_CLUSTER_MANAGER"])
    env = {**os.environ, **{k: v for k, v in launch.env.items() if k != "HEADWATER_CLUSTER_MANAGER"}}
    manager = manager_for("flink-application", spec["config"])
    unreachable = manager_for("flink-application", {**spec["config"], "rest_address": "127.0.0.1:9"})
    return Case(manager, submit_argv, env, unknown_id="f" * 32, unreachable=unreachable)


CASES: dict[str, Callable[[pytest.FixtureRequest, Path], Case]] = {
    "spark-standalone": lambda request, work: _spark_standalone(request.getfixturevalue("spark_cluster"), work),
    "flink-application": lambda request, work: _flink_application(work),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    """One manager's case; its manager closed afterwards."""
    made = CASES[request.param](request, tmp_path)
    yield made
    made.manager.close()
    made.unreachable.close()


def _wait_for(case: Case, app_id: str, states: set[AppState], timeout: float = 60) -> list[AppState]:
    seen: list[AppState] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = case.manager.status(app_id).state
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in states:
            return seen
        time.sleep(0.3)
    raise AssertionError(f"{app_id} never reached {states}; seen {seen}")


def test_a_manager_submits_follows_kills_and_fetches_logs(case: Case, tmp_path: Path) -> None:
    echoed: list[str] = []
    submission = case.manager.submit(case.argv, env=case.env, cwd=tmp_path, echo=echoed.append)
    assert submission.app_id, submission.output[-2000:]
    assert echoed, "the submitter's output is passed on as it comes"
    app_id = submission.app_id
    try:
        first = case.manager.status(app_id).state
        assert first in {AppState.SUBMITTED, AppState.RUNNING, AppState.UNKNOWN}
        running = _wait_for(case, app_id, {AppState.RUNNING})
        assert not any(state.final for state in running)
        assert case.manager.status(app_id).where, "a running driver says where it runs"
    finally:
        case.manager.kill(app_id)
    seen = _wait_for(case, app_id, {AppState.KILLED, AppState.FAILED, AppState.SUCCEEDED})
    assert seen[-1] is AppState.KILLED, seen
    case.manager.kill(app_id)  # idempotent: an ended application is no error
    logs = case.manager.fetch_logs(app_id, tmp_path / "driver")
    assert {path.name for path in logs} >= {"stdout", "stderr"}
    assert "driver up" in (tmp_path / "driver" / "stdout").read_text()


def test_an_unknown_application_is_an_error_to_ask_about_and_nothing_to_kill(case: Case) -> None:
    with pytest.raises(ManagerError, match=case.unknown_id):
        case.manager.status(case.unknown_id)
    case.manager.kill(case.unknown_id)


def test_a_manager_that_cannot_be_reached_says_so(case: Case) -> None:
    with pytest.raises(ManagerError, match="could not reach"):
        case.unreachable.status(case.unknown_id)
    with pytest.raises(ManagerError, match="could not reach"):
        case.unreachable.kill(case.unknown_id)
