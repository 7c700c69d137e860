"""The sync engine: reads a source through its connector and brings the catalog in line with it.

Safety rules, in the order the engine applies them:

- One sync per source at a time, across processes: a run first claims the source's row in
  ``sync_leases`` with a conditional UPDATE (free, or expired by the database's clock: :mod:`headwater.leases`),
  renews it with every batch and frees it at the end. A crashed run's lease expires and its run is marked
  failed by the next one.
- Work is committed page by page (one transaction per listing page), so a huge source never holds one
  giant transaction; a dataset that cannot be read or applied is counted as failed inside its own
  savepoint and the rest of its page is kept.
- Deletion happens only after a *complete* listing: every dataset the listing returned is stamped
  with the run's id, and only then are the source's live datasets without that stamp soft-deleted,
  each with a ``deleted`` change event. A failed or partial listing deletes nothing, marks the source
  unhealthy with the error and leaves the last known metadata served.
- Schema changes and user metadata are handled by :func:`~headwater.catalog.service.apply_snapshot`:
  a changed schema adds a version with its diff and a change event; what people wrote is never touched.
  A listed dataset a manual source holds (lineage filed it first, or a person registered it) is adopted;
  one another federated source holds is counted as failed, a conflict for a person to look at.
- Secrets are decrypted and resolved (references checked against the server's allowlists again) only when
  the run starts reading; every message the run stores or logs first goes through a
  :class:`~headwater.secrets.Scrubber` of the values it resolved.

This module is the run (its lease, start, deletion and report); reading and writing one page is
:mod:`~headwater.catalog.sync_pages`, the periodic sync :mod:`~headwater.catalog.sync_scheduler`. It is an
edge, like a route or a CLI command: it opens and commits its own transactions, so it takes a session
*factory*, not a session.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import traceback
from collections.abc import Callable
from typing import TypedDict, Unpack

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog.connectors import has_connector, open_connector, validate_config
from headwater.catalog.models import Dataset, Source, SourceKind, SourceStatus
from headwater.catalog.service import mark_deleted
from headwater.catalog.sources import get_source
from headwater.catalog.sync_models import DatasetSyncState, SyncLease, SyncMode, SyncRun, SyncStatus, SyncTrigger
from headwater.catalog.sync_pages import (
    LEASE,
    LeaseLost,
    SyncHandle,
    add_error,
    collector_spares_old_objects,
    read_ahead,
    renew_lease,
    write_page,
)
from headwater.db import session_scope, utcnow
from headwater.egress import EgressPolicy
from headwater.errors import Conflict, HeadwaterError, NotFound
from headwater.leases import new_holder
from headwater.pagination import PageResult, SortKey, paginate
from headwater.secrets import Scrubber, SecretVault

__all__ = [
    "SyncHandle",
    "SyncInProgress",
    "SyncOptions",
    "due_sources",
    "execute_sync",
    "get_sync_run",
    "list_sync_runs",
    "purge_source_datasets",
    "run_sync",
    "start_sync",
]

log = logging.getLogger("headwater.sync")

DELETE_BATCH = 500
DEFAULT_LEASE_SECONDS = 300
RUN_SORTS = {"id": SortKey(SyncRun.id, SyncRun.id, kind="int")}

Progress = Callable[[SyncRun], None]


class SyncInProgress(Conflict):
    """Another sync of the same source holds its lease."""


class SyncOptions(TypedDict, total=False):
    """How :func:`run_sync` starts its run: the keyword arguments of :func:`start_sync` after ``source_name``."""

    mode: SyncMode
    trigger: SyncTrigger
    lease_seconds: int
    vault: SecretVault | None
    egress: EgressPolicy | None


def _claim_lease(session: Session, *, source_id: int, holder: str, seconds: int) -> bool:
    if session.get(SyncLease, source_id) is None:
        try:
            with session.begin_nested():
                session.add(SyncLease(source_id=source_id))
        except IntegrityError:  # another process created the row first; the conditional UPDATE decides
            pass
    return LEASE.acquire(session, SyncLease.source_id == source_id, holder=holder, seconds=seconds)


def start_sync(
    factory: sessionmaker[Session],
    *,
    source_name: str,
    mode: SyncMode = SyncMode.INCREMENTAL,
    trigger: SyncTrigger = SyncTrigger.API,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    vault: SecretVault | None = None,
    egress: EgressPolicy | None = None,
) -> SyncHandle:
    """Claim the source's lease and record a running SyncRun; raises SyncInProgress if one runs already.

    ``vault`` decrypts and resolves the source's secrets (a source that has some fails to sync without one);
    ``egress`` is the policy its connections obey (default: the process's settings).
    """
    holder = new_holder()
    with session_scope(factory) as session:
        source = get_source(session, name=source_name)
        if source.kind == SourceKind.MANUAL.value or not has_connector(source.kind):
            raise Conflict(
                f"source {source_name!r} is a {source.kind} source, which has no connector to sync it",
                detail={"field": "name"},
            )
        validate_config(source.kind, source.config)
        if not _claim_lease(session, source_id=source.id, holder=holder, seconds=lease_seconds):
            lease = session.get(SyncLease, source.id)
            running = lease.run_id if lease else None
            raise SyncInProgress(
                f"a sync of source {source_name!r} is already running (run {running}); wait for it to finish",
                detail={"field": "name", "run_id": running},
            )
        # Runs left "running" by a process that died: their lease expired, so they can never finish.
        for stale in session.scalars(
            select(SyncRun).where(SyncRun.source_id == source.id, SyncRun.status == SyncStatus.RUNNING.value)
        ):
            stale.status = SyncStatus.FAILED.value
            stale.message = "abandoned: the process running it stopped before finishing (its lease expired)"
            stale.finished_at = utcnow()
        run = SyncRun(source_id=source.id, mode=mode.value, trigger=trigger.value, status=SyncStatus.RUNNING.value)
        run.errors = []
        session.add(run)
        session.flush()
        session.execute(
            update(SyncLease)
            .where(SyncLease.source_id == source.id)
            .values(run_id=run.id)
            .execution_options(synchronize_session=False)
        )
        handle = SyncHandle(
            run=run,
            source_id=source.id,
            source_name=source.name,
            kind=source.kind,
            namespace=source.namespace,
            config=dict(source.config or {}),
            secrets=dict(source.secrets or {}),
            holder=holder,
            lease_seconds=lease_seconds,
            full=mode == SyncMode.FULL,
            vault=vault or SecretVault(),
            scrub=Scrubber(),
            egress=egress,
        )
    return handle


# ------------------------------------------------------------------------------------- deletion


def _delete_missing(factory: sessionmaker[Session], handle: SyncHandle) -> None:
    """Soft-delete the source's live datasets the complete listing did not return, in batches."""
    reason = f"no longer in source {handle.source_name!r} (sync run {handle.run.id})"
    while True:
        with session_scope(factory) as session:
            renew_lease(session, handle)
            missing = list(
                session.scalars(
                    select(Dataset)
                    .outerjoin(DatasetSyncState, DatasetSyncState.dataset_id == Dataset.id)
                    .where(
                        Dataset.source_id == handle.source_id,
                        Dataset.deleted_at.is_(None),
                        or_(
                            DatasetSyncState.last_seen_run_id.is_(None),
                            DatasetSyncState.last_seen_run_id != handle.run.id,
                        ),
                    )
                    .order_by(Dataset.id)
                    .limit(DELETE_BATCH)
                    .with_for_update(of=Dataset)
                )
            )
            mark_deleted(
                session,
                missing,
                reason=reason,
                payload={"by": "sync", "source": handle.source_name, "run": handle.run.id},
            )
            handle.run.deleted += len(missing)
        if len(missing) < DELETE_BATCH:
            return


# -------------------------------------------------------------------------------------- the run


def _finish(
    factory: sessionmaker[Session], handle: SyncHandle, *, listing_error: str | None, started: float
) -> SyncRun:
    run = handle.run
    listing_error = None if listing_error is None else handle.scrub(listing_error)
    run.finished_at = utcnow()
    run.duration_seconds = round(time.perf_counter() - started, 3)
    if listing_error is not None or not run.complete:
        run.status = SyncStatus.FAILED.value
        run.message = (
            f"the sync did not complete, so nothing was deleted: {listing_error}"
            if listing_error
            else "the sync did not complete, so nothing was deleted"
        )
    elif run.failed:
        run.status = SyncStatus.PARTIAL.value
        run.message = f"{run.failed} dataset(s) could not be read; they keep their last known metadata"
    else:
        run.status = SyncStatus.SUCCEEDED.value
        run.message = None
    with session_scope(factory) as session:
        merged = session.merge(run)
        source = session.get(Source, handle.source_id)
        if source is not None:
            source.last_sync_at = run.finished_at
            if run.status == SyncStatus.FAILED.value:
                source.status = SourceStatus.UNHEALTHY.value
                source.status_message = run.message
            else:
                source.status = SourceStatus.HEALTHY.value
                source.status_message = run.message
            LEASE.release(session, SyncLease.source_id == handle.source_id, holder=handle.holder, run_id=None)
        session.flush()
        result = merged
    return result


def execute_sync(factory: sessionmaker[Session], handle: SyncHandle, *, progress: Progress | None = None) -> SyncRun:
    """Run a started sync to its end and store its report; never raises for a source's failure."""
    started = time.perf_counter()
    run = handle.run
    listing_error: str | None = None
    try:
        resolved = handle.vault.resolve(handle.secrets, source=handle.source_name)
        handle.scrub = Scrubber(resolved.values())
        with open_connector(kind=handle.kind, source_name=handle.source_name, namespace=handle.namespace,
                            config=handle.config, secrets=resolved, egress=handle.egress) as connector:  # fmt: skip
            connector.check()
            unlisted: list[str] = []
            with collector_spares_old_objects():
                for page in read_ahead(factory, connector, handle, unlisted):
                    write_page(factory, handle, page)
                    if progress is not None:
                        progress(run)
            for part in unlisted:
                add_error(handle, None, f"not listed: {part}")
            run.complete = not unlisted
            if unlisted:
                listing_error = f"{len(unlisted)} part(s) of the source could not be listed: {unlisted[0]}"
        if run.complete:
            _delete_missing(factory, handle)
    except HeadwaterError as exc:
        listing_error = exc.message
        run.complete = False
        add_error(handle, None, exc.message)
    except LeaseLost as exc:
        listing_error = str(exc)
        run.complete = False
        add_error(handle, None, str(exc))
    except Exception as exc:  # a bug or an unexpected library error: report it, never leave the run "running"
        # Logged through the scrubber: a library's exception may quote what it was given, credentials included.
        log.error("sync of source %r failed: %s", handle.source_name, handle.scrub(traceback.format_exc()))
        listing_error = f"{type(exc).__name__}: {exc}"
        run.complete = False
        add_error(handle, None, listing_error)
    result = _finish(factory, handle, listing_error=listing_error, started=started)
    if progress is not None:
        progress(result)
    return result


def run_sync(
    factory: sessionmaker[Session],
    *,
    source_name: str,
    progress: Progress | None = None,
    **options: Unpack[SyncOptions],
) -> SyncRun:
    """Sync one source now and return its report; raises SyncInProgress when another sync holds it.

    ``options`` are :func:`start_sync`'s (mode, trigger, lease_seconds, vault, egress)."""
    handle = start_sync(factory, source_name=source_name, **options)
    return execute_sync(factory, handle, progress=progress)


# ------------------------------------------------------------------------------------ reading


def list_sync_runs(session: Session, *, source_name: str, cursor: str | None, limit: int) -> PageResult[SyncRun]:
    """A source's sync reports, newest first."""
    source = get_source(session, name=source_name)
    stmt = select(SyncRun).where(SyncRun.source_id == source.id)
    return paginate(session, stmt, sorts=RUN_SORTS, sort="-id", cursor=cursor, limit=limit)


def get_sync_run(session: Session, *, source_name: str, run_id: int) -> SyncRun:
    """One sync report of a source."""
    source = get_source(session, name=source_name)
    run = session.scalar(select(SyncRun).where(SyncRun.id == run_id, SyncRun.source_id == source.id))
    if run is None:
        raise NotFound(f"source {source_name!r} has no sync run {run_id}", detail={"field": "run_id"})
    return run


def due_sources(session: Session, *, now: dt.datetime | None = None, limit: int = 500) -> list[str]:
    """Names of sources whose sync interval has passed since their last sync (periodic sync)."""
    now = now or utcnow()
    candidates = session.scalars(
        select(Source).where(Source.kind != SourceKind.MANUAL.value).order_by(Source.id).limit(limit)
    )
    due: list[str] = []
    for source in candidates:
        interval = (source.config or {}).get("sync_interval_seconds")
        if not isinstance(interval, int) or interval <= 0 or not has_connector(source.kind):
            continue
        if source.last_sync_at is None or source.last_sync_at + dt.timedelta(seconds=interval) <= now:
            due.append(source.name)
    return due


def purge_source_datasets(session: Session, *, source_name: str, reason: str) -> int:
    """Soft-delete every live dataset of a source (before removing it); how many were deleted."""
    source = get_source(session, name=source_name)
    datasets = list(
        session.scalars(
            select(Dataset).where(Dataset.source_id == source.id, Dataset.deleted_at.is_(None)).with_for_update()
        )
    )
    mark_deleted(session, datasets, reason=reason, payload={"by": "user", "source": source_name})
    return len(datasets)
