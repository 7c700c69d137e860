"""The lineage hooks: a directory the Spark and Flink engines put on a Python job's ``PYTHONPATH``.

Its ``sitecustomize`` runs in the job's client process and installs the hook of its library:

* in a PySpark driver (the Python process spark-submit starts), :mod:`headwater_pyspark_lineage`, which reports
  every DataFrame write as an OpenLineage run with column lineage, read from the analysed logical plan through py4j
  (docs/adr/0007-pyspark-lineage-hook.md);
* in a PyFlink client (the Python process ``flink run -py`` starts), :mod:`headwater_pyflink_lineage`, which
  records the SQL statements and Table API writes it runs, for the worker to analyse
  (docs/adr/0008-pyflink-lineage-hook.md).

The modules are standard-library only: they run in the job's interpreter, where Headwater is not installed. Both
append to one file in the job's directory, which the worker ingests when the job ends
(:mod:`headwater.jobs.hook_lineage`).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["EVENTS_FILE", "EVENTS_FILE_ENV", "HOOK_DIR", "NAMESPACE_CONF"]

HOOK_DIR = Path(__file__).resolve().parent
# The file, in the job's directory, the hook appends its events to (one JSON document a line).
EVENTS_FILE = ".headwater-lineage.jsonl"
# The environment variable telling the hook where that file is; HEADWATER_JOB_* cannot be overridden by a job.
EVENTS_FILE_ENV = "HEADWATER_JOB_LINEAGE_FILE"
# The Spark conf naming the namespace of catalog tables (the cluster's ``lineage_namespace``).
NAMESPACE_CONF = "spark.headwater.lineageNamespace"
