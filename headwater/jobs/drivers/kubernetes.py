"""Spark on Kubernetes in cluster deploy mode: the cluster manager "kubernetes" (:mod:`.base`).

spark-submit creates the driver pod and, with ``spark.kubernetes.submission.waitAppCompletion=false``, returns at
once, printing the submission id ``<namespace>:<driver pod name>``. Headwater tracks that pod through the official
``kubernetes`` Python client: its phase (Pending, Running, Succeeded, Failed, Unknown) and the driver container's
exit code give the state; a kill deletes the pod (as ``spark-submit --kill`` does); its log is copied into
``driver/stdout`` when it ended.

Messages parsed are Spark 3.x/4.x's (``KubernetesClientApplication`` / ``LoggingPodStatusWatcherImpl``); the Pod
objects are the core/v1 API's. Tests run the real client against a stand-in API server
(tests/jobs/k8s_api_standin.py); nothing here was run against a real Kubernetes cluster.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from headwater.jobs.drivers.base import AppState, AppStatus, ClusterManager, ManagerError, Submission, register

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, CoreV1Api

__all__ = ["INSTALL_HINT", "KubernetesConfig", "KubernetesManager", "pod_status", "split_submission_id"]

INSTALL_HINT = "pip install 'headwater[kubernetes]'"
# "Deployed Spark application <name> with application ID <spark-...> and submission ID <ns>:<pod> into Kubernetes"
# (Spark 3.5+), "... with submission ID <ns>:<pod> into Kubernetes" (3.0-3.4), and the "Waiting for application ...
# submission ID <ns>:<pod> to finish..." line of a waiting spark-submit. Namespaces and pod names are DNS names.
SUBMITTED = re.compile(r"submission ID ([a-z0-9](?:[-a-z0-9]*[a-z0-9])?:[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?)")
DRIVER_CONTAINER = "spark-kubernetes-driver"  # Spark's Constants.DEFAULT_DRIVER_CONTAINER_NAME
PHASES: dict[str, AppState] = {
    "Pending": AppState.SUBMITTED,
    "Running": AppState.RUNNING,
    "Succeeded": AppState.SUCCEEDED,
    "Failed": AppState.FAILED,
    "Unknown": AppState.UNKNOWN,  # the node stopped reporting: not final, the pod may come back
}
DETAIL_CHARS = 500


class KubernetesConfig(BaseModel):
    """The ``kubernetes`` manager's keys in a cluster's config (other keys, the engine's, are ignored here)."""

    model_config = ConfigDict(extra="ignore")

    namespace: str = "default"  # where a submission id without one is looked for
    kubeconfig: str | None = None  # a kubeconfig file; default $KUBECONFIG or ~/.kube/config of the job's user
    context: str | None = None  # a context of that kubeconfig
    in_cluster: bool = False  # the service account of the pod the supervisor runs in
    driver_container: str = DRIVER_CONTAINER  # the driver's container (pod templates may rename it)
    delete_grace_period: int = Field(default=30, ge=0)  # seconds the driver gets to stop after a kill
    connect_timeout: float = Field(default=10.0, gt=0)
    request_timeout: float = Field(default=30.0, gt=0)
    log_max_bytes: int = Field(default=8 * 1024 * 1024, gt=0)  # limitBytes of the driver's log (its head)
    log_tail_lines: int = Field(default=2000, ge=0)  # when the head was cut: the last lines, into stdout-tail


def _kubernetes() -> Any:
    """The ``kubernetes`` package, imported on first use (an optional extra)."""
    try:
        import kubernetes
    except ImportError:
        raise ManagerError(f"the kubernetes cluster manager needs the kubernetes client: {INSTALL_HINT}") from None
    return kubernetes


def split_submission_id(submission_id: str, default_namespace: str) -> tuple[str, str]:
    """``(namespace, pod)`` of a submission id ``namespace:pod`` (or a bare pod name, in ``default_namespace``)."""
    namespace, _, pod = submission_id.rpartition(":")
    if not pod:
        raise ManagerError(f"{submission_id!r} is not a Spark submission id (<namespace>:<driver pod>)")
    return namespace or default_namespace, pod


def _get(obj: Any, *path: str) -> Any:
    """``obj.a.b`` for a client model or ``obj["a"]["b"]`` for a dict; None where a step is missing."""
    for name in path:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, _snake(name), None)
    return obj


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"


def pod_status(pod: Any, driver_container: str = DRIVER_CONTAINER) -> AppStatus:
    """Headwater's reading of a driver pod (a ``V1Pod`` or its JSON as a dict): its phase, and the driver
    container's state (why it waits, how it ended)."""
    phase = str(_get(pod, "status", "phase") or "Unknown")
    state = PHASES.get(phase, AppState.UNKNOWN)
    statuses = _get(pod, "status", "containerStatuses") or []
    container = next((c for c in statuses if _get(c, "name") == driver_container), statuses[0] if statuses else None)
    exit_code: int | None = None
    details: list[str] = []
    terminated = _get(container, "state", "terminated")
    waiting = _get(container, "state", "waiting")
    if terminated is not None:
        exit_code = _get(terminated, "exitCode")
        reason = _get(terminated, "reason") or ""
        details.append(f"driver exited {exit_code}" + (f" ({reason})" if reason else ""))
        if _get(terminated, "message"):
            details.append(str(_get(terminated, "message")))
    elif waiting is not None and _get(waiting, "reason"):
        details.append(
            f"{_get(waiting, 'reason')}" + (f": {_get(waiting, 'message')}" if _get(waiting, "message") else "")
        )
    # A pod that failed before its container ran (Evicted, DeadlineExceeded) says why at the pod level.
    if _get(pod, "status", "reason"):
        details.append(f"{_get(pod, 'status', 'reason')}: {_get(pod, 'status', 'message') or ''}".rstrip(": "))
    if _get(pod, "metadata", "deletionTimestamp") and not state.final:
        details.append("the pod is being deleted")
    if state is AppState.FAILED and exit_code == 0:
        exit_code = None  # a failed pod whose driver exited 0 (evicted afterwards): no usable exit code
    node = _get(pod, "spec", "nodeName")
    name = _get(pod, "metadata", "name") or ""
    where = f"{name} on {node}" if node else str(name)
    return AppStatus(state, raw=phase, detail=_one_line("; ".join(details)), exit_code=exit_code, where=where)


@register
class KubernetesManager(ClusterManager):
    """Spark drivers as pods, followed, killed and read through the Kubernetes API."""

    name: ClassVar[str] = "kubernetes"
    # <namespace>:<driver pod>, both DNS names
    app_id_pattern: ClassVar[re.Pattern[str]] = re.compile(
        r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?:[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?"
    )
    submission_id: ClassVar[re.Pattern[str] | None] = SUBMITTED
    # What the engine adds to spark-submit (see :meth:`submit_confs`).
    SUBMIT_CONFS: ClassVar[dict[str, str]] = {"spark.kubernetes.submission.waitAppCompletion": "false"}

    def __init__(self, config: Mapping[str, Any], *, http: httpx.Client | None = None) -> None:
        super().__init__(config, http=http)
        try:
            self.settings = KubernetesConfig.model_validate(self.config)
        except ValidationError as exc:
            raise ManagerError(f"invalid kubernetes cluster config: {exc.errors(include_url=False)}") from None
        self._api_client: ApiClient | None = None
        self._core: CoreV1Api | None = None
        self._killed: set[str] = set()  # submission ids this manager deleted: their pod being gone is their end

    @classmethod
    def submit_confs(cls, config: Mapping[str, Any]) -> dict[str, str]:
        """The ``--conf``s spark-submit needs for Headwater to follow the driver: spark-submit returns once the
        driver pod exists, and the supervisor follows the pod; the namespace is the cluster's."""
        confs = dict(cls.SUBMIT_CONFS)
        namespace = config.get("namespace")
        if namespace:
            confs["spark.kubernetes.namespace"] = str(namespace)
        return confs

    def submit(
        self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, echo: Callable[[str], object]
    ) -> Submission:
        """Check first that the Kubernetes client and its configuration load (else nothing is submitted: a driver
        pod nobody can follow or delete is not created), then submit as every manager does."""
        try:
            self.core  # noqa: B018  # builds the client: the package, the kubeconfig or the service account
        except ManagerError as exc:
            echo(f"headwater: not submitted: {exc}\n")
            return Submission(app_id=None, returncode=2, output=str(exc))
        return super().submit(argv, env=env, cwd=cwd, echo=echo)

    @property
    def core(self) -> CoreV1Api:
        """The core/v1 API of the configured cluster (the client is built on first use)."""
        if self._core is None:
            kubernetes = _kubernetes()
            settings = self.settings
            try:
                if settings.in_cluster:
                    configuration = kubernetes.client.Configuration()
                    kubernetes.config.load_incluster_config(client_configuration=configuration)
                    self._api_client = kubernetes.client.ApiClient(configuration)
                else:
                    kubeconfig = settings.kubeconfig or os.environ.get("KUBECONFIG") or None
                    self._api_client = kubernetes.config.new_client_from_config(
                        config_file=kubeconfig, context=settings.context, persist_config=False
                    )
            except (kubernetes.config.ConfigException, OSError, ValueError) as exc:
                raise ManagerError(f"no usable Kubernetes client configuration: {exc}") from None
            self._core = kubernetes.client.CoreV1Api(self._api_client)
        return self._core

    def _timeout(self) -> tuple[float, float]:
        return (self.settings.connect_timeout, self.settings.request_timeout)

    def _call(self, what: str, call: Any, **kwargs: Any) -> Any:
        """``call(**kwargs)`` with the client's errors as :class:`ManagerError` (an ApiException keeps its status)."""
        kubernetes = _kubernetes()
        import urllib3  # the client's transport (a dependency of kubernetes)

        try:
            return call(_request_timeout=self._timeout(), **kwargs)
        except kubernetes.client.ApiException as exc:
            raise _ApiError(exc.status or 0, f"{what}: the API server answered {exc.status} {exc.reason}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # refused, reset, timed out, TLS, no such host
            raise ManagerError(f"{what}: could not reach the Kubernetes API server ({type(exc).__name__})") from None

    def status(self, app_id: str) -> AppStatus:
        """The driver pod's phase and its driver container's state. A pod this manager deleted and that is gone
        is KILLED; a pod it never saw deleted and cannot find is an error (deleted by someone else, or never made:
        the supervisor fails the job after ``lost_after``)."""
        namespace, pod = split_submission_id(app_id, self.settings.namespace)
        try:
            found = self._call(
                f"reading pod {namespace}/{pod}", self.core.read_namespaced_pod, name=pod, namespace=namespace
            )
        except _ApiError as exc:
            if exc.status != 404:
                raise
            if app_id in self._killed:
                return AppStatus(
                    AppState.KILLED, raw="NotFound", detail=f"the driver pod {namespace}/{pod} was deleted"
                )
            raise ManagerError(
                f"no driver pod {namespace}/{pod} (submission {app_id}): deleted by someone else, or never created"
            ) from None
        status = pod_status(found, self.settings.driver_container)
        ours = app_id in self._killed
        if (
            status.state.final
            and _get(found, "metadata", "deletionTimestamp")
            and (ours or status.state is AppState.FAILED)
        ):
            # The driver ended within the grace period of a delete (SIGTERM: exit 143): it was killed. A clean stop
            # (exit 0) counts as killed only after this manager's own delete: another's may follow a real success.
            who = "deleted by Headwater" if ours else "the pod was deleted"
            return replace(status, state=AppState.KILLED, detail=_one_line(f"{who}; {status.detail}"))
        return status

    def kill(self, app_id: str) -> None:
        """Delete the driver pod (its executors and config maps go with it: Spark makes the driver their owner);
        a pod already gone is no error."""
        namespace, pod = split_submission_id(app_id, self.settings.namespace)
        kubernetes = _kubernetes()
        self._killed.add(app_id)
        body = kubernetes.client.V1DeleteOptions(grace_period_seconds=self.settings.delete_grace_period)
        try:
            self._call(
                f"deleting pod {namespace}/{pod}", self.core.delete_namespaced_pod, name=pod, namespace=namespace,
                body=body, grace_period_seconds=self.settings.delete_grace_period,
            )  # fmt: skip
        except _ApiError as exc:
            if exc.status != 404:
                raise

    def fetch_logs(self, app_id: str, dest: Path) -> list[Path]:
        """The driver container's log (stdout and stderr as the kubelet keeps them) into ``driver/stdout``: its
        first ``log_max_bytes`` (the API's limitBytes) and, when that cut it, its last ``log_tail_lines`` lines in
        ``driver/stdout-tail`` (where a failed driver's error is). None when the pod is gone."""
        namespace, pod = split_submission_id(app_id, self.settings.namespace)
        limit = self.settings.log_max_bytes
        head = self._log(namespace, pod, limit_bytes=limit)
        if head is None:
            return []
        dest.mkdir(parents=True, exist_ok=True)
        truncated = len(head) >= limit  # the server's limit is approximate: it may send a little more
        path = dest / "stdout"
        path.write_bytes(
            head[:limit] + (b"\n[headwater: cut at log_max_bytes; the end is in stdout-tail]\n" if truncated else b"")
        )
        written = [path]
        if truncated and self.settings.log_tail_lines:
            tail = self._log(namespace, pod, limit_bytes=limit, tail_lines=self.settings.log_tail_lines)
            if tail:
                (dest / "stdout-tail").write_bytes(tail[:limit])
                written.append(dest / "stdout-tail")
        return written

    def _log(self, namespace: str, pod: str, **bounds: int) -> bytes | None:
        """The driver container's log within ``bounds`` (limit_bytes, tail_lines); None when the pod is gone."""
        try:
            response = self._call(
                f"reading the log of {namespace}/{pod}", self.core.read_namespaced_pod_log, name=pod,
                namespace=namespace, container=self.settings.driver_container, _preload_content=False, **bounds,
            )  # fmt: skip
        except _ApiError as exc:
            if exc.status == 404:
                return None
            raise
        try:
            return bytes(response.read(bounds["limit_bytes"] + 1))
        finally:
            response.release_conn()

    def close(self) -> None:
        """Close the API client's connection pool."""
        if self._api_client is not None:
            self._api_client.close()
            self._api_client, self._core = None, None


class _ApiError(ManagerError):
    """An answer of the API server other than success, with its HTTP status (404: the pod is gone)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
