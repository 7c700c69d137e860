"""Statement records of a lineage hook (the PyFlink hook's: what the job's client ran through the Table API) made
OpenLineage runs, children of the job's run.

Each record set (START with the SQL, then COMPLETE or FAIL) is one execution: an ``execute_sql``, a statement
set, a ``Table.execute_insert``. Its SQL is analysed by :func:`headwater.jobs.sql_lineage.sql_job_lineage`, the
analysis ``flink-sql`` jobs get, so the same SQL gives the same tables and column edges either way (DDL, as
there, is left out). An execution that writes nothing (DDL) is no run. An execution whose end was never recorded
(an INSERT nobody waited for, a client killed) ends as the job ended. A run that did not complete names the
tables it read but records no output and no column edge: its write changed nothing.
Design: docs/adr/0008-pyflink-lineage-hook.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from headwater.jobs.hook_lineage import pin_to_job
from headwater.jobs.models import Job
from headwater.jobs.sql_lineage import MAX_SQL_BYTES, Identity, JobSql, SqlJobLineage, sql_job_lineage

__all__ = ["statement_events"]

PRODUCER = "https://github.com/headwater/headwater/jobs/statement-hook"
_ENDS = {"COMPLETE", "FAIL"}


@dataclass
class _Execution:
    run_id: str
    api: str
    sql: list[str]
    started: str
    state: str | None = None
    ended: str | None = None
    error: str | None = None


def _executions(records: Sequence[dict[str, Any]]) -> list[_Execution]:
    """The executions the records describe, in the order they started; malformed records are skipped."""
    found: dict[str, _Execution] = {}
    for record in records:
        run_id, kind, time = record.get("runId"), record.get("eventType"), record.get("eventTime")
        if not isinstance(run_id, str) or not isinstance(time, str):
            continue
        if kind == "START" and run_id not in found:
            sql = record.get("sql")
            if isinstance(sql, list) and sql and all(isinstance(s, str) for s in sql):
                api = re.sub(r"[^A-Za-z0-9_]+", "_", str(record.get("api") or "statement"))[:40]
                found[run_id] = _Execution(run_id, api, sql, time)
        elif kind in _ENDS and run_id in found and found[run_id].state is None:
            execution = found[run_id]
            execution.state, execution.ended = kind, time
            error = record.get("error")
            execution.error = error[:2000] if isinstance(error, str) else None
    return list(found.values())


def statement_events(
    session: Session,
    records: Sequence[dict[str, Any]],
    *,
    job: Job,
    dialect: str,
    namespace: str | None,
    declared: Sequence[Identity],
    outcome: str,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The run events (pinned to ``job``) of the executions that wrote, and the analysis's warnings."""
    events: list[dict[str, Any]] = []
    notes: list[str] = []
    for execution in _executions(records):
        query = ";\n".join(execution.sql)
        if len(query.encode()) > MAX_SQL_BYTES:
            notes.append(f"{execution.api}: its SQL holds more than {MAX_SQL_BYTES} bytes; not analysed")
            continue
        found = sql_job_lineage(
            session, job_sql=JobSql(query=query, dialect=dialect), namespace=namespace, declared=declared
        )
        notes += [f"{execution.api}: {w}" for w in found.warnings if f"{execution.api}: {w}" not in notes]
        if found.outputs:
            events += [pin_to_job(event, job) for event in _run_events(execution, found, dialect, outcome)]
    return events, notes


def _run_events(execution: _Execution, found: SqlJobLineage, dialect: str, outcome: str) -> list[dict[str, Any]]:
    """START and end events of one execution; the end carries its tables and its SQL (the ``sql`` facet, from which
    ingestion derives the column edges) when it completed."""
    state = execution.state or outcome  # never seen to end: as the job ended
    target = re.sub(r"[^A-Za-z0-9_.]+", "_", found.outputs[0][1]).strip("_")[-120:]
    job = {"namespace": "headwater", "name": f"{execution.api}.{target}"}
    end: dict[str, Any] = {
        "producer": PRODUCER,
        "eventType": state,
        "eventTime": execution.ended or execution.started,
        "run": {"runId": execution.run_id},
        "job": job,
        "inputs": [{"namespace": ns, "name": name} for ns, name in found.inputs],
    }
    if state == "COMPLETE":
        end["outputs"] = [{"namespace": ns, "name": name} for ns, name in found.outputs]
        end["job"] = {**job, "facets": {"sql": _facet("SQLJobFacet", "1-1-0", query=found.query, dialect=dialect)}}
    else:
        written = ", ".join(f"{ns}/{name}" for ns, name in found.outputs)
        message = execution.error or f"the job ended ({outcome}) before the statement was seen to finish"
        end["run"]["facets"] = {
            "errorMessage": _facet(
                "ErrorMessageRunFacet", "1-0-1", message=f"writing {written}: {message}", programmingLanguage="python"
            )
        }
    start = {"producer": PRODUCER, "eventType": "START", "eventTime": execution.started, "job": job}
    return [{**start, "run": {"runId": execution.run_id}}, end]


def _facet(kind: str, version: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": f"https://openlineage.io/spec/facets/{version}/{kind}.json", **fields}
