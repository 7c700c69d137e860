"""Lineage a job's own process reported: the OpenLineage events the PySpark hook (:mod:`.lineage_hook`) appended to
the job's directory, read when the job ends and ingested as child runs of the job's run.

The file is the job's writing, so it is read as untrusted input: never through a symlink, at most
:data:`MAX_BYTES` and :data:`MAX_EVENTS`, and each event is pinned to the job: its job is filed under the job's
name (namespace ``headwater``), its ``parent`` run facet names the job's run, and its run id is mapped into the
job's own space (a UUID derived from the job's run id), so no job can write into another's runs.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from headwater.errors import HeadwaterError
from headwater.jobs.models import Job
from headwater.jobs.lineage_hook import EVENTS_FILE
from headwater.jobs.workspace import NotRegularFile, open_job_file

__all__ = ["MAX_BYTES", "MAX_EVENTS", "ingest_hook_events", "read_hook_events"]

MAX_BYTES = 16 * 1024 * 1024
MAX_EVENTS = 2000
_NAMESPACE = "headwater"
_PARENT_URL = "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json"


def read_hook_events(job: Job) -> tuple[list[dict[str, Any]], list[str]]:
    """The events in the job directory's hook file, each made a child of the job's run; and notes on what was
    left out."""
    if not job.work_dir:
        return [], []
    path = Path(job.work_dir) / EVENTS_FILE
    try:
        handle = open_job_file(path)
    except FileNotFoundError:
        return [], []
    except NotRegularFile:
        return [], ["lineage hook file is not a regular file: not read"]
    except OSError as exc:
        return [], [f"lineage hook file not read: {exc.strerror or type(exc).__name__}"]
    with handle:
        data = handle.read(MAX_BYTES + 1)
    notes: list[str] = []
    if len(data) > MAX_BYTES:
        data = data[: data.rfind(b"\n", 0, MAX_BYTES) + 1]
        notes.append(f"lineage hook file holds more than {MAX_BYTES} bytes: the rest was not read")
    events: list[dict[str, Any]] = []
    unreadable = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except ValueError:
            unreadable += 1
            continue
        if not isinstance(document, dict) or not isinstance(document.get("run"), dict):
            unreadable += 1
            continue
        if len(events) == MAX_EVENTS:
            notes.append(f"lineage hook wrote more than {MAX_EVENTS} events: the rest were not read")
            break
        events.append(_child_of(document, job))
    if unreadable:
        notes.append(f"{unreadable} line(s) of the lineage hook file are not OpenLineage run events")
    return events, notes


def _child_of(document: dict[str, Any], job: Job) -> dict[str, Any]:
    """``document`` pinned to ``job``: its job under the job's name, its run a child of the job's run."""
    run = dict(document["run"])
    own = uuid.UUID(job.run_uuid)
    run["runId"] = str(uuid.uuid5(own, str(run.get("runId"))))
    facets = dict(run.get("facets") or {}) if isinstance(run.get("facets"), dict) else {}
    facets["parent"] = {
        "_producer": document.get("producer") or "headwater",
        "_schemaURL": _PARENT_URL,
        "run": {"runId": job.run_uuid},
        "job": {"namespace": _NAMESPACE, "name": job.name},
    }
    run["facets"] = facets
    reported: dict[str, Any] = document["job"] if isinstance(document.get("job"), dict) else {}
    name = str(reported.get("name") or "write")
    if not name.startswith(f"{job.name}."):
        name = f"{job.name}.{name}"
    return {**document, "run": run, "job": {**reported, "namespace": _NAMESPACE, "name": name}}


def ingest_hook_events(session: Session, events: list[dict[str, Any]]) -> list[str]:
    """Ingest the hook's events in a savepoint of their own (a bad file never undoes the job's own lineage);
    the warnings."""
    from headwater.lineage.ingest import ingest_events

    if not events:
        return []
    try:
        with session.begin_nested():
            result = ingest_events(session, documents=events)
    except HeadwaterError as exc:
        return [f"lineage hook events not recorded: {exc.message}"]
    return list(result.warnings)
