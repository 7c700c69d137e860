"""A real Spark standalone cluster for the tests: a master (its REST submission server on) and two workers,
started from pyspark's own ``bin/spark-class``, bound to 127.0.0.1 on free ports, stopped by process group."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from spark_submit import FAST_START, pyspark_home

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
WORKERS = 2
WORKER_MEMORY = "512m"  # a driver or an executor of 512m fills one worker: jobs here run one at a time


def _free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@dataclass
class StandaloneCluster:
    """Where the test cluster answers, and the processes that make it."""

    master_url: str
    rest_url: str
    ui_url: str
    home: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def config(self, **extra: Any) -> dict[str, Any]:
        """A Spark cluster config for this cluster: cluster deploy mode, its REST server and web UI named, drivers
        and executors sized to fit a worker, this interpreter as the drivers' Python."""
        conf = {
            "spark.driver.memory": "512m",
            "spark.executor.memory": "512m",
            "spark.cores.max": "1",
            "spark.pyspark.python": sys.executable,
            "spark.driver.extraJavaOptions": FAST_START,
            "spark.executor.extraJavaOptions": FAST_START,
        }
        config: dict[str, Any] = {
            "master": self.master_url,
            "deploy_mode": "cluster",
            "rest_url": self.rest_url,
            "ui_url": self.ui_url,
            "poll_interval": 0.5,
            "conf": conf,
        }
        config.update(extra)
        return config

    def driver(self, driver_id: str) -> dict[str, Any]:
        """The master's own answer about a driver (its REST submission server, asked directly)."""
        answer: dict[str, Any] = httpx.get(f"{self.rest_url}/v1/submissions/status/{driver_id}", timeout=10).json()
        return answer

    def state(self) -> dict[str, Any]:
        """The master's web UI JSON: workers, drivers, applications."""
        answer: dict[str, Any] = httpx.get(f"{self.ui_url}/json/", timeout=10).json()
        return answer


def require_java() -> None:
    """Java must be here (it is on these machines); skipped without it, except under CI=true."""
    if shutil.which("java"):
        return
    problem = "no java on PATH: apt-get install -y openjdk-17-jdk-headless"
    if IN_CI:
        pytest.fail(problem, pytrace=False)
    pytest.skip(problem)


@contextlib.contextmanager
def standalone_cluster(
    base: Path,
    *,
    startup_timeout: float = 90.0,
    workers: int = WORKERS,
    cores: int = 1,
    memory: str = WORKER_MEMORY,
    master_conf: dict[str, str] | None = None,
) -> Iterator[StandaloneCluster]:
    """Start a master and ``workers`` workers (``cores`` and ``memory`` each) under ``base``, the master with
    ``master_conf`` added to its properties; stop them all (process groups) on the way out."""
    require_java()
    home = pyspark_home()
    master_port, ui_port, rest_port = _free_ports(3)
    base.mkdir(parents=True, exist_ok=True)
    properties = base / "spark-master.conf"
    properties.write_text(
        f"spark.master.rest.enabled true\nspark.master.rest.host 127.0.0.1\nspark.master.rest.port {rest_port}\n"
        + "".join(f"{key} {value}\n" for key, value in (master_conf or {}).items())
    )
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": "256m",
        "SPARK_DAEMON_JAVA_OPTS": FAST_START,
        "SPARK_LOG_DIR": str(base / "logs"),
    }
    cluster = StandaloneCluster(
        master_url=f"spark://127.0.0.1:{master_port}",
        rest_url=f"http://127.0.0.1:{rest_port}",
        ui_url=f"http://127.0.0.1:{ui_port}",
        home=home,
    )
    spark_class = str(home / "bin" / "spark-class")

    def start(name: str, argv: list[str], **extra: str) -> None:
        log = (base / f"{name}.log").open("wb")
        cluster.processes.append(
            subprocess.Popen(
                [spark_class, *argv],
                env={**env, **extra},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        )
        log.close()

    try:
        start(
            "master",
            ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(master_port),
             "--webui-port", str(ui_port), "--properties-file", str(properties)],
        )  # fmt: skip
        for index in range(workers):
            work = base / f"worker-{index}"
            work.mkdir(exist_ok=True)
            start(
                f"worker-{index}",
                ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", str(cores), "--memory",
                 memory, "--webui-port", "0", "--work-dir", str(work), cluster.master_url],
                SPARK_WORKER_DIR=str(work),
            )  # fmt: skip
        _wait_for_workers(cluster, base, startup_timeout, workers)
        yield cluster
    finally:
        for process in cluster.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in cluster.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_for_workers(cluster: StandaloneCluster, base: Path, timeout: float, workers: int) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in cluster.processes:
            if process.poll() is not None:
                logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(base.glob("*.log")))
                raise RuntimeError(f"a Spark daemon exited with {process.returncode}:\n{logs}")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            state = cluster.state()
            rest = httpx.get(f"{cluster.rest_url}/v1/submissions/status/driver-none", timeout=5)
            if state.get("aliveworkers") == workers and rest.status_code < 500:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the Spark standalone cluster did not register {workers} workers within {timeout} s")
