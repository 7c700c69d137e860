"""OpenLineage ingestion, read top to bottom: each event is appended raw to the event log and applied to the
normalised model (jobs, runs, catalog datasets and fields, dataset- and column-level edges) in the caller's
transaction, as Marquez's ``OpenLineageDao`` does. :func:`ingest` is the whole write, one stage a module (its
lines are marked with the stage numbers):

1. :mod:`.parse`: every document validated (one bad event refuses the batch), fingerprinted, its log row made;
2. :mod:`.snapshot`: the events logged (a duplicate is found by its fingerprint and changes nothing) and, on
   PostgreSQL, everything the batch names read in the same statement, its column-lineage pairs locked;
3. :mod:`.resolve`: jobs, runs and datasets found by identity (namespace and name, symlinks, aliases) or created;
4. :mod:`.plan`: the events applied in memory, in arrival order;
5. :mod:`.confirm`: column edges replayed against their pairs' confirmations, or written blind under the lock;
6. :mod:`.write`: every change as one statement (PostgreSQL), the SQL of which is in :mod:`.statements`.

On PostgreSQL one event costs two statements in the common case: the read (2) and the write (6).

The service never commits; the edge owns the transaction. Yet the write statement is the transaction's last, and
sending the COMMIT with it saves a round trip per event. So the write stage does not run it: :func:`ingest`
returns it with the result as an :class:`~headwater.transactions.Outcome`, and the edge that commits right after
(:func:`~headwater.transactions.run_in_transaction`, as the POST routes do) sends it with the COMMIT; any other
caller, inside a larger transaction, uses :func:`ingest_events`, which runs it in the open transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from headwater.db import utcnow
from headwater.lineage.ingest.parse import MAX_BATCH, parse_batch
from headwater.lineage.ingest.plan import Plan, fresh_runs
from headwater.lineage.ingest.resolve import LINEAGE_SOURCE
from headwater.lineage.ingest.snapshot import Snapshot, log_events, read_snapshot
from headwater.lineage.models import LineageEvent
from headwater.lineage.schemas import LineageEventIn
from headwater.transactions import Outcome

__all__ = ["MAX_BATCH", "IngestResult", "ingest", "ingest_events"]


@dataclass
class IngestResult:
    """What one ingestion call did."""

    received: int = 0
    applied: int = 0
    duplicates: int = 0
    event_ids: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def ingest_events(session: Session, *, documents: Sequence[Any]) -> IngestResult:
    """Log and apply OpenLineage events in the session's transaction, which stays open: flushes, never commits."""
    return ingest(session, documents=documents).finish(session)


def ingest(session: Session, *, documents: Sequence[Any]) -> Outcome[IngestResult]:
    """Log and apply OpenLineage events, all but the last write statement, which is left for the edge to run (see
    the module doc)."""
    batch = parse_batch(documents)  # 1
    result = IngestResult(received=len(batch.events))
    snapshot: Snapshot | None = None
    if session.get_bind().dialect.name == "postgresql":  # 2
        snapshot = read_snapshot(
            session,
            log_rows=batch.log_rows,
            names=batch.names,
            fresh_runs=fresh_runs(batch.events),
            lineage_source=LINEAGE_SOURCE,
            now=utcnow(),
        )
        logged = dict(snapshot.logged)
    else:
        logged = log_events(session, batch.log_rows)
    todo: list[tuple[str, LineageEventIn, int]] = []
    for label, fingerprint, event in zip(batch.labels, batch.fingerprints, batch.events, strict=True):
        row_id = logged.pop(fingerprint, None)
        if row_id is None:  # already in the log, or earlier in this batch
            result.duplicates += 1
            continue
        todo.append((label, event, row_id))
    if not todo:
        return Outcome(result)
    plan = Plan.open(session, batch.names, snapshot)  # 3
    warned: list[dict[str, Any]] = []
    for label, event, row_id in todo:
        warnings = event.time_warnings() + plan.apply(event, label)  # 4
        if warnings:
            warned.append({"id": row_id, "warnings": warnings})
            result.warnings.extend(f"{label}: {w}" for w in warnings)
        result.applied += 1
        result.event_ids.append(row_id)
    writes = plan.close()  # 5
    writes.update(LineageEvent, warned)
    session.flush()
    return Outcome(result, writes.final(session))  # 6
