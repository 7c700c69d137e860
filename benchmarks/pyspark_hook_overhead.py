"""What Headwater's PySpark lineage hook costs a Spark job: the same job run by spark-submit (argv and environment
as the Spark engine builds them, ``local[1]``), with the hook and without (cluster config ``pyspark_lineage:
false``), alternating, ``--runs`` times each; prints each run's wall time, the medians and their ratio.

The job writes three tables: two sources of ``--rows`` generated rows, then revenue per country from their join
and aggregate (the scenario of the hook's integration test), so the hook reads three plans. Wall times on a
shared machine vary by more than the hook costs, so the hook's own time per write is also measured in process.

    PYTHONPATH=. .venv/bin/python benchmarks/pyspark_hook_overhead.py --runs 5 --rows 200000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from headwater.jobs.engines import JobContext, SparkEngine
from headwater.jobs.lineage_hook import EVENTS_FILE, HOOK_DIR

JOB = textwrap.dedent(
    """
    import sys
    from pyspark.sql import SparkSession, functions as F

    rows = int(sys.argv[1])
    spark = SparkSession.builder.appName("bench").getOrCreate()
    spark.range(rows).select(
        F.col("id").alias("order_id"), (F.col("id") % 1000).cast("string").alias("customer_id"),
        (F.col("id") % 97 * 1.5).alias("amount"),
    ).write.saveAsTable("orders")
    spark.range(1000).select(
        F.col("id").cast("string").alias("customer_id"), (F.col("id") % 20).cast("string").alias("country")
    ).write.saveAsTable("customers")
    orders, customers = spark.table("orders"), spark.table("customers")
    orders.join(customers, "customer_id").groupBy("country").agg(F.sum("amount").alias("revenue")).write.saveAsTable(
        "revenue_by_country"
    )
    spark.stop()
    """
)


def run_once(script: Path, rows: int, *, hook: bool) -> tuple[float, int]:
    """One spark-submit of the job in a fresh directory: its wall time and the events the hook wrote."""
    config = {
        "master": "local[1]",
        "pyspark_lineage": hook,
        "conf": {"spark.sql.catalogImplementation": "in-memory"},
    }
    context = JobContext(
        job_id="bench",
        job_name="bench",
        run_uuid="2f0d7c9e-4d7a-4a43-9f55-1f2d0c7e9a10",
        args=[str(script), str(rows)],
        command=["spark-submit"],
        cluster_config=config,
    )
    launch = SparkEngine().launch(context)
    with tempfile.TemporaryDirectory(prefix="hw-bench-pyspark-") as work:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(launch.env, HOME=work)
        started = time.monotonic()
        subprocess.run(launch.argv, cwd=work, env=env, check=True, capture_output=True)
        elapsed = time.monotonic() - started
        events = Path(work) / EVENTS_FILE
        count = len(events.read_text().splitlines()) if events.exists() else 0
    return elapsed, count


def hook_seconds_per_write(rows: int, repeats: int = 20) -> list[float]:
    """The hook's own time for the join-and-aggregate write, measured in this process (free of spark-submit's
    noise): reading and walking the plan, naming the tables, appending the events."""
    sys.path.insert(0, str(HOOK_DIR))
    import headwater_pyspark_lineage as hook  # the hook's module, as the driver imports it
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    with tempfile.TemporaryDirectory(prefix="hw-bench-pyspark-inproc-") as work:
        os.environ["HEADWATER_JOB_LINEAGE_FILE"] = str(Path(work) / EVENTS_FILE)
        spark = (
            SparkSession.builder.master("local[1]")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.catalogImplementation", "in-memory")
            .config("spark.sql.warehouse.dir", str(Path(work) / "warehouse"))
            .getOrCreate()
        )
        try:
            spark.range(rows).select(
                (F.col("id") % 1000).cast("string").alias("customer_id"), (F.col("id") % 97 * 1.5).alias("amount")
            ).write.saveAsTable("orders")
            spark.range(1000).select(
                F.col("id").cast("string").alias("customer_id"), (F.col("id") % 20).cast("string").alias("country")
            ).write.saveAsTable("customers")
            seconds = []
            for _ in range(repeats):
                df = spark.table("orders").join(spark.table("customers"), "customer_id").groupBy("country")
                df = df.agg(F.sum("amount").alias("revenue"))
                plan = df._jdf.queryExecution().analyzed()  # the write analyses it anyway: not the hook's cost
                started = time.perf_counter()
                captured = hook._describe(
                    spark, plan, ("spark_catalog", "default.revenue"), df.columns, action="save_as_table"
                )
                hook._emit(captured, hook._now(), error=None)
                seconds.append(time.perf_counter() - started)
        finally:
            spark.stop()
    return seconds


def main() -> None:
    """Run the comparison and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=200_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hw-bench-pyspark-job-") as tmp:
        script = Path(tmp) / "job.py"
        script.write_text(JOB)
        run_once(script, 1000, hook=True)  # warm the page cache (JVM, jars) before timing
        times: dict[bool, list[float]] = {True: [], False: []}
        for index in range(options.runs):
            for hook in (index % 2 == 0, index % 2 != 0):  # alternate which goes first
                elapsed, events = run_once(script, options.rows, hook=hook)
                if hook and events != 6:
                    sys.exit(f"the hook wrote {events} events, not 6 (START and COMPLETE of three writes)")
                times[hook].append(elapsed)
                print(json.dumps({"run": index, "hook": hook, "seconds": round(elapsed, 2), "events": events}))
    with_hook, without = statistics.median(times[True]), statistics.median(times[False])
    print(f"median with hook {with_hook:.2f} s, without {without:.2f} s")
    print(f"ratio {with_hook / without:.3f} (overhead {100 * (with_hook / without - 1):+.1f} % of the job's wall time)")
    per_write = hook_seconds_per_write(options.rows)
    first, rest = per_write[0], statistics.median(per_write[1:])
    print(f"hook per write, in process: first {1000 * first:.0f} ms, then median {1000 * rest:.0f} ms")
    share = (first + 2 * rest) / without
    print(f"three writes' hook time / job without hook: {100 * share:.2f} %")


if __name__ == "__main__":
    main()
