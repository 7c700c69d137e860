"""The parse stage of lineage ingestion: OpenLineage documents read into a batch of parsed events.

Every document is validated first (one bad event refuses the whole batch, its message naming the event), given
its fingerprint (the sha256 of its canonical JSON: the same event twice is recognised and applied once) and its
row of the raw event log; and the batch notes every job, run and dataset its events name, so that the next
stages read each with one query (:class:`Names`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from headwater.db import utcnow
from headwater.errors import InvalidInput
from headwater.lineage.models import pack_payload
from headwater.lineage.schemas import (
    DatasetEventIn,
    JobEventIn,
    LineageEventIn,
    ParentRunFacet,
    RunEventIn,
    parse_event,
    parse_facet,
)

__all__ = ["LOG_COLUMNS", "MAX_BATCH", "EdgeGroup", "Names", "ParsedBatch", "fingerprint_of", "parse_batch"]

MAX_BATCH = 1000

# (job namespace, job name, output namespace, output name): a pair whose column lineage an event states.
EdgeGroup = tuple[str, str, str, str]


@dataclass
class ParsedBatch:
    """A batch of events, validated: each with its label (``event``, ``events[3]``) and fingerprint, the rows of
    the event log (one per distinct fingerprint), and what the events name."""

    labels: list[str]
    events: list[LineageEventIn]
    fingerprints: list[str]
    log_rows: list[dict[str, Any]]
    names: Names


def parse_batch(documents: Sequence[Any]) -> ParsedBatch:
    """Validate every document as an OpenLineage event (refusing the batch at the first bad one) and read it."""
    if len(documents) > MAX_BATCH:
        raise InvalidInput(
            f"a batch holds at most {MAX_BATCH} events, got {len(documents)}", detail={"field": "events"}
        )
    single = len(documents) == 1
    labels = ["event" if single else f"events[{i}]" for i in range(len(documents))]
    events = [parse_event(doc, label=label) for doc, label in zip(documents, labels, strict=True)]
    fingerprints = [fingerprint_of(document, label) for document, label in zip(documents, labels, strict=True)]
    log_rows = _log_rows(documents, events, fingerprints)
    # What every event names (duplicates included: their jobs and runs exist already, so that costs nothing).
    names = _names(list(zip(labels, events, strict=True)))
    return ParsedBatch(labels, events, fingerprints, log_rows, names)


def fingerprint_of(document: Any, label: str = "event") -> str:
    """sha256 of the canonical JSON of an event (key order does not matter). An event holding a NUL character
    (``\\u0000``) anywhere is refused, naming where: no text or JSON value in PostgreSQL can hold one."""
    canonical = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    if b"\\u0000" in canonical:  # a NUL, or a backslash followed by "u0000" (then nothing is found below)
        where = _nul_in(document, label)
        if where is not None:
            raise InvalidInput(
                f"{where} holds a NUL character (\\u0000), which cannot be stored; remove it",
                detail={"field": where},
            )
    return hashlib.sha256(canonical).hexdigest()


def _nul_in(value: Any, path: str) -> str | None:
    """The path of the first string (or key) under ``value`` that holds a NUL character."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}"
            if "\x00" in str(key):
                return inner
            found = _nul_in(item, inner)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_in(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _log_rows(
    documents: Sequence[Any], events: Sequence[LineageEventIn], fingerprints: Sequence[str]
) -> list[dict[str, Any]]:
    """The event-log rows of a batch, one per distinct fingerprint."""
    now = utcnow()
    rows: dict[str, dict[str, Any]] = {}
    for document, event, fingerprint in zip(documents, events, fingerprints, strict=True):
        if fingerprint in rows:
            continue
        run_uuid = str(event.run.runId) if isinstance(event, RunEventIn) else None
        job = None if isinstance(event, DatasetEventIn) else event.job
        rows[fingerprint] = {
            "fingerprint": fingerprint,
            "kind": {RunEventIn: "run", JobEventIn: "job", DatasetEventIn: "dataset"}[type(event)],
            "event_type": event.eventType if isinstance(event, RunEventIn) else None,
            "event_time": event.eventTime,
            "producer": event.producer,
            "run_uuid": run_uuid,
            "job_namespace": job.namespace if job else None,
            "job_name": job.name if job else None,
            "payload": pack_payload(document),
            "warnings": [],
            "received_at": now,
        }
    return list(rows.values())


LOG_COLUMNS = (
    "fingerprint",
    "kind",
    "event_type",
    "event_time",
    "producer",
    "run_uuid",
    "job_namespace",
    "job_name",
    "payload",
    "warnings",
    "received_at",
)


@dataclass
class Names:
    """What a batch's events name: jobs, runs (with the job to file a new one under), datasets, and the
    (job, output dataset) pairs they state column lineage for."""

    jobs: list[tuple[str, str]] = field(default_factory=list)
    runs: dict[str, tuple[str, str]] = field(default_factory=dict)
    datasets: list[tuple[str, str]] = field(default_factory=list)
    # (job, output dataset) pairs the events state column lineage for; true if stated more than once.
    groups: dict[EdgeGroup, bool] = field(default_factory=dict)


def _names(events: Sequence[tuple[str, LineageEventIn]]) -> Names:
    """What the (labelled) events name."""
    wants = Names()
    for label, event in events:
        wants.datasets.extend(_identities(event))
        if isinstance(event, DatasetEventIn):
            continue
        job_key = (event.job.namespace, event.job.name)
        wants.jobs.append(job_key)
        for output in event.outputs:
            if isinstance(output.facets.get("columnLineage"), dict):
                group = (*job_key, output.namespace, output.name)
                wants.groups[group] = group in wants.groups
        if not isinstance(event, RunEventIn):
            continue
        run_id = str(event.run.runId)
        wants.runs.setdefault(run_id, job_key)
        if event.run.facets.get("parent"):
            facet = parse_facet(ParentRunFacet, event.run.facets["parent"], where=f"{label}.run.facets.parent")
            parent_key = (facet.job.namespace, facet.job.name)
            wants.jobs.append(parent_key)
            if str(facet.run.runId) != run_id:
                wants.runs.setdefault(str(facet.run.runId), parent_key)
    wants.jobs = list(dict.fromkeys(wants.jobs))
    wants.datasets = list(dict.fromkeys(wants.datasets))
    return wants


def _identities(event: LineageEventIn) -> list[tuple[str, str]]:
    """Every dataset identity an event names (read from the raw facets: this is only a prefetch)."""
    datasets = [event.dataset] if isinstance(event, DatasetEventIn) else [*event.inputs, *event.outputs]
    found: list[tuple[str, str]] = []
    for dataset in datasets:
        found.append((dataset.namespace, dataset.name))
        symlinks = dataset.facets.get("symlinks")
        if isinstance(symlinks, dict) and isinstance(symlinks.get("identifiers"), list):
            found.extend(
                (i["namespace"], i["name"])
                for i in symlinks["identifiers"]
                if isinstance(i, dict) and isinstance(i.get("namespace"), str) and isinstance(i.get("name"), str)
            )
        lineage = dataset.facets.get("columnLineage")
        if isinstance(lineage, dict):
            found.extend(_lineage_identities(lineage))
    return list(dict.fromkeys(found))


def _lineage_identities(lineage: dict[str, Any]) -> list[tuple[str, str]]:
    """The datasets a raw columnLineage facet reads from (it names the same few for every column)."""
    named: dict[Any, None] = {}
    sources = lineage.get("dataset")
    if isinstance(sources, list):
        for source in sources:
            if isinstance(source, dict):
                named[source.get("namespace"), source.get("name")] = None
    fields = lineage.get("fields")
    if isinstance(fields, dict):
        for out in fields.values():
            inputs = out.get("inputFields") if isinstance(out, dict) else None
            if isinstance(inputs, list):
                for source in inputs:
                    if isinstance(source, dict):
                        named[source.get("namespace"), source.get("name")] = None
    return [(ns, n) for ns, n in named if isinstance(ns, str) and isinstance(n, str)]
