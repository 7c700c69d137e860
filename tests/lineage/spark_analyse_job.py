"""A Spark job that asks Spark SQL's own analyser which columns each query returns: run with spark-submit, not
collected by pytest.

Usage: spark-submit spark_analyse_job.py CASES_JSON ANSWERS_JSON

CASES_JSON holds ``{"tables": {"db.table": "col TYPE, ..."}, "queries": {"label": "SELECT ..."}}``; the tables are
created empty (parquet, in a local warehouse) and each query is analysed, not run. ANSWERS_JSON gets
``{"label": {"columns": [...]} | {"error": "..."}}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pyspark.sql import SparkSession


def main() -> None:
    """Create the tables, then read each query's output columns from its analysed plan."""
    cases_path, answers_path = sys.argv[1:3]
    cases = json.loads(Path(cases_path).read_text())
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("headwater-sql-analyse")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    for table, columns in cases["tables"].items():
        database = table.split(".")[0]
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
        spark.sql(f"CREATE TABLE {table} ({columns}) USING parquet")
    answers: dict[str, dict[str, object]] = {}
    for label, query in cases["queries"].items():
        try:
            answers[label] = {"columns": spark.sql(query).columns}
        except Exception as exc:  # one query's refusal is an answer too
            answers[label] = {"error": str(exc).splitlines()[0][:500]}
    with open(answers_path, "w") as out:
        json.dump(answers, out)
    spark.stop()


if __name__ == "__main__":
    main()
