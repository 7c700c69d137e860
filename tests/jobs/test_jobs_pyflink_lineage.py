"""PyFlink jobs report the statements they run through Headwater's lineage hook: the Flink engine puts the hook on
the ``flink run -py`` client's path, the hook records every SQL statement and Table API write in the job's
directory, and the worker analyses them as a ``flink-sql`` job's SQL, filing each write as a child run of the
job's run. Real jobs on the Flink of ``make flink``; the session-cluster case is in test_jobs_flink_session.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine_helpers import FLINK_SQL, KEY_TOTALS_EDGES, flink_setup, read_csv_parts, require_flink_home, run_job

from headwater.jobs.engines import FlinkEngine, JobContext
from headwater.jobs.lineage_hook import EVENTS_FILE, EVENTS_FILE_ENV, HOOK_DIR
from headwater.jobs.runners.flink_sql import split_statements
from headwater.jobs.worker import JobWorker

pytestmark = pytest.mark.anyio

# Revenue per country (a join and an aggregate through execute_sql), FLINK_SQL's totals and a query's Table in one
# statement set, a Table API pipeline, and a statement Flink refuses, which the job catches and goes on.
REPORTING_JOB = textwrap.dedent(
    """
    import json, sys
    from pyflink.table import EnvironmentSettings, TableEnvironment
    from pyflink.table.expressions import col

    ddl, totals_insert = json.loads(sys.argv[1]), sys.argv[2]
    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    for statement in ddl:
        env.execute_sql(statement)
    env.execute_sql(
        "INSERT INTO revenue SELECT c.country, SUM(o.amount) AS revenue "
        "FROM orders AS o JOIN customers AS c ON o.customer_id = c.customer_id GROUP BY c.country"
    ).wait()
    statements = env.create_statement_set()
    statements.add_insert_sql(totals_insert)
    statements.add_insert("big_orders", env.sql_query("SELECT order_id, amount FROM orders WHERE amount > 5"))
    statements.execute().wait()
    customers = env.from_path("customers")
    customers.where(col("country") == "FR").select(col("customer_id"), col("name")).execute_insert(
        "french_customers"
    ).wait()
    try:
        env.execute_sql("INSERT INTO revenue SELECT missing_column, 1.0 FROM orders")
    except Exception as exc:
        print("FAILED STATEMENT", type(exc).__name__)
    """
)
# Reads a CSV whose second row is no number: the INSERT's Flink job fails, and so does wait() and the job.
FAILING_JOB = textwrap.dedent(
    """
    import sys
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.execute_sql(f"CREATE TABLE readings (v INT) WITH ('connector'='filesystem','path'='{sys.argv[1]}','format'='csv')")
    env.execute_sql(f"CREATE TABLE doubled (v INT) WITH ('connector'='filesystem','path'='{sys.argv[2]}','format'='csv')")
    env.execute_sql("INSERT INTO doubled SELECT v * 2 FROM readings").wait()
    """
)


def _context(command: list[str], args: list[str], **config: Any) -> JobContext:
    home = require_flink_home()
    return JobContext(
        job_id="j1",
        job_name="report",
        run_uuid="r-1",
        args=args,
        command=command,
        cluster_config={"flink_home": str(home), **config},
    )


def test_pyflink_client_gets_the_hook_on_its_python_path_unless_turned_off() -> None:
    launch = FlinkEngine().launch(_context(["flink"], ["-py", "job.py"], jobmanager="127.0.0.1:8081"))
    assert launch.env["PYTHONPATH"] == str(HOOK_DIR) and launch.env[EVENTS_FILE_ENV] == EVENTS_FILE
    off = FlinkEngine().launch(_context(["flink"], ["-py", "job.py"], pyflink_lineage=False))
    assert "PYTHONPATH" not in off.env and EVENTS_FILE_ENV not in off.env
    # A jar runs no Python client; flink-sql's SQL is read from its arguments instead.
    assert "PYTHONPATH" not in FlinkEngine().launch(_context(["flink", "-c", "Main"], ["app.jar"])).env
    assert "PYTHONPATH" not in FlinkEngine().launch(_context(["flink-sql"], ["-e", "SELECT 1"])).env


def test_sitecustomize_installs_the_pyflink_hook_only_in_the_client(tmp_path: Path) -> None:
    probe = "import sys; print(sorted(m for m in sys.modules if m.startswith('headwater_')))"
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(HOOK_DIR), EVENTS_FILE_ENV: EVENTS_FILE}
    worker = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert worker.stdout.strip() == "[]", worker.stderr  # a UDF worker: no gateway port
    client = subprocess.run(
        [sys.executable, "-c", probe], env={**env, "PYFLINK_GATEWAY_PORT": "1"}, capture_output=True, text=True
    )
    assert client.stdout.strip() == "['headwater_hook_support', 'headwater_pyflink_lineage']", client.stderr


async def _edges(client: httpx.AsyncClient, name: str, column: str) -> set[tuple[str, str, str, str]]:
    graph = (
        await client.get(
            "/api/v1/lineage/graph",
            params={"namespace": "flink://local", "name": name, "field": column, "direction": "upstream"},
        )
    ).json()
    return {(e["source"], e["transformation_type"], e["subtype"], e["last_run_id"]) for e in graph["edges"]}


async def _children(client: httpx.AsyncClient, job: dict) -> dict[str, list[dict]]:
    """The job run's child runs by job name (less the job's own name)."""
    parent = (await client.get(f"/api/v1/lineage/runs/{job['run_id']}")).json()
    found: dict[str, list[dict]] = {}
    for child in parent["children"]:
        run = (await client.get(f"/api/v1/lineage/runs/{child}")).json()
        assert run["parent_run_id"] == job["run_id"], run
        found.setdefault(run["job_name"].removeprefix(f"{job['name']}."), []).append(run)
    return found


def _table(name: str, columns: str, path: Path) -> str:
    return f"CREATE TABLE {name} ({columns}) WITH ('connector'='filesystem', 'path'='{path.as_uri()}', 'format'='csv')"


@pytest.mark.integration
@pytest.mark.single_backend("postgres")  # one real Flink run (~30 s): the engine path is database-blind
async def test_pyflink_table_api_job_records_column_lineage_of_its_writes(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    await flink_setup(client, tmp_path / "flink-conf", lineage_namespace="flink://local")
    data = tmp_path / "data"
    data.mkdir()
    (data / "orders.csv").write_text("1,c1,10.0\n2,c2,5.0\n3,c1,1.5\n")
    (data / "customers.csv").write_text("c1,FR,Ann\nc2,DE,Bo\n")
    (data / "events.csv").write_text("a,1,x\nb,2,x\na,3,x\nb,9,skip;me\n")
    # FLINK_SQL, the flink-sql job's script: its CREATE TABLEs run through execute_sql, its INSERT in a statement set.
    *totals_ddl, totals_insert = split_statements(
        FLINK_SQL.format(source=(data / "events.csv").as_uri(), sink=(data / "key_totals").as_uri())
    )
    ddl = [
        _table("orders", "order_id INT, customer_id STRING, amount DOUBLE", data / "orders.csv"),
        _table("customers", "customer_id STRING, country STRING, name STRING", data / "customers.csv"),
        _table("revenue", "country STRING, revenue DOUBLE", data / "revenue"),
        _table("big_orders", "order_id INT, amount DOUBLE", data / "big_orders"),
        _table("french_customers", "customer_id STRING, name STRING", data / "french_customers"),
        *totals_ddl,
    ]
    script = tmp_path / "report.py"
    script.write_text(REPORTING_JOB)
    job = await run_job(
        client,
        worker,
        {
            "name": "pyflink-report",
            "user": "alice",
            "command_args": ["-py", str(script), json.dumps(ddl), totals_insert],
            "cluster_criteria": [["sched:flink"]],
            "command_criteria": ["type:flink"],
            "timeout": 300,
        },
    )
    assert job["status"] == "SUCCEEDED", (job["status_message"], job["stderr"][-3000:])
    assert "FAILED STATEMENT" in job["stdout"] and "headwater lineage hook" not in job["stderr"]
    assert read_csv_parts(data / "revenue") == [["DE", "5.0"], ["FR", "11.5"]]
    assert read_csv_parts(data / "french_customers") == [["c1", "Ann"]]

    children = await _children(client, job)
    assert {name: sorted(run["state"] for run in runs) for name, runs in children.items()} == {
        "execute_sql.revenue": ["COMPLETE", "FAIL"],  # the refused statement is reported too
        "statement_set.key_totals": ["COMPLETE"],  # one run for the set: both its inserts
        "execute_insert.french_customers": ["COMPLETE"],
    }
    revenue_run = next(r["run_id"] for r in children["execute_sql.revenue"] if r["state"] == "COMPLETE")
    set_run = children["statement_set.key_totals"][0]["run_id"]
    table_run = children["execute_insert.french_customers"][0]["run_id"]

    revenue = await _edges(client, "revenue", "revenue") | await _edges(client, "revenue", "country")
    assert {
        ("flink://local/orders#amount", "DIRECT", "AGGREGATION", revenue_run),
        ("flink://local/customers#country", "DIRECT", "IDENTITY", revenue_run),
        ("flink://local/orders#customer_id", "INDIRECT", "JOIN", revenue_run),
        ("flink://local/customers#customer_id", "INDIRECT", "JOIN", revenue_run),
        ("flink://local/customers#country", "INDIRECT", "GROUP_BY", revenue_run),
    } <= revenue
    # The refused statement wrote nothing: no edge of its run, none from the column it named.
    assert {edge[3] for edge in revenue} == {revenue_run}
    assert not any("missing_column" in edge[0] for edge in revenue)
    # The same SQL as the flink-sql job gives the same edges.
    totals = await _edges(client, "key_totals", "total")
    assert {(*edge[:3], "sql") for edge in totals} == KEY_TOTALS_EDGES and {e[3] for e in totals} == {set_run}
    assert {
        ("flink://local/orders#amount", "DIRECT", "IDENTITY", set_run),
        ("flink://local/orders#amount", "INDIRECT", "FILTER", set_run),
    } <= await _edges(client, "big_orders", "amount")
    # A Table API pipeline, read as the SQL Flink renders it.
    assert {
        ("flink://local/customers#name", "DIRECT", "IDENTITY", table_run),
        ("flink://local/customers#country", "INDIRECT", "FILTER", table_run),
    } <= await _edges(client, "french_customers", "name")


@pytest.mark.integration
@pytest.mark.single_backend("postgres")
async def test_a_pyflink_job_whose_insert_fails_records_a_failed_run(
    client: httpx.AsyncClient, worker: JobWorker, tmp_path: Path
) -> None:
    await flink_setup(client, tmp_path / "flink-conf", lineage_namespace="flink://local")
    readings = tmp_path / "readings.csv"
    readings.write_text("1\nnot-a-number\n3\n")
    script = tmp_path / "doubling.py"
    script.write_text(FAILING_JOB)
    job = await run_job(
        client,
        worker,
        {
            "name": "pyflink-doubling",
            "user": "alice",
            "command_args": ["-py", str(script), readings.as_uri(), (tmp_path / "doubled").as_uri()],
            "cluster_criteria": [["sched:flink"]],
            "command_criteria": ["type:flink"],
            "timeout": 240,
        },
    )
    assert job["status"] == "FAILED", (job["status_message"], job["stderr"][-3000:])
    children = await _children(client, job)
    assert list(children) == ["execute_sql.doubled"], children
    (run,) = children["execute_sql.doubled"]
    assert run["state"] == "FAIL", run
    assert (await client.get(f"/api/v1/lineage/runs/{job['run_id']}")).json()["state"] == "FAIL"
    records = [json.loads(line)["statement"] for line in (worker.jobs_dir / job["id"] / EVENTS_FILE).open()]
    (failed,) = [r for r in records if r["eventType"] == "FAIL"]
    assert failed["error"] and "\tat " not in failed["error"], failed  # Flink's message, not its stack trace
    # A failed write is no output: the table it named is not in the catalog, and has no column edge.
    r = await client.get("/api/v1/datasets/by-name", params={"namespace": "flink://local", "name": "doubled"})
    assert r.status_code == 404, r.text
