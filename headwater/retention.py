"""Bounded storage: one retention pass over the tables that grow with every event or change, and the loop that
runs it in the server (``headwater retention run`` runs one pass).

* the raw OpenLineage event log, by arrival time (the graph and its provenance stay);
* runs whose last event is older than the window, except each job's latest;
* the change outbox, once every registered consumer (the search indexers' stored positions) has passed a row and
  it is older than a floor, or whatever the consumers' positions once it is older than a ceiling. A consumer
  behind the trim finds out (``catalog.events.trimmed_through``) and resyncs rather than miss changes.

Each chunk is its own short transaction, so no lock is held for long; a pass removes at most ``pass_rows`` rows of
each table and leaves the rest to the next pass. Why, and the figures: docs/operate/storage.md.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog.events import latest_change_id, trim_changes, trimmed_through
from headwater.db import session_scope, utcnow
from headwater.lineage.retention import trim_events, trim_runs
from headwater.loops import LoopService
from headwater.search.models import SearchIndexState
from headwater.settings import Settings

__all__ = ["RetentionPolicy", "RetentionReport", "RetentionThread", "run_retention"]

log = logging.getLogger("headwater.retention")


def _days(value: float) -> dt.timedelta | None:
    return dt.timedelta(days=value) if value > 0 else None


@dataclass(frozen=True)
class RetentionPolicy:
    """What a pass removes; a window of None keeps that table forever."""

    events: dt.timedelta | None = dt.timedelta(days=30)
    runs: dt.timedelta | None = dt.timedelta(days=30)
    runs_kept_per_job: int = 10
    outbox_floor: dt.timedelta | None = dt.timedelta(days=7)
    outbox_ceiling: dt.timedelta | None = dt.timedelta(days=30)
    chunk_rows: int = 1000
    pass_rows: int = 500_000

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """The policy the HEADWATER_*_RETENTION_* settings describe."""
        floor = _days(settings.outbox_retention_days)
        ceiling = _days(settings.outbox_retention_max_days)
        if floor is not None and ceiling is not None:
            ceiling = max(ceiling, floor)  # never below the floor: the floor is the promise to consumers
        return cls(
            events=_days(settings.lineage_events_retention_days),
            runs=_days(settings.lineage_runs_retention_days),
            runs_kept_per_job=settings.lineage_runs_kept_per_job,
            outbox_floor=floor,
            outbox_ceiling=None if floor is None else ceiling,
            chunk_rows=settings.retention_chunk_rows,
            pass_rows=settings.retention_pass_rows,
        )


@dataclass
class RetentionReport:
    """Rows one pass removed, by table, and the outbox position it trimmed through."""

    events: int = 0
    runs: int = 0
    changes: int = 0
    outbox_through: int = 0
    behind: list[str] = field(default_factory=list)  # consumers the ceiling trimmed past: they will resync


def _consumers(session: Session) -> list[tuple[str, int]]:
    """The outbox's registered consumers and their positions: every search index's indexer."""
    return [
        (name, position) for name, position in session.execute(select(SearchIndexState.name, SearchIndexState.position))
    ]


def run_retention(
    factory: sessionmaker[Session], policy: RetentionPolicy, *, now: dt.datetime | None = None
) -> RetentionReport:
    """One retention pass (``now``: the clock, for tests and the compressed-time benchmark); what it removed."""
    now = now or utcnow()
    report = RetentionReport()
    chunk = policy.chunk_rows
    if policy.events is not None:
        before = now - policy.events
        while report.events < policy.pass_rows:
            with session_scope(factory) as session:
                removed = trim_events(session, before=before, limit=chunk)
            report.events += removed
            if removed < chunk:
                break
    if policy.runs is not None:
        before, after, scanned = now - policy.runs, 0, 0
        while report.runs < policy.pass_rows and scanned < 20 * policy.pass_rows:
            with session_scope(factory) as session:
                removed, next_after = trim_runs(
                    session, before=before, keep=policy.runs_kept_per_job, after=after, limit=chunk
                )
            report.runs += removed
            scanned += chunk
            if next_after is None:
                break
            after = next_after
    if policy.outbox_floor is not None:
        with session_scope(factory) as session:
            consumers = _consumers(session)
            latest = latest_change_id(session)
        # Rows every consumer passed, older than the floor; then, past the ceiling, rows whatever the positions.
        steps = [(min((p for _, p in consumers), default=latest), now - policy.outbox_floor)]
        if policy.outbox_ceiling is not None:
            steps.append((latest, now - policy.outbox_ceiling))
        for through, before in steps:
            while report.changes < policy.pass_rows:
                with session_scope(factory) as session:
                    removed = trim_changes(session, through=through, before=before, limit=chunk)
                report.changes += removed
                if removed < chunk:
                    break
        with session_scope(factory) as session:
            report.outbox_through = trimmed_through(session)
        report.behind = [name for name, position in consumers if position < report.outbox_through]
        if report.behind:
            log.warning(
                "change events up to %d were older than the outbox's retention ceiling and are removed; consumer(s) "
                "%s will resync from the catalog",
                report.outbox_through,
                ", ".join(report.behind),
            )
    return report


class RetentionThread(LoopService[RetentionReport]):
    """Runs a retention pass every ``interval`` seconds in the server."""

    log = log

    def __init__(self, factory: sessionmaker[Session], policy: RetentionPolicy, *, interval: float) -> None:
        super().__init__(name="headwater-retention", interval=interval, max_backoff=3600.0)
        self.factory, self.policy = factory, policy

    def run_once(self) -> RetentionReport:
        """One pass; logs what it removed."""
        report = run_retention(self.factory, self.policy)
        if report.events or report.runs or report.changes:
            log.info(
                "retention removed %d raw event(s), %d run(s), %d change event(s)",
                report.events,
                report.runs,
                report.changes,
            )
        return report
