"""The lineage of a job's run: when a job ends after it ran, its declared inputs and outputs, the tables and
column lineage parsed from a Spark SQL or Flink SQL job's SQL, and what a PySpark or PyFlink job's lineage hook
reported (child runs), are ingested as OpenLineage events of the run whose
id is the job's run id (START, then COMPLETE, FAIL or ABORT as the job succeeded, failed or was killed; a failed
run's events carry its reason in the ``errorMessage`` run facet), in a savepoint of the transaction that records
the job's end. A failed run leaves a trace: its state, its datasets, and the job's declared lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from sqlalchemy.orm import Session

from headwater.db import utcnow
from headwater.errors import HeadwaterError
from headwater.jobs.models import Cluster, Command, Job, JobStatus

__all__ = ["OUTCOMES", "PRODUCER", "Outcome", "record_run_lineage"]

PRODUCER = "https://github.com/headwater/headwater/jobs"
Outcome = Literal["COMPLETE", "FAIL", "ABORT"]
# How a job's end is told to lineage (OpenLineage's event types): a killed job's run was aborted.
OUTCOMES: dict[JobStatus, Outcome] = {
    JobStatus.SUCCEEDED: "COMPLETE",
    JobStatus.FAILED: "FAIL",
    JobStatus.KILLED: "ABORT",
}


def record_run_lineage(
    session: Session, job: Job, *, outcome: Outcome = "COMPLETE", reason: str = "exit code 0"
) -> str | None:
    """Declared datasets, and a SQL job's tables and column lineage, become lineage of the run that ended with
    ``outcome``; problems are noted.

    What it returns replaces the job's status ``reason`` (``reason`` followed by the notes) when there is
    something to say.
    """
    from headwater.jobs.hook_lineage import ingest_hook_events, read_hook_file
    from headwater.jobs.sql_lineage import SQL_FRONT_ENDS, JobSqlError, find_job_sql, sql_job_lineage
    from headwater.jobs.statement_lineage import statement_events
    from headwater.lineage.ingest import ingest_events

    inputs: list[dict[str, str]] = list(job.request.get("inputs") or [])
    outputs: list[dict[str, str]] = list(job.request.get("outputs") or [])
    notes: list[str] = []
    job_facets: dict[str, object] = {}
    cluster = session.get(Cluster, job.cluster_id) if job.cluster_id else None
    command = session.get(Command, job.command_id) if job.command_id else None
    configured = (cluster.config or {}).get("lineage_namespace") if cluster is not None else None
    namespace = configured if isinstance(configured, str) else None
    declared = [(d["namespace"], d["name"]) for d in [*inputs, *outputs]]
    if cluster is not None and command is not None:
        try:
            job_sql = find_job_sql(
                cluster_type=cluster.type,
                command=list(command.executable),
                args=list(job.request.get("command_args") or []),
                work_dir=Path(job.work_dir) if job.work_dir else None,
            )
        except JobSqlError as exc:
            job_sql = None
            notes.append(str(exc))
        if job_sql is not None:
            found = sql_job_lineage(session, job_sql=job_sql, namespace=namespace, declared=declared)
            notes += found.warnings
            known = set(declared)
            inputs += [{"namespace": ns, "name": name} for ns, name in found.inputs if (ns, name) not in known]
            outputs += [{"namespace": ns, "name": name} for ns, name in found.outputs if (ns, name) not in known]
            if found.query:
                job_facets["sql"] = {
                    "_producer": PRODUCER,
                    "_schemaURL": "https://openlineage.io/spec/facets/1-1-0/SQLJobFacet.json",
                    "query": found.query,
                    "dialect": job_sql.dialect,
                }
    hook = read_hook_file(job)  # what a PySpark or PyFlink job's lineage hook reported
    notes += hook.notes
    hook_events = hook.events
    if hook.statements and cluster is not None and cluster.type in SQL_FRONT_ENDS:
        # The PyFlink hook's statements, analysed as the cluster's SQL front-end's would be.
        found_events, found_notes = statement_events(
            session,
            hook.statements,
            job=job,
            dialect=SQL_FRONT_ENDS[cluster.type][1],
            namespace=namespace,
            declared=declared,
            outcome=outcome,
        )
        hook_events, notes = [*hook_events, *found_events], [*notes, *found_notes]
    if not inputs and not outputs and not hook_events and outcome == "COMPLETE":
        return (f"{reason}; " + "; ".join(notes)[:2000]) if notes else None
    now = utcnow()
    started = job.started_at or now
    base: dict[str, object] = {"producer": PRODUCER, "run": {"runId": job.run_uuid}}
    end_run: dict[str, object] = {"runId": job.run_uuid}
    if outcome != "COMPLETE":
        end_run["facets"] = {
            "errorMessage": {
                "_producer": PRODUCER,
                "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json",
                "message": reason[:2000],
                "programmingLanguage": "shell",
            }
        }
    identity: dict[str, object] = {"namespace": "headwater", "name": job.name}
    events = [
        {**base, "job": identity, "eventType": "START", "eventTime": started.isoformat()},
        {
            **base,
            "run": end_run,
            "job": {**identity, "facets": job_facets},
            "eventType": outcome,
            "eventTime": now.isoformat(),
            "inputs": inputs,
            "outputs": outputs,
        },
    ]
    try:
        with session.begin_nested():
            result = ingest_events(session, documents=events)
    except HeadwaterError as exc:
        return f"{reason}; lineage not recorded: {exc.message}"
    notes += result.warnings + ingest_hook_events(session, hook_events)
    if notes:
        return f"{reason}; lineage warnings: " + "; ".join(notes)[:2000]
    return None
