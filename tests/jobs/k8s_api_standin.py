"""A stand-in Kubernetes API server (no Kubernetes can run here) for the kubernetes manager's tests, and the
driver pods it answers with.

It serves, on 127.0.0.1 from a thread of the test process, the few core/v1 endpoints the manager uses:
``GET``/``DELETE /api/v1/namespaces/{ns}/pods/{name}`` and ``GET .../pods/{name}/log`` (``container``,
``limitBytes``), with a bearer token checked as an API server would. A pod is a list of Pod objects that each
read advances through (the last one stays); a deleted pod is gone (404, a ``Status`` object, as the API server
answers). The REAL ``kubernetes`` client talks to it through a kubeconfig :meth:`K8sApiStandIn.kubeconfig` writes.

The Pod objects follow the core/v1 Pod schema as the API server returns a Spark driver pod: Spark's labels
(``spark-app-selector``, ``spark-role: driver``, Constants.scala), its container ``spark-kubernetes-driver``, and
container states as the kubelet reports them (``waiting.reason: ContainerCreating``, ``terminated.reason:
Completed``/``Error`` with the exit code).
"""

from __future__ import annotations

import copy
import json
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from standin_http import JsonStandIn, Request

NAMESPACE = "spark-jobs"
POD = "headwater-job-7f3c2a9e1b-driver"
SPARK_APP_ID = "spark-3f6a0c5d2b7e4f1a9c8d7e6f5a4b3c2d"
TOKEN = "standin-token"
GONE: dict[str, Any] = {}  # in a pod's readings: deleted by now (404)
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)(/log)?$")

# spark-submit --master k8s://... --deploy-mode cluster --conf spark.kubernetes.submission.waitAppCompletion=false:
# KubernetesClientApplication's Client.run logs this line (Spark 3.5+/4.x; SPARK-42813) and exits.
SPARK_SUBMIT_K8S = f"""\
25/03/14 09:12:01 WARN NativeCodeLoader: Unable to load native-hadoop library for your platform... using builtin-java classes where applicable
25/03/14 09:12:02 INFO SparkKubernetesClientFactory: Auto-configuring K8S client using current context from users K8S config file
25/03/14 09:12:03 INFO KerberosConfDriverFeatureStep: You have not specified a krb5.conf file locally or via a ConfigMap. Make sure that you have the krb5.conf locally on the driver image.
25/03/14 09:12:04 INFO Client: Deployed Spark application headwater-job with application ID {SPARK_APP_ID} and submission ID {NAMESPACE}:{POD} into Kubernetes
25/03/14 09:12:04 INFO ShutdownHookManager: Shutdown hook called
"""
# Spark 3.0-3.4's LoggingPodStatusWatcherImpl.watchOrStop (no application ID in the line).
SPARK_SUBMIT_K8S_34 = f"25/03/14 09:12:04 INFO LoggingPodStatusWatcherImpl: Deployed Spark application headwater-job with submission ID {NAMESPACE}:{POD} into Kubernetes\n"
# A waiting spark-submit (waitAppCompletion=true, Spark 3.5+): the line before it follows the pod.
SPARK_SUBMIT_K8S_WAITING = f"25/03/14 09:12:04 INFO LoggingPodStatusWatcherImpl: Waiting for application headwater-job with application ID {SPARK_APP_ID} and submission ID {NAMESPACE}:{POD} to finish...\n"
# The API server refused the driver pod: spark-submit fails before any submission ID.
SPARK_SUBMIT_K8S_FORBIDDEN = """\
Exception in thread "main" io.fabric8.kubernetes.client.KubernetesClientException: Failure executing: POST at: https://k8s.example.com/api/v1/namespaces/spark-jobs/pods. Message: pods is forbidden: User "system:serviceaccount:spark-jobs:default" cannot create resource "pods" in API group "" in the namespace "spark-jobs".
"""

DRIVER_LOG = b"""\
Files local:///opt/spark/work-dir/job.py from /opt/spark/work-dir/job.py to /opt/spark/work-dir/job.py
25/03/14 09:12:20 INFO SparkContext: Running Spark version 4.0.0
rows written: 42
25/03/14 09:12:41 INFO SparkContext: Successfully stopped SparkContext
"""


def driver_pod(
    phase: str,
    *,
    container_state: dict[str, Any] | None = None,
    reason: str | None = None,
    message: str | None = None,
    node: str | None = "worker-3",
) -> dict[str, Any]:
    """A Spark driver pod as ``GET /api/v1/namespaces/{ns}/pods/{name}`` returns it, in ``phase``."""
    status: dict[str, Any] = {"phase": phase, "qosClass": "Burstable", "startTime": "2025-03-14T09:12:04Z"}
    if node:
        status["hostIP"] = "10.0.3.7"
        status["podIP"] = "10.244.3.19"
    if container_state is not None:
        status["containerStatuses"] = [
            {
                "name": "spark-kubernetes-driver",
                "image": "apache/spark:4.0.0",
                "imageID": "docker.io/apache/spark@sha256:0b2d1c4e5f",
                "ready": "running" in container_state,
                "restartCount": 0,
                "started": "running" in container_state,
                "state": container_state,
                "lastState": {},
            }
        ]
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "spark-kubernetes-driver",
                "image": "apache/spark:4.0.0",
                "args": ["driver", "--properties-file", "/opt/spark/conf/spark.properties", "--class",
                         "org.apache.spark.deploy.PythonRunner", "local:///opt/spark/work-dir/job.py"],
                "ports": [{"name": "driver-rpc-port", "containerPort": 7078, "protocol": "TCP"},
                          {"name": "blockmanager", "containerPort": 7079, "protocol": "TCP"},
                          {"name": "spark-ui", "containerPort": 4040, "protocol": "TCP"}],
            }
        ],
        "restartPolicy": "Never",
        "serviceAccountName": "spark",
    }  # fmt: skip
    if node:
        spec["nodeName"] = node
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": POD,
            "namespace": NAMESPACE,
            "uid": "5b0c9a8e-3f1d-4c2b-9a7e-6d5c4b3a2f10",
            "resourceVersion": "48213",
            "creationTimestamp": "2025-03-14T09:12:04Z",
            "labels": {
                "spark-app-name": "headwater-job",
                "spark-app-selector": SPARK_APP_ID,
                "spark-role": "driver",
                "spark-version": "4.0.0",
            },
        },
        "spec": spec,
        "status": status,
    }


PENDING = driver_pod("Pending", container_state={"waiting": {"reason": "ContainerCreating"}}, node="worker-3")
PENDING_UNSCHEDULED = driver_pod("Pending", node=None)
RUNNING = driver_pod("Running", container_state={"running": {"startedAt": "2025-03-14T09:12:09Z"}})
SUCCEEDED = driver_pod(
    "Succeeded",
    container_state={"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2025-03-14T09:12:09Z",
                                    "finishedAt": "2025-03-14T09:12:42Z", "containerID": "containerd://9f8e7d"}},
)  # fmt: skip
FAILED = driver_pod(
    "Failed",
    container_state={"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2025-03-14T09:12:09Z",
                                    "finishedAt": "2025-03-14T09:12:30Z", "containerID": "containerd://1a2b3c",
                                    "message": "Traceback (most recent call last): ValueError: boom"}},
)  # fmt: skip
OOM_KILLED = driver_pod(
    "Failed",
    container_state={"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": "2025-03-14T09:12:09Z",
                                    "finishedAt": "2025-03-14T09:12:30Z"}},
)  # fmt: skip
EVICTED = driver_pod(
    "Failed",
    reason="Evicted",
    message="The node was low on resource: memory. Threshold quantity: 100Mi, available: 91456Ki.",
)
UNKNOWN = driver_pod("Unknown", container_state={"running": {"startedAt": "2025-03-14T09:12:09Z"}})


def not_found(name: str) -> dict[str, Any]:
    """The API server's 404 for a pod: a ``Status`` object."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'pods "{name}" not found',
        "reason": "NotFound",
        "details": {"name": name, "kind": "pods"},
        "code": 404,
    }


class K8sApiStandIn(JsonStandIn):
    """The stand-in API server: pods by (namespace, name), each a list of Pod objects read one after the other."""

    thread_name = "k8s-standin"

    def __init__(self) -> None:
        super().__init__()
        self.pods: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.logs: dict[tuple[str, str], bytes] = {}
        self.terminating: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def add_pod(
        self,
        phases: list[dict[str, Any]],
        log: bytes = DRIVER_LOG,
        namespace: str = NAMESPACE,
        name: str = POD,
        *,
        terminating: list[dict[str, Any]] | None = None,
    ) -> None:
        """A driver pod that reads as each of ``phases`` in turn. Deleted, it is gone at once, or first reads as
        each of ``terminating`` (with its deletionTimestamp: the grace period, while the driver stops)."""
        with self.lock:
            self.pods[(namespace, name)] = [copy.deepcopy(p) for p in phases]
            self.logs[(namespace, name)] = log
            self.terminating[(namespace, name)] = [copy.deepcopy(p) for p in terminating or []]

    def kubeconfig(self, path: Path, *, current: str = "standin") -> Path:
        """A kubeconfig with a context ``standin`` for this server (a bearer token) and a context ``elsewhere``
        for a closed port; ``current`` is its current context."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "standin", "cluster": {"server": self.url}},
                {"name": "elsewhere", "cluster": {"server": "http://127.0.0.1:9"}},
            ],
            "users": [{"name": "headwater", "user": {"token": TOKEN}}],
            "contexts": [
                {"name": "standin", "context": {"cluster": "standin", "user": "headwater", "namespace": NAMESPACE}},
                {"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "headwater"}},
            ],
            "current-context": current,
        }
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    def answer(self, handler: BaseHTTPRequestHandler, request: Request) -> None:
        """Answer one request."""
        if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            unauthorized = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "Unauthorized",
                            "reason": "Unauthorized", "code": 401}  # fmt: skip
            return self.send(handler, 401, unauthorized)
        match = PODS.match(request.path)
        if match is None:
            return self.send(handler, 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404})
        key, query = (match.group(1), match.group(2)), request.query
        with self.lock:
            phases = self.pods.get(key)
            if phases is None:
                return self.send(handler, 404, not_found(key[1]))
            if match.group(3):  # the log
                data = self.logs[key]
                if "tailLines" in query:  # the kubelet starts from the tail, then applies limitBytes
                    data = b"".join(data.splitlines(keepends=True)[-int(query["tailLines"][0]) :])
                limit = int(query.get("limitBytes", ["0"])[0])
                return self.send_bytes(handler, 200, data[:limit] if limit else data, "text/plain")
            pod = phases[0]
            if request.method == "DELETE":
                grace = (request.body or {}).get("gracePeriodSeconds", query.get("gracePeriodSeconds", [None])[0])
                deleting = [copy.deepcopy(p) for p in [pod, *self.terminating.pop(key, [])]]
                for one in deleting:
                    one["metadata"]["deletionTimestamp"] = "2025-03-14T09:13:00Z"
                    one["metadata"]["deletionGracePeriodSeconds"] = int(grace) if grace is not None else 30
                if len(deleting) > 1:
                    self.pods[key] = [*deleting[1:], GONE]
                else:
                    del self.pods[key]
                return self.send(handler, 200, deleting[0])
            if pod is GONE:
                del self.pods[key]
                return self.send(handler, 404, not_found(key[1]))
            if len(phases) > 1:
                phases.pop(0)
        self.send(handler, 200, pod)
