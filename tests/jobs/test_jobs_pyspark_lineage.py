"""PySpark jobs report their column lineage through Headwater's Python hook (no JVM agent): the Spark engine puts
the hook on the driver's path, the hook reads each write's analysed plan, and the worker files the events it
wrote as child runs of the job's run. The hook's file is the job's writing: the worker pins it to the job."""

from __future__ import annotations

import json
import os
import textwrap
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from engine_helpers import run_job

from headwater.jobs.engines import JobContext, SparkEngine
from headwater.jobs.hook_lineage import MAX_EVENTS, HookFile, read_hook_file
from headwater.jobs.lineage_hook import EVENTS_FILE, EVENTS_FILE_ENV, HOOK_DIR
from headwater.jobs.models import Job
from headwater.jobs.worker import JobWorker

pytestmark = pytest.mark.anyio

RUN = "2f0d7c9e-4d7a-4a43-9f55-1f2d0c7e9a10"

# The scenario of the issue: revenue per country from orders joined to customers, written to a table.
REVENUE_JOB = textwrap.dedent(
    """
    from pyspark.sql import SparkSession, functions as F

    spark = SparkSession.builder.appName("revenue").getOrCreate()
    spark.createDataFrame(
        [(1, "c1", 10.0), (2, "c2", 5.0), (3, "c1", 1.5)], ["order_id", "customer_id", "amount"]
    ).write.saveAsTable("orders")
    spark.createDataFrame([("c1", "FR", "Ann"), ("c2", "DE", "Bo")], ["customer_id", "country", "name"]).write.saveAsTable(
        "customers"
    )
    orders, customers = spark.table("orders"), spark.table("customers")
    revenue = orders.join(customers, "customer_id").groupBy("country").agg(F.sum("amount").alias("revenue"))
    revenue.write.saveAsTable("revenue_by_country")
    spark.sql("CREATE TABLE top_country USING parquet AS SELECT country FROM revenue_by_country WHERE revenue > 6")
    try:
        orders.write.saveAsTable("customers")  # exists already: this write fails, and the job goes on
    except Exception as exc:
        print("FAILED WRITE", type(exc).__name__)
    print("ROWS", sorted((r.country, r.revenue) for r in spark.table("revenue_by_country").collect()))
    spark.stop()
    """
)


def _context(command: list[str], **config: Any) -> JobContext:
    return JobContext(job_id="job-1", job_name="nightly", run_uuid=RUN, args=[], command=command, cluster_config=config)


def test_spark_submit_gets_the_hook_on_its_python_path_unless_turned_off() -> None:
    launch = SparkEngine().launch(_context(["spark-submit"], lineage_namespace="hive://metastore:9083"))
    assert launch.env["PYTHONPATH"] == str(HOOK_DIR)
    assert (HOOK_DIR / "sitecustomize.py").is_file()
    assert launch.env[EVENTS_FILE_ENV] == EVENTS_FILE
    assert "spark.headwater.lineageNamespace=hive://metastore:9083" in launch.argv
    off = SparkEngine().launch(_context(["spark-submit"], pyspark_lineage=False))
    assert "PYTHONPATH" not in off.env and EVENTS_FILE_ENV not in off.env
    # spark-sql runs no Python driver; its SQL is analysed from the command line instead.
    assert "PYTHONPATH" not in SparkEngine().launch(_context(["spark-sql"])).env


def _job(work_dir: Path) -> Job:
    return cast(Job, SimpleNamespace(work_dir=str(work_dir), run_uuid=RUN, name="nightly"))


def _event(run_id: str, job_name: str, **extra: Any) -> dict[str, Any]:
    return {"eventType": "COMPLETE", "run": {"runId": run_id}, "job": {"namespace": "x", "name": job_name}, **extra}


def test_hook_events_are_pinned_to_the_job_and_its_run(tmp_path: Path) -> None:
    other_run = str(uuid.uuid4())
    lines = [
        json.dumps(_event(other_run, "nightly.save_as_table.default.t")),
        "not json",
        json.dumps(["a", "list"]),
        json.dumps(_event(other_run, "somebody_else", run={"runId": other_run, "facets": {"parent": {"run": {}}}})),
    ]
    (tmp_path / EVENTS_FILE).write_text("\n".join(lines) + "\n")
    found = read_hook_file(_job(tmp_path))
    events = found.events
    assert found.notes == ["2 line(s) of the lineage hook file are not run events or statement records"]
    assert [e["job"] for e in events] == [
        {"namespace": "headwater", "name": "nightly.save_as_table.default.t"},
        {"namespace": "headwater", "name": "nightly.somebody_else"},
    ]
    for event in events:
        # Another run's id is never written to: ids are mapped into the job's own space.
        assert event["run"]["runId"] == str(uuid.uuid5(uuid.UUID(RUN), other_run)) != other_run
        parent = event["run"]["facets"]["parent"]
        assert parent["run"] == {"runId": RUN} and parent["job"] == {"namespace": "headwater", "name": "nightly"}


def test_hook_file_is_bounded_and_never_followed_through_a_symlink(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(_event(RUN, "x")) + "\n")
    work = tmp_path / "work"
    work.mkdir()
    os.symlink(secret, work / EVENTS_FILE)
    assert read_hook_file(_job(work)) == HookFile(
        notes=["lineage hook file not read: Too many levels of symbolic links"]
    )
    (work / EVENTS_FILE).unlink()
    (work / EVENTS_FILE).write_text((json.dumps(_event(RUN, "x")) + "\n") * (MAX_EVENTS + 5))
    found = read_hook_file(_job(work))
    assert len(found.events) == MAX_EVENTS
    assert found.notes == [f"lineage hook wrote more than {MAX_EVENTS} records: the rest were not read"]
    assert read_hook_file(_job(tmp_path / "no-such-dir")) == HookFile()


async def _upstream_edges(client: httpx.AsyncClient, name: str, column: str) -> set[tuple[str, str, str, str]]:
    graph = (
        await client.get(
            "/api/v1/lineage/graph",
            params={"namespace": "spark://local", "name": name, "field": column, "direction": "upstream"},
        )
    ).json()
    return {
        (e["source"], e["target"].rsplit("#")[1], e["transformation_type"], e["subtype"], e["last_run_id"])
        for e in graph["edges"]
    }


@pytest.mark.integration
@pytest.mark.single_backend("postgres")  # one real Spark run (~20 s): the engine path is database-blind
async def test_pyspark_join_and_aggregate_written_to_a_table_records_column_lineage(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    r = await client.post(
        "/api/v1/clusters",
        json={
            "name": "spark-local",
            "type": "spark",
            "tags": ["sched:spark"],
            "config": {
                "master": "local[1]",
                "lineage_namespace": "spark://local",
                "conf": {"spark.sql.catalogImplementation": "in-memory"},
            },
        },
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/commands", json={"name": "spark", "executable": ["spark-submit"], "tags": ["py"]})
    assert r.status_code == 201, r.text
    script = tmp_path / "revenue.py"
    script.write_text(REVENUE_JOB)
    job = await run_job(
        client,
        worker,
        {
            "name": "revenue-nightly",
            "user": "alice",
            "command_args": [str(script)],
            "cluster_criteria": [["sched:spark"]],
            "command_criteria": ["py"],
            "timeout": 240,
        },
    )
    assert job["status"] == "SUCCEEDED", (job["status_message"], job["stderr"][-3000:])
    assert "ROWS [('DE', 5.0), ('FR', 11.5)]" in job["stdout"] and "FAILED WRITE" in job["stdout"]
    assert job["status_message"] == "exit code 0"  # no lineage warning
    assert "headwater lineage hook" not in job["stderr"]

    edges = await _upstream_edges(client, "default.revenue_by_country", "revenue")
    edges |= await _upstream_edges(client, "default.revenue_by_country", "country")
    found = {edge[:4] for edge in edges}
    assert {
        ("spark://local/default.orders#amount", "revenue", "DIRECT", "AGGREGATION"),
        ("spark://local/default.customers#country", "country", "DIRECT", "IDENTITY"),
        ("spark://local/default.orders#customer_id", "revenue", "INDIRECT", "JOIN"),
        ("spark://local/default.customers#customer_id", "country", "INDIRECT", "JOIN"),
        ("spark://local/default.customers#country", "revenue", "INDIRECT", "GROUP_BY"),
    } <= found
    assert not any(edge[0].endswith("#name") or edge[0].endswith("#order_id") for edge in found)
    # The edges come from one run of the write, a child of the job's run.
    (write_run,) = {edge[4] for edge in edges}
    run = (await client.get(f"/api/v1/lineage/runs/{write_run}")).json()
    assert run["parent_run_id"] == job["run_id"], run
    assert run["job_name"] == "revenue-nightly.save_as_table.default.revenue_by_country"
    assert run["state"] == "COMPLETE"
    parent = (await client.get(f"/api/v1/lineage/runs/{job['run_id']}")).json()
    assert parent["state"] == "COMPLETE" and write_run in parent["children"], parent
    customers = await client.get(
        "/api/v1/datasets/by-name", params={"namespace": "spark://local", "name": "default.customers"}
    )
    # The failed write of orders' columns into customers left customers' schema as its real write made it.
    assert [f["path"] for f in customers.json()["fields"]] == ["customer_id", "country", "name"], customers.text
    children = [(await client.get(f"/api/v1/lineage/runs/{child}")).json() for child in parent["children"]]
    assert sorted((c["job_name"].removeprefix("revenue-nightly."), c["state"]) for c in children) == [
        ("create_data_source_table_as_select_command.default.top_country", "COMPLETE"),
        ("save_as_table.default.customers", "COMPLETE"),
        ("save_as_table.default.customers", "FAIL"),  # the failed write is reported too
        ("save_as_table.default.orders", "COMPLETE"),
        ("save_as_table.default.revenue_by_country", "COMPLETE"),
    ]
    # spark.sql statements that write are read the same way.
    top = await _upstream_edges(client, "default.top_country", "country")
    assert {edge[:4] for edge in top} >= {
        ("spark://local/default.revenue_by_country#country", "country", "DIRECT", "IDENTITY"),
        ("spark://local/default.revenue_by_country#revenue", "country", "INDIRECT", "FILTER"),
    }


def _attr(expr_id: int, name: str) -> dict[str, Any]:
    return {
        "class": "org.apache.spark.sql.catalyst.expressions.AttributeReference",
        "num-children": 0,
        "name": name,
        "dataType": "string",
        "exprId": {"id": expr_id},
    }


def _relation(*attrs: dict[str, Any]) -> dict[str, Any]:
    return {
        "class": "org.apache.spark.sql.execution.datasources.LogicalRelation",
        "num-children": 0,
        "output": [[a] for a in attrs],
    }


def test_plan_lineage_follows_unions_by_position_and_marks_hashes_as_masking() -> None:
    from headwater.jobs.lineage_hook.headwater_pyspark_plan import column_lineage

    alias = {"class": "org.apache.spark.sql.catalyst.expressions.Alias", "num-children": 1, "exprId": {"id": 9}}
    sha2 = {"class": "org.apache.spark.sql.catalyst.expressions.Sha2", "num-children": 1}
    plan = [  # SELECT sha2(email) AS h FROM (SELECT email FROM a UNION ALL SELECT mail FROM b)
        {"class": "org.apache.spark.sql.catalyst.plans.logical.Project", "num-children": 1,
         "projectList": [[alias, sha2, _attr(1, "email")]]},
        {"class": "org.apache.spark.sql.catalyst.plans.logical.Union", "num-children": 2},
        _relation(_attr(1, "email")),
        _relation(_attr(2, "mail")),
    ]  # fmt: skip
    found = column_lineage(plan, [("file", "/a"), ("file", "/b")], [(9, "h")])
    assert found["fields"] == {
        "h": {
            "inputFields": [
                {"namespace": "file", "name": name, "field": field,
                 "transformations": [{"type": "DIRECT", "subtype": "TRANSFORMATION", "masking": True}]}
                for name, field in (("/a", "email"), ("/b", "mail"))
            ]
        }
    }  # fmt: skip
    assert found["dataset"] == []
    assert [dataset for dataset, _ in found["_inputs"]] == [("file", "/a"), ("file", "/b")]


def test_sitecustomize_runs_the_one_it_shadows_and_stays_out_of_executors(tmp_path: Path) -> None:
    import subprocess
    import sys

    other = tmp_path / "site"
    other.mkdir()
    (other / "sitecustomize.py").write_text("print('SITE CUSTOMIZED')\n")
    probe = "import sys; print(any(type(f).__name__ == '_Finder' for f in sys.meta_path))"
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": f"{HOOK_DIR}{os.pathsep}{other}"}
    env[EVENTS_FILE_ENV] = EVENTS_FILE
    executor = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert executor.stdout.split() == ["SITE", "CUSTOMIZED", "False"], executor.stderr
    driver = subprocess.run(
        [sys.executable, "-c", probe], env={**env, "PYSPARK_GATEWAY_PORT": "1"}, capture_output=True, text=True
    )
    assert driver.stdout.split() == ["SITE", "CUSTOMIZED", "True"], driver.stderr


def test_a_retry_starts_with_no_lineage_of_the_attempt_before(tmp_path: Path) -> None:
    from headwater.jobs.workspace import prepare_workspace

    (tmp_path / EVENTS_FILE).write_text(json.dumps(_event(RUN, "x")) + "\n")
    prepare_workspace(tmp_path, attempt=2, attachments=[], applications=[])
    assert read_hook_file(_job(tmp_path)) == HookFile()  # recorded on the first attempt's run already
    assert (tmp_path / "attempts" / "1" / EVENTS_FILE).is_file()
