"""Running a PySpark script with pyspark's own spark-submit (local[1]), as the tests that need Spark's answers do:
the Hive Metastore fill job and the Spark SQL analyser check."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

# The JVMs here are short-lived: the C1 compiler alone starts them markedly faster.
FAST_START = "-XX:TieredStopAtLevel=1"


class SparkUnavailable(RuntimeError):
    """pyspark is not installed."""


def pyspark_home() -> Path:
    """The installed pyspark package directory (it holds bin/spark-submit and jars/)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise SparkUnavailable("pyspark is not installed (make test installs pyspark==4.3.0)")
    return Path(next(iter(spec.submodule_search_locations)))


def spark_submit(
    script: Path, *args: str, derby_home: Path, conf: dict[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run ``script`` with ``args`` on local[1] (this interpreter as Spark's
    Python; Derby's files in ``derby_home``; more ``--conf`` from ``conf``)."""
    home = pyspark_home()
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    command = [str(home / "bin" / "spark-submit"), "--master", "local[1]", "--driver-memory", "1g"]
    settings = {
        "spark.ui.enabled": "false",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={derby_home} {FAST_START}",
        **(conf or {}),
    }
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    return [*command, str(script), *args], env
