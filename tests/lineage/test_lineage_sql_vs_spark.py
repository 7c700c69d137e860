"""Headwater's SQL lineage checked against Spark SQL's own analyser: for queries a Spark platform runs (joins,
star expansion, LATERAL VIEW generators and their default column names, PIVOT, window Top-N, CTEs), the output
columns Headwater traces are exactly the columns Spark's analysed plan returns, in the same order. Spark runs
for real (pyspark's spark-submit, local[1]); the tables are created empty in both Spark and the catalog."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from spark_submit import spark_submit

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

NS = "hive://metastore.prod:9083"
HERE = Path(__file__).parent
TABLES = {
    "sales.orders": "id BIGINT, customer_id BIGINT, amount DECIMAL(10,2), status STRING, order_year INT",
    "sales.customers": "id BIGINT, country STRING, email STRING",
    "media.titles": "id BIGINT, title STRING, genres ARRAY<STRING>, cast_members ARRAY<STRUCT<name: STRING, role: STRING>>, payload STRING",
}
QUERIES = {
    "join_star": "SELECT o.*, c.country FROM sales.orders o JOIN sales.customers c ON o.customer_id = c.id",
    "aggregate": (
        "SELECT c.country, sum(o.amount) AS revenue, count(*) AS orders FROM sales.orders o "
        "JOIN sales.customers c ON o.customer_id = c.id WHERE o.status = 'PAID' GROUP BY c.country"
    ),
    "explode_alias": "SELECT id, genre FROM media.titles LATERAL VIEW explode(genres) g AS genre",
    "explode_default": "SELECT id, col FROM media.titles LATERAL VIEW explode(genres) g",
    "posexplode_default": "SELECT id, pos, col FROM media.titles LATERAL VIEW posexplode(genres) g",
    "outer_explode_star": "SELECT * FROM media.titles LATERAL VIEW OUTER explode(genres) g AS genre",
    "inline": "SELECT id, name, role FROM media.titles LATERAL VIEW inline(cast_members) c AS name, role",
    "json_tuple": "SELECT id, a, b FROM media.titles LATERAL VIEW json_tuple(payload, 'a', 'b') j AS a, b",
    "pivot": (
        "SELECT * FROM (SELECT customer_id, order_year, amount FROM sales.orders) "
        "PIVOT (sum(amount) FOR order_year IN (2023, 2024))"
    ),
    "top_n": (
        "SELECT id, customer_id, rn FROM (SELECT id, customer_id, row_number() OVER "
        "(PARTITION BY customer_id ORDER BY amount DESC) AS rn FROM sales.orders) WHERE rn <= 3"
    ),
    "cte": (
        "WITH paid AS (SELECT customer_id, amount FROM sales.orders WHERE status = 'PAID') "
        "SELECT customer_id, max(amount) AS biggest FROM paid GROUP BY customer_id"
    ),
    "union": "SELECT id, email AS contact FROM sales.customers UNION ALL SELECT id, title FROM media.titles",
}


@pytest.fixture(scope="module")
def spark_columns(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Spark's answer for every query, asked once (one JVM) for both databases' runs."""
    tmp_path = tmp_path_factory.mktemp("spark-analyse")
    cases, answers = tmp_path / "cases.json", tmp_path / "answers.json"
    cases.write_text(json.dumps({"tables": TABLES, "queries": QUERIES}))
    warehouse = {"spark.sql.warehouse.dir": str(tmp_path / "warehouse")}
    script = HERE / "spark_analyse_job.py"
    command, env = spark_submit(script, str(cases), str(answers), derby_home=tmp_path, conf=warehouse)
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return dict(json.loads(answers.read_text()))


def _fields(ddl: str) -> list[dict[str, str]]:
    fields = []
    depth, current = 0, ""
    for ch in ddl + ",":
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        if ch == "," and depth == 0:
            name, kind = current.strip().split(" ", 1)
            fields.append({"name": name, "type": kind.strip()})
            current = ""
        else:
            current += ch
    return fields


async def test_traced_output_columns_are_the_columns_spark_returns(
    client: httpx.AsyncClient, spark_columns: dict[str, Any]
) -> None:
    spark = spark_columns
    for table, ddl in TABLES.items():
        answer = await client.post("/api/v1/datasets", json={"namespace": NS, "name": table, "fields": _fields(ddl)})
        assert answer.status_code == 201, answer.text
    differ: dict[str, tuple[Any, Any]] = {}
    for label, query in QUERIES.items():
        assert "columns" in spark[label], (label, spark[label])  # the corpus is valid Spark SQL
        answer = await client.post("/api/v1/lineage/sql", json={"sql": query, "dialect": "spark", "namespace": NS})
        assert answer.status_code == 200, (label, answer.text)
        ours = [c["field"] for c in answer.json()["statements"][0]["columns"]]
        if ours != spark[label]["columns"]:
            differ[label] = (ours, spark[label]["columns"])
    assert differ == {}
