"""The PySpark lineage hook: a directory put on a PySpark driver's ``PYTHONPATH`` by the Spark engine.

Its ``sitecustomize`` runs in the driver (the Python process spark-submit starts) and installs
:mod:`headwater_pyspark_lineage`, which reports every DataFrame write as an OpenLineage run with column lineage,
read from the analysed logical plan through py4j. Both modules are standard-library only: they run in the job's
interpreter, where Headwater is not installed. The worker ingests what they write when the job ends
(:mod:`headwater.jobs.hook_lineage`). Design and limits: docs/adr/0007-pyspark-lineage-hook.md.
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
