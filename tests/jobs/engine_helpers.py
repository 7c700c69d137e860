"""Helpers of the real-engine tests: the Flink installation of ``make flink``, clusters and commands for it,
and following a job through the worker while watching its status."""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from headwater.jobs.engines import write_local_flink_conf
from headwater.jobs.worker import JobWorker

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_flink_home() -> Path:
    """FLINK_HOME of ``.venv-flink`` (``make flink``); skipped when absent, except under CI=true, where it fails."""
    for home in sorted(REPO.glob(".venv-flink/lib/python3*/site-packages/pyflink"), reverse=True):
        if (home / "bin" / "flink").is_file():
            return home
    problem = f"no Flink in {REPO / '.venv-flink'}: run `make flink` (apache-flink in its own virtualenv)"
    if IN_CI:
        pytest.fail(f"{problem}; CI needs it (`make test` installs it)", pytrace=False)
    pytest.skip(problem)


async def flink_setup(client: httpx.AsyncClient, conf_dir: Path, **config: Any) -> Path:
    """A local Flink cluster (tag sched:flink, its conf bound to 127.0.0.1) with ``flink`` and ``flink-sql`` commands."""
    home = require_flink_home()
    write_local_flink_conf(home, conf_dir)
    cluster = {"flink_home": str(home), "conf_dir": str(conf_dir), "conf": {"parallelism.default": "1"}, **config}
    r = await client.post(
        "/api/v1/clusters", json={"name": "flink-local", "type": "flink", "tags": ["sched:flink"], "config": cluster}
    )
    assert r.status_code == 201, r.text
    for name in ("flink", "flink-sql"):
        r = await client.post("/api/v1/commands", json={"name": name, "executable": [name], "tags": [f"type:{name}"]})
        assert r.status_code == 201, r.text
    return home


async def run_job(client: httpx.AsyncClient, worker: JobWorker, body: dict[str, Any], timeout: float = 240) -> dict:
    """Submit ``body``, run the worker until the job ends; the job, with the statuses seen and its stderr."""
    r = await client.post("/api/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, lambda: worker.drain(timeout=timeout))
    job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    history = (await client.get(f"/api/v1/jobs/{job_id}/status")).json()
    job["seen"] = [t["to_status"] for t in history["transitions"]]
    job["stderr"] = (await client.get(f"/api/v1/jobs/{job_id}/output/stderr")).text
    job["stdout"] = (await client.get(f"/api/v1/jobs/{job_id}/output/stdout")).text
    return job


def read_csv_parts(directory: Path) -> list[list[str]]:
    """The rows of every CSV part file a Flink filesystem sink wrote, sorted."""
    rows = [
        line.split(",")
        for part in directory.rglob("part-*")
        if not part.name.startswith(".")
        for line in part.read_text().splitlines()
        if line
    ]
    return sorted(rows)


PYFLINK_AGGREGATE = textwrap.dedent(
    """
    import sys
    from pyflink.table import EnvironmentSettings, TableEnvironment

    source, sink = sys.argv[1], sys.argv[2]
    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    print("TAGS", env.get_config().get("openlineage.run.tags", "none"))
    env.execute_sql(
        f"CREATE TABLE events (k STRING, v INT) WITH ('connector'='filesystem','path'='{source}','format'='csv')"
    )
    env.execute_sql(
        f"CREATE TABLE totals (k STRING, total INT) WITH ('connector'='filesystem','path'='{sink}','format'='csv')"
    )
    env.execute_sql("INSERT INTO totals SELECT k, SUM(v) FROM events GROUP BY k").wait()
    """
)
AGGREGATE_TOTALS = [["a", "4"], ["b", "2"], ["c", "5"]]


async def run_pyflink_aggregate(
    client: httpx.AsyncClient, worker: JobWorker, work_dir: Path, name: str
) -> tuple[dict, Path, float]:
    """Run :data:`PYFLINK_AGGREGATE` as job ``name`` on the cluster of :func:`flink_setup`, over a four-row CSV
    (its sums are :data:`AGGREGATE_TOTALS`); the job, its sink directory and the seconds it took."""
    script = work_dir / "job.py"
    script.write_text(PYFLINK_AGGREGATE)
    source = work_dir / "events.csv"
    source.write_text("a,1\nb,2\na,3\nc,5\n")  # Flink's CSV format reads no header row
    sink = work_dir / "totals"
    started = time.monotonic()
    job = await run_job(
        client,
        worker,
        {
            "name": name,
            "user": "alice",
            "command_args": ["-py", str(script), source.as_uri(), sink.as_uri()],
            "cluster_criteria": [["sched:flink"]],
            "command_criteria": ["type:flink"],
            "timeout": 240,
        },
    )
    return job, sink, time.monotonic() - started


FLINK_SQL = """
-- a batch job: daily totals per key, from a CSV without header into CSV
CREATE TABLE events (k STRING, v INT, note STRING) WITH ('connector'='filesystem', 'path'='{source}', 'format'='csv');
CREATE TABLE key_totals (k STRING, total INT) WITH ('connector'='filesystem', 'path'='{sink}', 'format'='csv');
INSERT INTO key_totals SELECT k, SUM(v) AS total FROM events WHERE note <> 'skip;me' GROUP BY k;
"""
# The column edges into key_totals.total that FLINK_SQL gives, in namespace flink://local: run as a flink-sql
# script, or statement by statement from a PyFlink job.
KEY_TOTALS_EDGES = {
    ("flink://local/events#v", "DIRECT", "AGGREGATION", "sql"),
    ("flink://local/events#k", "INDIRECT", "GROUP_BY", "sql"),
    ("flink://local/events#note", "INDIRECT", "FILTER", "sql"),
}
