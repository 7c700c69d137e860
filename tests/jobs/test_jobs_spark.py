"""A real Spark job end to end through the API: spark-submit from pyspark, a PySpark script writing Parquet,
the job id injected as the OpenLineage parent run, the job's user passed as --proxy-user, declared datasets recorded as lineage of the run."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest
from jobs_helpers import spark_setup

from headwater.jobs.worker import JobWorker

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SCRIPT = textwrap.dedent(
    """
    import sys
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("headwater-test").getOrCreate()
    print("PARENT", spark.conf.get("spark.openlineage.parentRunId"))
    print("SPARK_USER", spark.sparkContext.sparkUser())
    df = spark.createDataFrame([("a", 1), ("b", 2), ("a", 3)], ["key", "value"])
    df.groupBy("key").sum("value").orderBy("key").write.mode("overwrite").parquet(sys.argv[1])
    spark.stop()
    """
)


@pytest.mark.single_backend("postgres")  # one Spark run per suite (~15 s): the engine path is database-blind
async def test_spark_job_end_to_end(client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path) -> None:
    import pyspark  # noqa: F401  (the dev extra installs it; missing is a failure, not a skip)

    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    output = tmp_path / "out.parquet"
    await spark_setup(client)
    # --proxy-user: Spark acts as the job's user (the cluster enforces it; docs/security/jobs.md).
    config = {"master": "local[1]", "proxy_user": True}
    assert (await client.patch("/api/v1/clusters/spark-local", json={"config": config})).status_code == 200
    body = {
        "name": "aggregate",
        "user": "alice",
        "command_args": [str(script), str(output)],
        "cluster_criteria": [["sched:spark"]],
        "command_criteria": ["type:spark"],
        "timeout": 300,
        "inputs": [{"namespace": "file", "name": "/in/events"}],
        "outputs": [{"namespace": "file", "name": str(output)}],
    }
    job = (await client.post("/api/v1/jobs", json=body)).json()
    assert job["status"] == "RESOLVED", job
    job_id = job["id"]
    worker.drain(timeout=240)
    final = (await client.get(f"/api/v1/jobs/{job_id}")).json()
    stderr = (await client.get(f"/api/v1/jobs/{job_id}/output/stderr")).text
    assert final["status"] == "SUCCEEDED", (final, stderr[-3000:])
    stdout = (await client.get(f"/api/v1/jobs/{job_id}/output/stdout")).text
    assert f"PARENT {job_id}" in stdout
    assert "SPARK_USER alice" in stdout
    import pyarrow.parquet as pq

    rows = sorted(pq.read_table(str(output)).to_pylist(), key=lambda r: r["key"])
    assert rows == [{"key": "a", "sum(value)": 4}, {"key": "b", "sum(value)": 2}]
    run = (await client.get(f"/api/v1/lineage/runs/{job['run_id']}")).json()

    assert run["state"] == "COMPLETE", run
