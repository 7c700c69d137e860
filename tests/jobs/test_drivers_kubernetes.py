"""The Kubernetes cluster manager: Spark's submission messages (Spark 3.x/4.x sources, k8s_api_standin.py quotes
them), driver pods read through the REAL ``kubernetes`` client from a stand-in API server (no Kubernetes can run
here), and the supervisor following a driver pod to its end."""

from __future__ import annotations

import copy
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import k8s_api_standin as k8s
import pytest
from drivers_helpers import finish, recorded_submitter, start_supervisor, wait_for_record
from k8s_api_standin import K8sApiStandIn

from headwater.jobs.drivers import AppState, ManagerError, manager_for, read_app_record
from headwater.jobs.drivers.kubernetes import KubernetesManager, pod_status, split_submission_id

SUBMISSION = f"{k8s.NAMESPACE}:{k8s.POD}"


# -- parsers, on the recorded messages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [k8s.SPARK_SUBMIT_K8S, k8s.SPARK_SUBMIT_K8S_34, k8s.SPARK_SUBMIT_K8S_WAITING],
    ids=["spark-3.5-and-4", "spark-3.0-to-3.4", "waiting-for-completion"],
)
def test_the_submission_id_is_found_in_spark_submits_output(output: str) -> None:
    assert KubernetesManager({}).parse_submission(output) == SUBMISSION


def test_a_driver_pod_the_api_server_refused_has_no_submission_id() -> None:
    assert KubernetesManager({}).parse_submission(k8s.SPARK_SUBMIT_K8S_FORBIDDEN) is None


def test_a_submission_id_splits_into_namespace_and_pod() -> None:
    assert split_submission_id(SUBMISSION, "default") == (k8s.NAMESPACE, k8s.POD)
    assert split_submission_id("driver-pod", "team-a") == ("team-a", "driver-pod")
    with pytest.raises(ManagerError, match="not a Spark submission id"):
        split_submission_id("spark-jobs:", "default")


@pytest.mark.parametrize(
    ("pod", "state", "exit_code", "detail"),
    [
        (k8s.PENDING_UNSCHEDULED, AppState.SUBMITTED, None, ""),
        (k8s.PENDING, AppState.SUBMITTED, None, "ContainerCreating"),
        (k8s.RUNNING, AppState.RUNNING, None, ""),
        (k8s.SUCCEEDED, AppState.SUCCEEDED, 0, "driver exited 0 (Completed)"),
        (
            k8s.FAILED,
            AppState.FAILED,
            1,
            "driver exited 1 (Error); Traceback (most recent call last): ValueError: boom",
        ),
        (k8s.OOM_KILLED, AppState.FAILED, 137, "driver exited 137 (OOMKilled)"),
        (k8s.EVICTED, AppState.FAILED, None, "Evicted: The node was low on resource: memory."),
        (k8s.UNKNOWN, AppState.UNKNOWN, None, ""),
    ],
    ids=["unscheduled", "pending", "running", "succeeded", "failed", "oom-killed", "evicted", "unknown"],
)
def test_a_driver_pod_maps_to_a_state_with_the_drivers_exit(
    pod: dict, state: AppState, exit_code: int | None, detail: str
) -> None:
    status = pod_status(pod)
    assert (status.state, status.raw, status.exit_code) == (state, pod["status"]["phase"], exit_code)
    assert status.detail.startswith(detail)
    assert status.where == (f"{k8s.POD} on worker-3" if "nodeName" in pod["spec"] else k8s.POD)


def test_spark_submit_is_told_not_to_wait_and_where_to_create_the_driver() -> None:
    assert KubernetesManager.submit_confs({"namespace": "team-a"}) == {
        "spark.kubernetes.submission.waitAppCompletion": "false",
        "spark.kubernetes.namespace": "team-a",
    }


def test_a_missing_kubernetes_client_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # what `import kubernetes` sees when it is not installed
    with pytest.raises(ManagerError, match=r"pip install 'headwater\[kubernetes\]'"):
        manager_for("kubernetes", {}).status(SUBMISSION)


def test_a_missing_kubeconfig_is_a_manager_error(tmp_path: Path) -> None:
    with pytest.raises(ManagerError, match="no usable Kubernetes client configuration"):
        manager_for("kubernetes", {"kubeconfig": str(tmp_path / "absent")}).status(SUBMISSION)


def test_in_cluster_outside_a_pod_is_a_manager_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    with pytest.raises(ManagerError, match="no usable Kubernetes client configuration: Service host/port is not set"):
        manager_for("kubernetes", {"in_cluster": True}).status(SUBMISSION)


def test_nothing_is_submitted_when_the_client_cannot_be_configured(tmp_path: Path) -> None:
    work = tmp_path / "job"
    argv = recorded_submitter(tmp_path, k8s.SPARK_SUBMIT_K8S)
    config = {"kubeconfig": str(tmp_path / "absent")}
    code, stdout, _ = finish(start_supervisor("kubernetes", config, argv, work))
    assert code == 2
    assert "headwater: not submitted: no usable Kubernetes client configuration" in stdout
    assert "Deployed Spark application" not in stdout and read_app_record(work) is None


def test_an_invalid_config_is_refused_with_the_key_named() -> None:
    with pytest.raises(ManagerError, match="delete_grace_period"):
        manager_for("kubernetes", {"delete_grace_period": -5})


# -- the real client against the stand-in API server -------------------------------------------------------------


@pytest.fixture
def k8s_api() -> Iterator[K8sApiStandIn]:
    """The stand-in API server, started for the test and stopped after it."""
    standin = K8sApiStandIn().start()
    yield standin
    standin.stop()


def config(k8s_api: K8sApiStandIn, directory: Path, **extra: object) -> dict[str, object]:
    """A kubernetes cluster config: a kubeconfig for the stand-in, chosen by context over its current one."""
    kubeconfig = k8s_api.kubeconfig(directory / "kubeconfig", current="elsewhere")
    return {"kubeconfig": str(kubeconfig), "context": "standin", "namespace": k8s.NAMESPACE, **extra}


@pytest.mark.integration
def test_status_follows_the_driver_pod_through_its_phases(k8s_api: K8sApiStandIn, tmp_path: Path) -> None:
    k8s_api.add_pod([k8s.PENDING, k8s.RUNNING, k8s.SUCCEEDED])
    manager = manager_for("kubernetes", config(k8s_api, tmp_path))
    seen = [manager.status(SUBMISSION) for _ in range(3)]
    manager.close()
    assert [s.state for s in seen] == [AppState.SUBMITTED, AppState.RUNNING, AppState.SUCCEEDED]
    assert seen[0].detail == "ContainerCreating" and seen[2].exit_code == 0
    method, path = k8s_api.requests[0].method, k8s_api.requests[0].path
    assert (method, path) == ("GET", f"/api/v1/namespaces/{k8s.NAMESPACE}/pods/{k8s.POD}")


@pytest.mark.integration
def test_a_failed_driver_reports_its_exit_code_and_message(k8s_api: K8sApiStandIn, tmp_path: Path) -> None:
    k8s_api.add_pod([k8s.FAILED])
    status = manager_for("kubernetes", config(k8s_api, tmp_path)).status(SUBMISSION)
    assert (status.state, status.exit_code) == (AppState.FAILED, 1)
    assert "ValueError: boom" in status.detail


@pytest.mark.integration
def test_kill_deletes_the_driver_pod_with_the_grace_period_and_again_is_no_error(
    k8s_api: K8sApiStandIn, tmp_path: Path
) -> None:
    k8s_api.add_pod([k8s.RUNNING])
    manager = manager_for("kubernetes", config(k8s_api, tmp_path, delete_grace_period=5))
    manager.kill(SUBMISSION)
    manager.kill(SUBMISSION)  # the pod is gone: 404, no error
    deletes = [r for r in k8s_api.requests if r.method == "DELETE"]
    assert len(deletes) == 2
    assert deletes[0].path == f"/api/v1/namespaces/{k8s.NAMESPACE}/pods/{k8s.POD}"
    assert deletes[0].body["gracePeriodSeconds"] == 5
    gone = manager.status(SUBMISSION)
    assert (gone.state, gone.raw) == (AppState.KILLED, "NotFound")


@pytest.mark.integration
def test_a_driver_that_ends_in_its_grace_period_after_a_kill_is_killed(k8s_api: K8sApiStandIn, tmp_path: Path) -> None:
    # The API server keeps a deleted pod while its driver stops (SIGTERM: exit 143), then removes it.
    sigterm = {"terminated": {"exitCode": 143, "reason": "Error", "startedAt": "2025-03-14T09:12:09Z",
                              "finishedAt": "2025-03-14T09:13:01Z"}}  # fmt: skip
    k8s_api.add_pod([k8s.RUNNING], terminating=[k8s.RUNNING, k8s.driver_pod("Failed", container_state=sigterm)])
    manager = manager_for("kubernetes", config(k8s_api, tmp_path))
    manager.kill(SUBMISSION)
    stopping, ended, gone = (manager.status(SUBMISSION) for _ in range(3))
    assert (stopping.state, stopping.detail) == (AppState.RUNNING, "the pod is being deleted")
    assert (ended.state, ended.raw, ended.exit_code) == (AppState.KILLED, "Failed", 143)
    assert ended.detail == "deleted by Headwater; driver exited 143 (Error)"
    assert (gone.state, gone.raw) == (AppState.KILLED, "NotFound")


@pytest.mark.integration
def test_a_pod_that_failed_while_being_deleted_was_killed_whoever_deleted_it(
    k8s_api: K8sApiStandIn, tmp_path: Path
) -> None:
    # The worker deletes the pod before it signals the supervisor, whose manager has deleted nothing yet.
    failed = k8s.driver_pod("Failed", container_state={"terminated": {"exitCode": 143, "reason": "Error"}})
    succeeded = copy.deepcopy(k8s.SUCCEEDED)
    for pod in (failed, succeeded):
        pod["metadata"]["deletionTimestamp"] = "2025-03-14T09:13:00Z"
    manager = manager_for("kubernetes", config(k8s_api, tmp_path))
    k8s_api.add_pod([failed])
    killed = manager.status(SUBMISSION)
    assert (killed.state, killed.detail) == (AppState.KILLED, "the pod was deleted; driver exited 143 (Error)")
    k8s_api.add_pod([succeeded])
    assert manager.status(SUBMISSION).state is AppState.SUCCEEDED  # a success deleted afterwards stays one


@pytest.mark.integration
def test_the_drivers_log_is_fetched_into_driver_stdout(k8s_api: K8sApiStandIn, tmp_path: Path) -> None:
    k8s_api.add_pod([k8s.SUCCEEDED])
    written = manager_for("kubernetes", config(k8s_api, tmp_path)).fetch_logs(SUBMISSION, tmp_path / "driver")
    assert written == [tmp_path / "driver" / "stdout"]
    assert written[0].read_bytes() == k8s.DRIVER_LOG
    query = next(r.query for r in k8s_api.requests if r.path.endswith("/log"))
    assert query == {"container": ["spark-kubernetes-driver"], "limitBytes": [str(8 * 1024 * 1024)]}


@pytest.mark.integration
def test_a_long_log_keeps_its_head_and_its_last_lines(k8s_api: K8sApiStandIn, tmp_path: Path) -> None:
    k8s_api.add_pod([k8s.FAILED], log=k8s.DRIVER_LOG + b"Traceback (most recent call last):\nValueError: boom\n")
    manager = manager_for("kubernetes", config(k8s_api, tmp_path, log_max_bytes=64, log_tail_lines=2))
    written = manager.fetch_logs(SUBMISSION, tmp_path / "driver")
    assert [p.name for p in written] == ["stdout", "stdout-tail"]
    assert written[0].read_bytes().startswith(k8s.DRIVER_LOG[:64] + b"\n[headwater: cut at log_max_bytes")
    assert written[1].read_bytes() == b"Traceback (most recent call last):\nValueError: boom\n"
    queries = [r.query for r in k8s_api.requests if r.path.endswith("/log")]
    assert queries[1] == {"container": ["spark-kubernetes-driver"], "limitBytes": ["64"], "tailLines": ["2"]}


@pytest.mark.integration
def test_a_pod_deleted_by_someone_else_is_an_error_naming_it(k8s_api: K8sApiStandIn, tmp_path: Path) -> None:
    with pytest.raises(ManagerError, match=f"no driver pod {k8s.NAMESPACE}/{k8s.POD} .*deleted by someone else"):
        manager_for("kubernetes", config(k8s_api, tmp_path)).status(SUBMISSION)


@pytest.mark.integration
def test_no_log_and_no_error_when_the_pod_is_gone(k8s_api: K8sApiStandIn, tmp_path: Path) -> None:
    assert manager_for("kubernetes", config(k8s_api, tmp_path)).fetch_logs(SUBMISSION, tmp_path / "driver") == []


@pytest.mark.integration
def test_credentials_come_from_the_kubeconfig(k8s_api: K8sApiStandIn, tmp_path: Path) -> None:
    k8s_api.add_pod([k8s.RUNNING])
    kubeconfig = k8s_api.kubeconfig(tmp_path / "kubeconfig")
    kubeconfig.write_text(kubeconfig.read_text().replace(k8s.TOKEN, "wrong-token"))
    with pytest.raises(ManagerError, match="answered 401"):
        manager_for("kubernetes", {"kubeconfig": str(kubeconfig)}).status(SUBMISSION)


@pytest.mark.integration
def test_an_api_server_that_went_away_is_a_manager_error(k8s_api: K8sApiStandIn, tmp_path: Path) -> None:
    manager = manager_for("kubernetes", config(k8s_api, tmp_path, connect_timeout=2, request_timeout=2))
    k8s_api.stop()
    with pytest.raises(ManagerError, match="could not reach the Kubernetes API server"):
        manager.status(SUBMISSION)


# -- the supervisor, with the stand-in API server ----------------------------------------------------------------


@pytest.mark.integration
def test_the_supervisor_follows_a_driver_pod_to_success_and_fetches_its_log(
    k8s_api: K8sApiStandIn, tmp_path: Path
) -> None:
    k8s_api.add_pod([k8s.PENDING, k8s.RUNNING, k8s.SUCCEEDED])
    work = tmp_path / "job"
    process = start_supervisor(
        "kubernetes", config(k8s_api, tmp_path), recorded_submitter(tmp_path, k8s.SPARK_SUBMIT_K8S), work
    )
    code, stdout, stderr = finish(process)
    assert code == 0, stderr
    assert "Deployed Spark application headwater-job" in stdout
    record = read_app_record(work)
    assert record is not None
    assert (record.manager, record.app_id, record.state, record.exit_code) == ("kubernetes", SUBMISSION, "SUCCEEDED", 0)
    assert record.logs == ["driver/stdout"]
    assert (work / "driver" / "stdout").read_bytes() == k8s.DRIVER_LOG


@pytest.mark.integration
def test_the_supervisor_exits_with_the_drivers_exit_code(k8s_api: K8sApiStandIn, tmp_path: Path) -> None:
    k8s_api.add_pod([k8s.RUNNING, k8s.OOM_KILLED])
    work = tmp_path / "job"
    process = start_supervisor(
        "kubernetes", config(k8s_api, tmp_path), recorded_submitter(tmp_path, k8s.SPARK_SUBMIT_K8S), work
    )
    code, _, stderr = finish(process)
    assert code == 137, stderr
    assert "OOMKilled" in stderr


@pytest.mark.integration
def test_sigterm_deletes_the_driver_pod_and_the_supervisor_exits_143(k8s_api: K8sApiStandIn, tmp_path: Path) -> None:
    k8s_api.add_pod([k8s.RUNNING])
    work = tmp_path / "job"
    process = start_supervisor(
        "kubernetes", config(k8s_api, tmp_path), recorded_submitter(tmp_path, k8s.SPARK_SUBMIT_K8S), work
    )
    wait_for_record(work, "RUNNING")
    process.send_signal(signal.SIGTERM)
    code, _, stderr = finish(process)
    assert code == 128 + signal.SIGTERM, stderr
    assert [r.path for r in k8s_api.requests if r.method == "DELETE"] == [
        f"/api/v1/namespaces/{k8s.NAMESPACE}/pods/{k8s.POD}"
    ]
    record = read_app_record(work)
    assert record is not None and record.state == "KILLED" and record.logs == []
