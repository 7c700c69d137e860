"""Job engines: each turns a resolved job (cluster + command + request) into an argv and environment.

Arguments are always an argv list handed to the operating system, never a shell string.
"""

from __future__ import annotations

import abc
import importlib.util
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headwater.jobs.models import ClusterType

__all__ = [
    "EngineError",
    "JobContext",
    "JobEngine",
    "Launch",
    "ShellEngine",
    "SparkEngine",
    "engine_for",
    "find_spark_submit",
]

LINEAGE_NAMESPACE = "headwater"


class EngineError(Exception):
    """The job cannot be launched on this engine (missing installation, unsupported type)."""


@dataclass
class Launch:
    """What to start: the argv and the extra environment."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobContext:
    """What an engine needs to know about the job."""

    job_id: str
    job_name: str
    run_uuid: str
    args: list[str]
    command: list[str]
    cluster_config: dict[str, Any]


class JobEngine(abc.ABC):
    """Builds the process launch of one job."""

    @abc.abstractmethod
    def launch(self, job: JobContext) -> Launch:
        """The argv and environment that run ``job``."""


class ShellEngine(JobEngine):
    """The command's executable and default arguments, then the job's arguments."""

    def launch(self, job: JobContext) -> Launch:
        """Run the command directly."""
        return Launch(argv=[*job.command, *job.args])


def find_spark_submit(config: dict[str, Any]) -> Path:
    """``spark-submit`` of the cluster's ``spark_home``, else of the installed pyspark, else on PATH."""
    home = config.get("spark_home")
    if isinstance(home, str) and home:
        candidate = Path(home) / "bin" / "spark-submit"
        if candidate.is_file():
            return candidate
        raise EngineError(f"cluster config spark_home={home!r} holds no bin/spark-submit")
    spec = importlib.util.find_spec("pyspark")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "spark-submit"
        if candidate.is_file():
            return candidate
    found = shutil.which("spark-submit")
    if found:
        return Path(found)
    raise EngineError("no spark-submit found: set the cluster's config spark_home, or install pyspark")


class SparkEngine(JobEngine):
    """``spark-submit`` with the cluster's master, the job's id as the OpenLineage parent run, then the command."""

    def launch(self, job: JobContext) -> Launch:
        """spark-submit --master <master> --conf ... <command args> <job args>."""
        config = job.cluster_config
        argv = [str(find_spark_submit(config)), "--master", str(config.get("master", "local[2]"))]
        confs: dict[str, str] = {"spark.ui.enabled": "false"}
        confs.update({str(k): str(v) for k, v in (config.get("conf") or {}).items()})
        confs.update(
            {
                "spark.openlineage.parentJobNamespace": LINEAGE_NAMESPACE,
                "spark.openlineage.parentJobName": job.job_name,
                "spark.openlineage.parentRunId": job.run_uuid,
            }
        )
        for key, value in confs.items():
            argv += ["--conf", f"{key}={value}"]
        # A Spark command reads ["spark-submit", default args...]: the program is this cluster's spark-submit.
        command = job.command[1:] if Path(job.command[0]).name == "spark-submit" else job.command
        env = {"SPARK_LOCAL_IP": str(config.get("local_ip", "127.0.0.1"))}
        return Launch(argv=[*argv, *command, *job.args], env=env)


def engine_for(cluster_type: str) -> JobEngine:
    """The engine of a cluster type."""
    if cluster_type == ClusterType.SHELL.value:
        return ShellEngine()
    if cluster_type == ClusterType.SPARK.value:
        return SparkEngine()
    raise EngineError(f"no engine for cluster type {cluster_type!r} yet (Flink is not implemented)")
