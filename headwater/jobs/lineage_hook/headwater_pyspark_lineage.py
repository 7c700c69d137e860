"""Headwater's PySpark lineage hook: every DataFrame write of the driver becomes an OpenLineage run (START, then
COMPLETE or FAIL) with its inputs, outputs, schemas and column lineage, the child of the job's run.

What OpenLineage's Spark listener does in the JVM, done from Python: the write methods of ``DataFrameWriter`` and
``DataFrameWriterV2``, and ``SparkSession.sql`` for statements that write, are wrapped; each reads the analysed
logical plan of what it writes (one ``toJSON`` call through py4j, a few more for the tables and paths read) and
follows every output column's expression ids down to the columns of the relations read. Events are appended to
the file ``$HEADWATER_JOB_LINEAGE_FILE`` (one JSON document a line), which the worker ingests when the job ends.

Standard library only, and defensive: nothing here may fail or change the user's job. A problem is reported once
on stderr and the write goes on.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

try:  # in a PySpark driver: this directory is on PYTHONPATH, without the headwater package
    from headwater_hook_support import (  # type: ignore[import-not-found]
        append_records,
        now,
        patch_on_import,
        warn,
    )
    from headwater_pyspark_plan import column_lineage  # type: ignore[import-not-found]
except ImportError:  # imported as part of the headwater package (tools and tests walking it)
    from headwater.jobs.lineage_hook.headwater_hook_support import append_records, now, patch_on_import, warn
    from headwater.jobs.lineage_hook.headwater_pyspark_plan import column_lineage

__all__ = ["install"]

PRODUCER = "https://github.com/headwater/headwater/jobs/pyspark-hook"
_SPEC = "https://openlineage.io/spec"
_FACET_URLS = {
    "parent": f"{_SPEC}/facets/1-1-0/ParentRunFacet.json",
    "schema": f"{_SPEC}/facets/1-1-1/SchemaDatasetFacet.json",
    "columnLineage": f"{_SPEC}/facets/1-2-0/ColumnLineageDatasetFacet.json",
    "symlinks": f"{_SPEC}/facets/1-0-1/SymlinksDatasetFacet.json",
    "errorMessage": f"{_SPEC}/facets/1-0-1/ErrorMessageRunFacet.json",
    "jobType": f"{_SPEC}/facets/2-0-3/JobTypeJobFacet.json",
}
# Spark's write commands, as ``spark.sql`` analyses them, by class simple name.
_SQL_WRITES = {
    "InsertIntoHadoopFsRelationCommand",
    "CreateDataSourceTableAsSelectCommand",
    "InsertIntoHiveTable",
    "CreateHiveTableAsSelectCommand",
    "OptimizedCreateHiveTableAsSelectCommand",
    "AppendData",
    "OverwriteByExpression",
    "OverwritePartitionsDynamic",
    "CreateTableAsSelect",
    "ReplaceTableAsSelect",
}
_WRITER_METHODS = ("save", "saveAsTable", "insertInto", "parquet", "csv", "json", "orc", "text")
_WRITER_V2_METHODS = ("append", "overwrite", "overwritePartitions", "create", "replace", "createOrReplace")

_state = threading.local()
Dataset = tuple[str, str]  # (namespace, name)


# ------------------------------------------------------------------------------------------- installing


def install() -> None:
    """Wrap pyspark's write paths (now if already imported, else when they are)."""
    patch_on_import({"pyspark.sql.readwriter": _patch_writers, "pyspark.sql.session": _patch_session})


def _patch_writers(module: Any) -> None:
    for cls_name, methods in (("DataFrameWriter", _WRITER_METHODS), ("DataFrameWriterV2", _WRITER_V2_METHODS)):
        cls = getattr(module, cls_name, None)
        for method in methods if cls is not None else ():
            original = getattr(cls, method, None)
            if original is not None and not getattr(original, "_headwater", False):
                setattr(cls, method, _wrap_writer(original, method))


def _patch_session(module: Any) -> None:
    cls = getattr(module, "SparkSession", None)
    original = getattr(cls, "sql", None)
    if original is None or getattr(original, "_headwater", False):
        return

    @functools.wraps(original)
    def sql(self: Any, sqlQuery: str, *args: Any, **kwargs: Any) -> Any:
        result = original(self, sqlQuery, *args, **kwargs)
        if not getattr(_state, "active", False):
            started = now()
            try:
                plan = result._jdf.queryExecution().analyzed()
                if plan.getClass().getSimpleName() in _SQL_WRITES:
                    _record_command(self, plan, started)
            except Exception as exc:
                warn("reading a SQL statement's plan", exc)
        return result

    sql._headwater = True  # type: ignore[attr-defined]
    cls.sql = sql  # type: ignore[union-attr]


def _wrap_writer(original: Callable[..., Any], method: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def write(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_state, "active", False):
            return original(self, *args, **kwargs)
        started = now()
        captured = None
        try:
            captured = _capture_write(self, method, args, kwargs)
        except Exception as exc:
            warn(f"reading the plan of {method}", exc)
        _state.active = True
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            _emit(captured, started, error=exc)
            raise
        finally:
            _state.active = False
        _emit(captured, started, error=None)
        return result

    write._headwater = True  # type: ignore[attr-defined]
    return write


# ------------------------------------------------------------------------------------------- a write's plan


def _capture_write(writer: Any, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """What a writer call reads and writes, taken before it runs (so a failed write is still described)."""
    df = writer._df
    spark = df.sparkSession
    output: Dataset | None
    if method in _WRITER_V2_METHODS:
        output = _table_dataset(spark, _parse_name(spark, writer._table))
    elif method in {"saveAsTable", "insertInto"}:
        name = args[0] if args else kwargs.get("name") or kwargs.get("tableName")
        output = _table_dataset(spark, _parse_name(spark, str(name)))
    else:
        path = args[0] if args else kwargs.get("path")  # a save() with its path in options() is not seen
        output = _path_dataset(str(path)) if isinstance(path, str) else None
    if output is None:
        return None
    plan = df._jdf.queryExecution().analyzed()
    names = [f.name for f in df.schema.fields]
    if method == "insertInto":  # by position: the table's own column names
        names = spark.table(str(args[0] if args else kwargs.get("tableName"))).columns[: len(names)]
    return _describe(spark, plan, output, names, action=_snake(method))


def _record_command(spark: Any, command: Any, started: str) -> None:
    """A ``spark.sql`` statement that wrote (it has run already): its target and its query's lineage."""
    kind = command.getClass().getSimpleName()
    output = _command_target(spark, command, kind)
    if output is None:
        return
    try:
        query = command.query()  # a child of most commands, an inner child of the V1 CREATE TABLE ... AS
    except Exception:
        if command.children().size() != 1:
            return
        query = command.children().apply(0)
    captured = _describe(spark, query, output, None, action=_snake(kind))
    _emit(captured, started, error=None)


def _command_target(spark: Any, command: Any, kind: str) -> Dataset | None:
    if kind == "InsertIntoHadoopFsRelationCommand":
        table = command.catalogTable()
        if table.isDefined():
            return _catalog_table(spark, table.get())
        return _path_dataset(command.outputPath().toUri().toString())
    if kind in {"CreateDataSourceTableAsSelectCommand", "CreateHiveTableAsSelectCommand"}:
        return _catalog_table(spark, command.table())
    if kind in {"InsertIntoHiveTable", "OptimizedCreateHiveTableAsSelectCommand"}:
        return _catalog_table(spark, command.table() if kind == "InsertIntoHiveTable" else command.tableDesc())
    if kind in {"CreateTableAsSelect", "ReplaceTableAsSelect"}:
        return _table_dataset(spark, [str(p) for p in command.name().toString().strip("[]").split(", ")])
    return _table_dataset(spark, _parse_name(spark, command.table().name()))


def _describe(spark: Any, plan: Any, output: Dataset, names: list[str] | None, *, action: str) -> dict[str, Any]:
    """The inputs, output schema and column lineage of ``plan`` (the analysed query) written to ``output``."""
    nodes = json.loads(plan.toJSON())
    leaves = plan.collectLeaves()
    datasets: list[Dataset | None] = []
    for index in range(leaves.size()):
        try:
            datasets.append(_leaf_dataset(spark, leaves.apply(index)))
        except Exception as exc:
            warn("naming a relation read", exc)
            datasets.append(None)
    jout = plan.output()
    out_attrs = [(jout.apply(i).exprId().id(), jout.apply(i).name()) for i in range(jout.size())]
    if names is not None and len(names) == len(out_attrs):
        # Python 3.9 jobs have no zip(strict=...): the lengths are checked above.
        out_attrs = [(expr_id, name) for (expr_id, _), name in zip(out_attrs, names)]  # noqa: B905
    lineage = column_lineage(nodes, datasets, out_attrs)
    types = {name: type_ for name, type_ in lineage.pop("_types")}
    inputs = [
        {"namespace": ds[0], "name": ds[1], "facets": {"schema": _facet("schema", fields=fields)}}
        for ds, fields in lineage.pop("_inputs")
    ]
    output_facets: dict[str, Any] = {
        "schema": _facet("schema", fields=[{"name": n, "type": types.get(n)} for _, n in out_attrs]),
        "columnLineage": _facet("columnLineage", fields=lineage["fields"], dataset=lineage["dataset"]),
    }
    return {
        "spark": spark,
        "action": action,
        "inputs": _dedupe(inputs),
        "outputs": [{"namespace": output[0], "name": output[1], "facets": output_facets}],
    }


# ------------------------------------------------------------------------------------------- naming datasets

# An output table's storage location, as a symlinks facet (filled when a table is named).
_LOCATIONS: dict[Dataset, dict[str, Any]] = {}


def _namespace(spark: Any) -> str:
    try:
        return str(spark.conf.get("spark.headwater.lineageNamespace", None) or "spark_catalog")
    except Exception:
        return "spark_catalog"


def _parse_name(spark: Any, name: str) -> list[str]:
    parts = spark._jsparkSession.sessionState().sqlParser().parseMultipartIdentifier(name)
    return [str(parts.apply(i)) for i in range(parts.size())]


def _table_dataset(spark: Any, parts: list[str]) -> Dataset:
    """A catalog table as ``(namespace, db.table)``, OpenLineage's naming of a metastore table."""
    if len(parts) == 3 and parts[0] == "spark_catalog":
        parts = parts[1:]
    if len(parts) == 1:
        parts = [spark.catalog.currentDatabase(), parts[0]]
    return _namespace(spark), ".".join(parts)


def _catalog_table(spark: Any, table: Any) -> Dataset:
    ident = table.identifier()
    database = ident.database().get() if ident.database().isDefined() else spark.catalog.currentDatabase()
    dataset = (_namespace(spark), f"{database}.{ident.table()}")
    try:
        location = _path_dataset(table.location().toString())
        if location is not None:
            _LOCATIONS[dataset] = _facet(
                "symlinks", identifiers=[{"namespace": location[0], "name": location[1], "type": "LOCATION"}]
            )
    except Exception:  # a view or a table without a location
        pass
    return dataset


def _path_dataset(uri: str) -> Dataset | None:
    """A storage path as OpenLineage names it: ``file`` + absolute path, ``s3://bucket`` + key, ..."""
    if not uri:
        return None
    parts = urlsplit(uri)
    if not parts.scheme or len(parts.scheme) == 1:  # a plain path (or a Windows drive letter)
        return "file", os.path.abspath(uri).rstrip("/") or "/"
    path = unquote(parts.path).rstrip("/") or "/"
    if parts.scheme == "file":
        return "file", path
    scheme = "s3" if parts.scheme in {"s3a", "s3n"} else parts.scheme
    if scheme in {"s3", "gs"}:
        return f"{scheme}://{parts.netloc}", path.lstrip("/")
    return f"{scheme}://{parts.netloc}", path


def _leaf_dataset(spark: Any, leaf: Any) -> Dataset | None:
    kind = leaf.getClass().getSimpleName()
    if kind == "LogicalRelation":
        table = leaf.catalogTable()
        if table.isDefined():
            return _catalog_table(spark, table.get())
        paths = leaf.relation().location().rootPaths()
        found = _path_dataset(paths.apply(0).toUri().toString()) if paths.size() else None
        return found
    if kind == "HiveTableRelation":
        return _catalog_table(spark, leaf.tableMeta())
    if kind == "DataSourceV2Relation":
        return _table_dataset(spark, _parse_name(spark, leaf.table().name()))
    return None


# ------------------------------------------------------------------------------------------- events


def _facet(name: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": _FACET_URLS[name], **fields}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _dedupe(datasets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for dataset in datasets:
        seen.setdefault((dataset["namespace"], dataset["name"]), dataset)
    return list(seen.values())


def _emit(captured: dict[str, Any] | None, started: str, *, error: BaseException | None) -> None:
    """Append the write's START and COMPLETE (or FAIL) events to the job's lineage file."""
    if captured is None:
        return
    try:
        spark = captured["spark"]
        conf = spark.conf
        parent_run = conf.get("spark.openlineage.parentRunId", None)
        parent_job = conf.get("spark.openlineage.parentJobName", None) or spark.sparkContext.appName
        parent_namespace = conf.get("spark.openlineage.parentJobNamespace", None) or "headwater"
        output = captured["outputs"][0]["name"]
        job_name = f"{parent_job}.{captured['action']}.{re.sub(r'[^A-Za-z0-9_.]+', '_', output).strip('_')[-120:]}"
        run_facets: dict[str, Any] = {}
        if parent_run:
            run_facets["parent"] = _facet(
                "parent",
                run={"runId": parent_run},
                job={"namespace": parent_namespace, "name": parent_job},
            )
        job = {
            "namespace": parent_namespace,
            "name": job_name,
            "facets": {"jobType": _facet("jobType", processingType="BATCH", integration="SPARK", jobType="SQL_JOB")},
        }
        run_id = str(uuid.uuid4())
        base = {"producer": PRODUCER, "schemaURL": f"{_SPEC}/2-0-2/OpenLineage.json#/definitions/RunEvent"}
        end_facets = dict(run_facets)
        outputs = captured["outputs"]
        if error is not None:
            # A failed write changed nothing: its target keeps its schema and its column lineage.
            outputs = [{"namespace": o["namespace"], "name": o["name"], "facets": {}} for o in outputs]
            end_facets["errorMessage"] = _facet("errorMessage", message=str(error)[:2000], programmingLanguage="python")
        events = [
            {**base, "eventType": "START", "eventTime": started, "run": {"runId": run_id, "facets": run_facets},
             "job": job, "inputs": captured["inputs"], "outputs": outputs},
            {**base, "eventType": "FAIL" if error is not None else "COMPLETE", "eventTime": now(),
             "run": {"runId": run_id, "facets": end_facets}, "job": job,
             "inputs": captured["inputs"], "outputs": outputs},
        ]  # fmt: skip
        for dataset in [*captured["inputs"], *outputs]:
            location = _LOCATIONS.get((dataset["namespace"], dataset["name"]))
            if location is not None:
                dataset["facets"]["symlinks"] = location
        append_records(events)
    except Exception as exc:
        warn("writing lineage events", exc)
