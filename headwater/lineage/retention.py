"""Retention of lineage's growing tables: the raw event log and runs. The graph (jobs, edges, confirmations) and
its provenance stay: edges keep their times and producer, and a ``last_run_id`` whose run is gone reads as no run
(readers outer-join it). Each function removes one chunk in one statement and flushes; the caller commits, so no
lock is held for longer than a chunk. Settings and figures: docs/operate/storage.md.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, aliased

from headwater.db import in_chunks, trim_oldest
from headwater.lineage.models import LineageEvent, LineageRun

__all__ = ["trim_events", "trim_runs"]


def trim_events(session: Session, *, before: dt.datetime, limit: int) -> int:
    """Remove at most ``limit`` of the oldest raw events received before ``before``; the number removed.

    The log is read from its oldest id through the primary key and stops at the first event received since
    ``before`` (ids follow arrival), so no index on the arrival time is needed.
    """
    # The newest event stays (trim_oldest): the events API's cursors must not see an id twice either.
    removed, _ = trim_oldest(session, LineageEvent.id, LineageEvent.received_at, before=before, limit=limit)
    return removed


def trim_runs(session: Session, *, before: dt.datetime, keep: int, after: int, limit: int) -> tuple[int, int | None]:
    """Remove, among the ``limit`` runs after id ``after``, those whose last event came before ``before`` and that
    are not among their job's ``keep`` latest runs; the number removed, and the id to continue after (None once
    the runs created since ``before`` are reached: nothing further can be old enough).

    A run's last event is when it was last updated (arrival time, so a late event keeps its run). A parent run
    removed leaves its children without a parent (``ON DELETE SET NULL``).
    """
    rows = session.execute(
        select(LineageRun.id, LineageRun.job_id, LineageRun.created_at, LineageRun.updated_at)
        .where(LineageRun.id > after)
        .order_by(LineageRun.id)
        .limit(limit)
    ).all()
    # The newest run stays: SQLite hands out max(id) + 1, and an edge's last_run_id must never name another run.
    newest = session.scalar(select(LineageRun.id).order_by(LineageRun.id.desc()).limit(1))
    candidates: dict[int, list[int]] = {}
    next_after: int | None = rows[-1].id if len(rows) == limit else None
    for row in rows:
        if row.created_at >= before:
            next_after = None
            break
        if row.updated_at < before and row.id != newest:
            candidates.setdefault(row.job_id, []).append(row.id)
    if not candidates:
        return 0, next_after
    doomed: list[int] = []
    newer = aliased(LineageRun)
    for jobs in in_chunks(sorted(candidates)):
        # The id of each job's keep-th latest run: runs below it are not among the latest (index (job_id, id)).
        floors: dict[int, int] = {}
        if keep > 0:
            for job_id in jobs:
                floor = session.scalar(
                    select(newer.id).where(newer.job_id == job_id).order_by(newer.id.desc()).offset(keep - 1).limit(1)
                )
                floors[job_id] = floor if floor is not None else 0
        for job_id in jobs:
            limit_id = floors.get(job_id) if keep > 0 else None
            doomed.extend(i for i in candidates[job_id] if limit_id is None or i < limit_id)
    removed = 0
    for chunk in in_chunks(sorted(doomed)):
        result = session.execute(
            delete(LineageRun).where(LineageRun.id.in_(chunk)), execution_options={"synchronize_session": False}
        )
        removed += int(getattr(result, "rowcount", 0) or 0)
    return removed, next_after
