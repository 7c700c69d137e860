"""A realistic OpenLineage stream for the ingestion benchmarks: what Spark and Airflow integrations send.

Every run is a START and a COMPLETE with the same run id, and runs of one job repeat (a pool of scheduled jobs,
each run many times, so most runs confirm lineage already known and a few change it). Runs overlap: a few are open
at once, so their STARTs and COMPLETEs interleave as they do on a busy platform.

- **Spark** (``openlineage-spark`` 1.x): job ``spark_app.execute_insert_into_hadoop_fs_relation_command.db_tN``
  in namespace ``spark``, a parent facet naming the Airflow task that launched it, ``spark_version`` and
  ``processing_engine`` run facets, a ``jobType`` facet; one to three inputs and one output as files under
  ``s3://warehouse`` with a ``symlinks`` facet naming the Hive table, ``schema`` and ``dataSource`` facets; the
  output's ``columnLineage`` on START and COMPLETE both (as the integration sends it), ``outputStatistics`` on
  COMPLETE.
- **Airflow** (``apache-airflow-providers-openlineage``, a SQL operator): job ``dag.task`` in namespace
  ``airflow``, ``airflow``/``nominalTime``/``processing_engine`` run facets, ``jobType``, ``ownership`` and ``sql``
  job facets; PostgreSQL tables in and out with ``schema`` and ``dataSource``; the output's ``columnLineage`` (from
  the provider's SQL parser) on START and COMPLETE both, so the ``sql`` facet is kept, not parsed again here.

Tables have 8-40 columns; each output column reads one or two input columns. One run in ten of a job changes one
output column's sources (a job being edited); the rest state their job's lineage unchanged.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["stream"]

SPARK = "https://github.com/OpenLineage/OpenLineage/tree/1.30.0/integration/spark"
AIRFLOW = "https://github.com/apache/airflow/tree/providers-openlineage/2.1.0"
SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
HIVE = "hive://metastore.data.svc:9083"
POSTGRES = "postgres://warehouse-db.data.svc:5432"
TYPES = ("string", "bigint", "int", "double", "timestamp", "date", "boolean", "decimal(18,2)")


def _facet(producer: str, name: str, version: str = "1-0-1") -> dict[str, str]:
    return {"_producer": producer, "_schemaURL": f"https://openlineage.io/spec/facets/{version}/{name}.json"}


@dataclass
class _Table:
    namespace: str
    name: str
    columns: list[tuple[str, str]]
    symlink: tuple[str, str] | None = None  # (namespace, name) of the Hive table a file dataset is


@dataclass
class _Job:
    kind: str  # "spark" or "airflow"
    namespace: str
    name: str
    inputs: list[_Table]
    output: _Table
    sources: dict[str, list[tuple[int, str]]]  # output column -> [(input index, input column)]
    parent: tuple[str, str] | None = None  # (namespace, name) of the Airflow task launching a Spark job


def _tables(rng: random.Random, count: int) -> list[_Table]:
    tables = []
    for i in range(count):
        columns = [(f"col_{k}", rng.choice(TYPES)) for k in range(rng.randrange(8, 41))]
        if i % 3:
            name = f"warehouse/db_{i % 12}/t_{i}"
            tables.append(_Table("s3://warehouse", name, columns, symlink=(HIVE, f"db_{i % 12}.t_{i}")))
        else:
            tables.append(_Table(POSTGRES, f"analytics.public.t_{i}", columns))
    return tables


def _jobs(rng: random.Random, tables: list[_Table], count: int) -> list[_Job]:
    jobs = []
    for j in range(count):
        spark = j % 3 != 2
        pool = [t for t in tables if (t.symlink is not None) == spark] or tables
        inputs = rng.sample(pool, rng.randrange(1, 4) if spark else 1)
        output = pool[(j * 7 + 3) % len(pool)]
        while output in inputs:
            output = rng.choice(pool)
        sources = {
            column: [
                (k, inputs[k].columns[rng.randrange(len(inputs[k].columns))][0])
                for k in rng.sample(range(len(inputs)), min(len(inputs), rng.randrange(1, 3)))
            ]
            for column, _ in output.columns
        }
        dag, task = f"dag_{j // 4}", f"task_{j}"
        if spark:
            name = f"spark_app_{j}.execute_insert_into_hadoop_fs_relation_command.{output.name.rsplit('/', 1)[-1]}"
            jobs.append(_Job("spark", "spark", name, inputs, output, sources, parent=("airflow", f"{dag}.{task}")))
        else:
            jobs.append(_Job("airflow", "airflow", f"{dag}.{task}", inputs, output, sources))
    return jobs


def _dataset(table: _Table, producer: str, *, lineage: dict[str, Any] | None = None, stats: bool = False) -> Any:
    facets: dict[str, Any] = {
        "dataSource": {**_facet(producer, "DatasourceDatasetFacet"), "name": table.namespace, "uri": table.namespace},
        "schema": {
            **_facet(producer, "SchemaDatasetFacet", "1-1-1"),
            "fields": [{"name": name, "type": kind} for name, kind in table.columns],
        },
    }
    if table.symlink is not None:
        identifier = {"namespace": table.symlink[0], "name": table.symlink[1], "type": "TABLE"}
        facets["symlinks"] = {**_facet(producer, "SymlinksDatasetFacet"), "identifiers": [identifier]}
    if lineage is not None:
        facets["columnLineage"] = lineage
    document: dict[str, Any] = {"namespace": table.namespace, "name": table.name, "facets": facets}
    if stats:
        document["outputFacets"] = {
            "outputStatistics": {
                **_facet(producer, "OutputStatisticsOutputDatasetFacet", "1-0-2"),
                "rowCount": random.randrange(1, 10**7),
                "size": random.randrange(1, 10**10),
            }
        }
    return document


def _lineage(job: _Job, producer: str) -> dict[str, Any]:
    return {
        **_facet(producer, "ColumnLineageDatasetFacet", "1-2-0"),
        "fields": {
            column: {
                "inputFields": [
                    {
                        "namespace": job.inputs[k].namespace,
                        "name": job.inputs[k].name,
                        "field": source,
                        "transformations": [
                            {"type": "DIRECT", "subtype": "IDENTITY", "description": "", "masking": False}
                        ],
                    }
                    for k, source in sources
                ]
            }
            for column, sources in job.sources.items()
        },
    }


def _event(job: _Job, run_id: str, event_type: str, at: dt.datetime) -> dict[str, Any]:
    producer = SPARK if job.kind == "spark" else AIRFLOW
    final = event_type == "COMPLETE"
    run_facets: dict[str, Any] = {
        "processing_engine": {
            **_facet(producer, "ProcessingEngineRunFacet", "1-1-1"),
            "version": "3.5.1" if job.kind == "spark" else "2.10.4",
            "name": "spark" if job.kind == "spark" else "Airflow",
            "openlineageAdapterVersion": "1.30.0",
        }
    }
    job_facets: dict[str, Any] = {
        "jobType": {
            **_facet(producer, "JobTypeJobFacet", "2-0-3"),
            "processingType": "BATCH",
            "integration": job.kind.upper(),
            "jobType": "SQL_JOB" if job.kind == "spark" else "TASK",
        }
    }
    if job.parent is not None:
        parent_run = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{job.parent[1]}/{at.date()}"))
        run_facets["parent"] = {
            **_facet(producer, "ParentRunFacet"),
            "run": {"runId": parent_run},
            "job": {"namespace": job.parent[0], "name": job.parent[1]},
        }
        run_facets["spark_version"] = {**_facet(producer, "SparkVersionFacet"), "spark-version": "3.5.1"}
    else:
        dag, task = job.name.split(".", 1)
        run_facets["airflow"] = {
            **_facet(producer, "AirflowRunFacet"),
            "dag": {"dag_id": dag, "schedule_interval": "@hourly", "owner": "data-eng"},
            "dagRun": {"dag_id": dag, "run_id": f"scheduled__{at.isoformat()}", "run_type": "scheduled"},
            "task": {"task_id": task, "operator_class": "SQLExecuteQueryOperator", "retries": 2},
            "taskInstance": {"try_number": 1, "pool": "default_pool", "queued_dttm": at.isoformat()},
            "taskUuid": run_id,
        }
        run_facets["nominalTime"] = {**_facet(producer, "NominalTimeRunFacet"), "nominalStartTime": at.isoformat()}
        job_facets["ownership"] = {**_facet(producer, "OwnershipJobFacet"), "owners": [{"name": "data-eng"}]}
        columns = ", ".join(f"{source}" for sources in job.sources.values() for _, source in sources[:1])
        job_facets["sql"] = {
            **_facet(producer, "SQLJobFacet"),
            "query": f"INSERT INTO {job.output.name} SELECT {columns} FROM {job.inputs[0].name}",
        }
    return {
        "eventType": event_type,
        "eventTime": at.isoformat(),
        "producer": producer,
        "schemaURL": SPEC,
        "run": {"runId": run_id, "facets": run_facets},
        "job": {"namespace": job.namespace, "name": job.name, "facets": job_facets},
        "inputs": [_dataset(t, producer) for t in job.inputs],
        "outputs": [_dataset(job.output, producer, lineage=_lineage(job, producer), stats=final)],
    }


def stream(count: int, seed: int = 7, *, tables: int = 300, jobs: int = 150, open_runs: int = 4) -> list[Any]:
    """``count`` events (``count // 2`` runs of a START and a COMPLETE), runs of ``jobs`` jobs over ``tables``
    tables, with up to ``open_runs`` runs open at once."""
    rng = random.Random(seed)
    random.seed(seed)  # the output statistics
    pool = _jobs(rng, _tables(rng, tables), jobs)
    at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    events: list[Any] = []
    running: list[tuple[_Job, str]] = []
    while len(events) < count:
        at += dt.timedelta(seconds=1)
        if running and (len(running) >= open_runs or rng.random() < 0.5):
            job, run_id = running.pop(rng.randrange(len(running)))
            if rng.random() < 0.1:  # the job was edited: one output column reads another input column
                column = rng.choice(list(job.sources))
                k = rng.randrange(len(job.inputs))
                job.sources[column] = [(k, rng.choice(job.inputs[k].columns)[0])]
            events.append(_event(job, run_id, "COMPLETE", at))
        else:
            job = rng.choice(pool)
            run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            running.append((job, run_id))
            events.append(_event(job, run_id, "START", at))
    return events
