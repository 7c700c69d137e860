"""One contract every job engine keeps (shell, Spark, Flink): an argv list naming a real program, never a shell
string; the job's arguments last and untouched; string-only environment; and, for Spark and Flink, the job's
run id handed to the engine's OpenLineage integration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from engine_helpers import require_flink_home

from headwater.jobs.engines import JobContext, engine_for

ARGS = ["--in", "file with spaces.csv", "; rm -rf /", "$(whoami)"]  # hostile only to a shell


def _cases() -> list[tuple[str, list[str], dict[str, object]]]:
    return [
        ("shell", ["/bin/echo"], {}),
        ("spark", ["spark-submit", "--name", "x"], {"master": "local[1]"}),
        ("spark", ["spark-sql"], {}),
        # cluster deploy mode: the supervisor runs spark-submit (headwater.jobs.drivers.supervise)
        ("spark", ["spark-submit", "job.py"], {"master": "spark://127.0.0.1:7077", "deploy_mode": "cluster"}),
        ("flink", ["flink", "-py", "job.py"], {}),
        ("flink", ["flink-sql"], {"jobmanager": "127.0.0.1:8081"}),
    ]


@pytest.mark.parametrize(("cluster_type", "command", "config"), _cases(), ids=lambda v: str(v)[:20])
def test_engine_contract(cluster_type: str, command: list[str], config: dict[str, object]) -> None:
    if cluster_type == "flink":
        config = {**config, "flink_home": str(require_flink_home())}
    job = JobContext(
        job_id="job-1",
        job_name="contract",
        run_uuid="2f0d7c9e-4d7a-4a43-9f55-1f2d0c7e9a10",
        args=list(ARGS),
        command=command,
        cluster_config=config,
    )
    launch = engine_for(cluster_type).launch(job)
    assert all(isinstance(arg, str) for arg in launch.argv)
    assert launch.argv[-len(ARGS) :] == ARGS  # the job's arguments come last, as given
    program = Path(launch.argv[0])
    assert program.is_absolute() and os.access(program, os.X_OK), program
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in launch.env.items())
    if cluster_type != "shell":
        assert any(job.run_uuid in arg for arg in launch.argv)  # the engine's OpenLineage events find the run
