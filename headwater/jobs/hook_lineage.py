"""Lineage a job's own process reported through a lineage hook (:mod:`.lineage_hook`), appended to the job's
directory, read when the job ends and ingested as child runs of the job's run. A line is either an OpenLineage run
event (the PySpark hook's) or a statement record (``{"statement": {...}}``, the PyFlink hook's), which
:mod:`.statement_lineage` turns into run events.

The file is the job's writing, so it is read as untrusted input: never through a symlink, at most
:data:`MAX_BYTES` and :data:`MAX_EVENTS` lines, and each event is pinned to the job (:func:`pin_to_job`): its job
is filed under the job's name (namespace ``headwater``), its ``parent`` run facet names the job's run, and its run
id is mapped into the job's own space (a UUID derived from the job's run id), so no job can write into another's
runs.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from headwater.errors import HeadwaterError
from headwater.jobs.lineage_hook import EVENTS_FILE
from headwater.jobs.models import Job
from headwater.jobs.workspace import NotRegularFile, open_job_file

__all__ = ["MAX_BYTES", "MAX_EVENTS", "HookFile", "ingest_hook_events", "pin_to_job", "read_hook_file"]

MAX_BYTES = 16 * 1024 * 1024
MAX_EVENTS = 2000
_NAMESPACE = "headwater"
_PARENT_URL = "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json"


@dataclass
class HookFile:
    """What a job's hook file holds: run events (pinned to the job), statement records (as written), notes on what
    was left out."""

    events: list[dict[str, Any]] = field(default_factory=list)
    statements: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_hook_file(job: Job) -> HookFile:
    """The run events and statement records in the job directory's hook file, events made children of the job's
    run."""
    found = HookFile()
    if not job.work_dir:
        return found
    path = Path(job.work_dir) / EVENTS_FILE
    try:
        handle = open_job_file(path)
    except FileNotFoundError:
        return found
    except NotRegularFile:
        found.notes.append("lineage hook file is not a regular file: not read")
        return found
    except OSError as exc:
        found.notes.append(f"lineage hook file not read: {exc.strerror or type(exc).__name__}")
        return found
    with handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        data = data[: data.rfind(b"\n", 0, MAX_BYTES) + 1]
        found.notes.append(f"lineage hook file holds more than {MAX_BYTES} bytes: the rest was not read")
    unreadable = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except ValueError:
            unreadable += 1
            continue
        is_event = isinstance(document, dict) and isinstance(document.get("run"), dict)
        is_statement = isinstance(document, dict) and isinstance(document.get("statement"), dict)
        if not is_event and not is_statement:
            unreadable += 1
            continue
        if len(found.events) + len(found.statements) == MAX_EVENTS:
            found.notes.append(f"lineage hook wrote more than {MAX_EVENTS} records: the rest were not read")
            break
        if is_event:
            found.events.append(pin_to_job(document, job))
        else:
            found.statements.append(document["statement"])
    if unreadable:
        found.notes.append(f"{unreadable} line(s) of the lineage hook file are not run events or statement records")
    return found


def pin_to_job(document: dict[str, Any], job: Job) -> dict[str, Any]:
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
