"""The SQL of Spark SQL and Flink SQL jobs as lineage of their runs: finding it in the command line, and a real
``spark-sql`` job whose column lineage lands on its run."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from engine_helpers import run_job

from headwater.jobs.sql_lineage import MAX_SQL_BYTES, JobSql, JobSqlError, find_job_sql, split_statements
from headwater.jobs.worker import JobWorker

pytestmark = pytest.mark.anyio


def test_sql_is_found_in_the_arguments_of_sql_front_ends(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("INSERT INTO t SELECT 1;\n")
    found = find_job_sql(
        cluster_type="spark", command=["spark-sql", "-f", "a.sql"], args=["-e", "SELECT 2"], work_dir=tmp_path
    )
    assert found == JobSql(query="INSERT INTO t SELECT 1;\nSELECT 2", dialect="spark")
    flink = find_job_sql(cluster_type="flink", command=["flink-sql"], args=["-e", "SELECT 1"], work_dir=None)
    assert flink == JobSql(query="SELECT 1", dialect="flink")
    # Not a SQL front-end of the cluster's engine: a script's -e is its own business.
    assert find_job_sql(cluster_type="spark", command=["spark-submit"], args=["-e", "x"], work_dir=None) is None
    assert find_job_sql(cluster_type="shell", command=["spark-sql"], args=["-e", "x"], work_dir=None) is None
    assert find_job_sql(cluster_type="spark", command=["spark-sql"], args=["-S"], work_dir=None) is None
    with pytest.raises(JobSqlError, match="'missing.sql' cannot be read"):
        find_job_sql(cluster_type="spark", command=["spark-sql"], args=["-f", "missing.sql"], work_dir=tmp_path)
    (tmp_path / "big.sql").write_bytes(b" " * (MAX_SQL_BYTES + 1))
    with pytest.raises(JobSqlError, match="at most"):
        find_job_sql(cluster_type="spark", command=["spark-sql"], args=["-f", "big.sql"], work_dir=tmp_path)


def test_statements_split_at_semicolons_outside_quotes() -> None:
    sql = "SET 'a' = 'b'; INSERT INTO t SELECT 'x;y' AS c FROM s -- no; split\n; ;SELECT `q;r` FROM u"
    assert split_statements(sql, "spark") == [
        "SET 'a' = 'b'",
        "INSERT INTO t SELECT 'x;y' AS c FROM s -- no; split",
        "SELECT `q;r` FROM u",
    ]


@pytest.mark.integration
@pytest.mark.single_backend("postgres")  # one real Spark run (~15 s): the engine path is database-blind
async def test_spark_sql_job_records_its_column_lineage(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    r = await client.post(
        "/api/v1/clusters",
        json={
            "name": "spark-local",
            "type": "spark",
            "tags": ["sched:spark"],
            "config": {
                "master": "local[1]",
                "lineage_namespace": "spark://local",
                # No Hive metastore to start (Derby in the job directory): twice as fast, same SQL.
                "conf": {"spark.sql.catalogImplementation": "in-memory"},
            },
        },
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/commands", json={"name": "spark-sql", "executable": ["spark-sql"], "tags": ["sql"]})
    assert r.status_code == 201, r.text
    source = tmp_path / "events.csv"
    source.write_text("a,1,x\nb,2,x\na,3,x\nb,9,skip\n")
    output = tmp_path / "key_totals"
    sql = (
        f"CREATE TEMPORARY VIEW events (k STRING, v INT, note STRING) USING csv OPTIONS (path '{source}');\n"
        f"CREATE TABLE key_totals USING parquet LOCATION '{output}' AS\n"
        "SELECT k, SUM(v) AS total, COUNT(*) AS n FROM events WHERE note <> 'skip' GROUP BY k"
    )
    job = await run_job(
        client,
        worker,
        {
            "name": "spark-sql-totals",
            "user": "alice",
            "command_args": ["-e", sql],
            "cluster_criteria": [["sched:spark"]],
            "command_criteria": ["sql"],
            "timeout": 240,
        },
    )
    assert job["status"] == "SUCCEEDED", (job["status_message"], job["stderr"][-3000:])
    rows = sorted(pq.read_table(str(output)).to_pylist(), key=lambda row: row["k"])
    assert rows == [{"k": "a", "total": 4, "n": 2}, {"k": "b", "total": 2, "n": 1}]
    assert job["status_message"] == "exit code 0"
    edges = set()
    for column in ("k", "total"):
        graph = (
            await client.get(
                "/api/v1/lineage/graph",
                params={"namespace": "spark://local", "name": "key_totals", "field": column, "direction": "upstream"},
            )
        ).json()
        edges |= {
            (e["source"], e["target"].rsplit("#")[1], e["transformation_type"], e["subtype"], e["origin"])
            for e in graph["edges"]
            if e["last_run_id"] == job["run_id"]
        }
    assert {
        ("spark://local/events#k", "k", "DIRECT", "IDENTITY", "sql"),
        ("spark://local/events#v", "total", "DIRECT", "AGGREGATION", "sql"),
        ("spark://local/events#note", "total", "INDIRECT", "FILTER", "sql"),
    } <= edges
    run = (await client.get(f"/api/v1/lineage/runs/{job['run_id']}")).json()
    assert run["state"] == "COMPLETE" and run["job_name"] == "spark-sql-totals", run
