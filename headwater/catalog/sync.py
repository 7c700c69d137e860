"""The sync engine: reads a source through its connector and brings the catalog in line with it.

Safety rules, in the order the engine applies them:

- One sync per source at a time, across processes: a run first claims the source's row in
  ``sync_leases`` with a conditional UPDATE (free, or expired), renews it with every batch and frees it
  at the end. A crashed run's lease expires and its run is marked failed by the next one.
- Work is committed page by page (one transaction per listing page), so a huge source never holds one
  giant transaction; a dataset that cannot be read or applied is counted as failed inside its own
  savepoint and the rest of its page is kept.
- Deletion happens only after a *complete* listing: every dataset the listing returned is stamped
  with the run's id, and only then are the source's live datasets without that stamp soft-deleted,
  each with a ``deleted`` change event. A failed or partial listing deletes nothing, marks the source
  unhealthy with the error and leaves the last known metadata served.
- Schema changes and user metadata are handled by :func:`~headwater.catalog.service.apply_snapshot`:
  a changed schema adds a version with its diff and a change event; what people wrote is never touched.
- Secrets are decrypted and resolved (references checked against the server's allowlists again) only when
  the run starts reading; every message the run stores or logs first goes through a
  :class:`~headwater.secrets.Scrubber` of the values it resolved.

This module is an edge, like a route or a CLI command: it opens and commits its own transactions, so
it takes a session *factory*, not a session.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import queue
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog.bulk import create_datasets, unchanged_datasets, validate_fields
from headwater.catalog.connectors import (
    Connector,
    ConnectorError,
    DatasetRef,
    LoadedDataset,
    has_connector,
    open_connector,
    validate_config,
)
from headwater.catalog.models import Dataset, Source, SourceKind, SourceStatus
from headwater.catalog.service import apply_snapshot, mark_deleted
from headwater.catalog.sources import get_source
from headwater.catalog.sync_models import DatasetSyncState, SyncLease, SyncMode, SyncRun, SyncStatus, SyncTrigger
from headwater.db import bulk_insert, session_scope, utcnow
from headwater.egress import EgressPolicy
from headwater.errors import Conflict, HeadwaterError, NotFound
from headwater.pagination import PageResult, SortKey, paginate
from headwater.secrets import Scrubber, SecretVault

__all__ = [
    "SyncInProgress",
    "due_sources",
    "execute_sync",
    "get_sync_run",
    "list_sync_runs",
    "purge_source_datasets",
    "run_sync",
    "start_sync",
]

log = logging.getLogger("headwater.sync")

MAX_ERRORS = 100
DELETE_BATCH = 500
DEFAULT_LEASE_SECONDS = 300
RUN_SORTS = {"id": SortKey(SyncRun.id, SyncRun.id, kind="int")}

Progress = Callable[[SyncRun], None]


class SyncInProgress(Conflict):
    """Another sync of the same source holds its lease."""


class _LeaseLost(Exception):
    """The lease expired and another run claimed it; this run must stop writing."""


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


# ----------------------------------------------------------------------------------------- leases


def _claim_lease(session: Session, *, source_id: int, holder: str, seconds: int) -> bool:
    if session.get(SyncLease, source_id) is None:
        try:
            with session.begin_nested():
                session.add(SyncLease(source_id=source_id))
        except IntegrityError:  # another process created the row first; the UPDATE below decides
            pass
    now = utcnow()
    result = session.execute(
        update(SyncLease)
        .where(
            SyncLease.source_id == source_id,
            or_(SyncLease.holder.is_(None), SyncLease.expires_at.is_(None), SyncLease.expires_at < now),
        )
        .values(holder=holder, expires_at=now + dt.timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def _renew_lease(session: Session, *, source_id: int, holder: str, seconds: int) -> None:
    result = session.execute(
        update(SyncLease)
        .where(SyncLease.source_id == source_id, SyncLease.holder == holder)
        .values(expires_at=utcnow() + dt.timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise _LeaseLost(f"the sync lease of source {source_id} expired and was taken by another run")


def _release_lease(session: Session, *, source_id: int, holder: str) -> None:
    session.execute(
        update(SyncLease)
        .where(SyncLease.source_id == source_id, SyncLease.holder == holder)
        .values(holder=None, run_id=None, expires_at=None)
        .execution_options(synchronize_session=False)
    )


# ------------------------------------------------------------------------------------ the report


@dataclass
class _Handle:
    """What a running sync carries between its transactions."""

    run: SyncRun
    source_id: int
    source_name: str
    kind: str
    namespace: str
    config: dict[str, Any]
    secrets: dict[str, str]
    holder: str
    lease_seconds: int
    full: bool
    vault: SecretVault
    scrub: Scrubber
    egress: EgressPolicy | None = None


def _add_error(handle: _Handle, dataset: str | None, message: str) -> None:
    run = handle.run
    if len(run.errors) < MAX_ERRORS:
        run.errors = [*run.errors, {"dataset": dataset, "error": handle.scrub(message)}]


def start_sync(
    factory: sessionmaker[Session],
    *,
    source_name: str,
    mode: SyncMode = SyncMode.INCREMENTAL,
    trigger: SyncTrigger = SyncTrigger.API,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    vault: SecretVault | None = None,
    egress: EgressPolicy | None = None,
) -> _Handle:
    """Claim the source's lease and record a running SyncRun; raises SyncInProgress if one runs already.

    ``vault`` decrypts and resolves the source's secrets (a source that has some fails to sync without one);
    ``egress`` is the policy its connections obey (default: the process's settings).
    """
    holder = _holder()
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
        handle = _Handle(
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


# ---------------------------------------------------------------------------------- one page


def _known(session: Session, source_id: int, refs: Sequence[DatasetRef]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """(namespace, name) -> (dataset id, source id, deleted_at, stored version, has a sync state) for the refs."""
    by_namespace: dict[str, list[str]] = {}
    for ref in refs:
        by_namespace.setdefault(ref.namespace, []).append(ref.name)
    known: dict[tuple[str, str], tuple[Any, ...]] = {}
    for namespace, names in by_namespace.items():
        rows = session.execute(
            select(
                Dataset.id,
                Dataset.source_id,
                Dataset.deleted_at,
                DatasetSyncState.version,
                Dataset.name,
                DatasetSyncState.dataset_id,
            )
            .outerjoin(DatasetSyncState, DatasetSyncState.dataset_id == Dataset.id)
            .where(Dataset.namespace == namespace, Dataset.name.in_(names))
        ).all()
        for dataset_id, owner, deleted_at, version, name, state_id in rows:
            known[(namespace, name)] = (dataset_id, owner, deleted_at, version, state_id is not None)
    return known


def _mark_seen(session: Session, handle: _Handle, dataset_ids: Sequence[int]) -> None:
    if dataset_ids:
        session.execute(
            update(DatasetSyncState)
            .where(DatasetSyncState.dataset_id.in_(dataset_ids))
            .values(last_seen_run_id=handle.run.id)
            .execution_options(synchronize_session=False)
        )


def _store_state(session: Session, handle: _Handle, dataset_id: int, version: str | None) -> None:
    state = session.get(DatasetSyncState, dataset_id)
    if state is None:
        state = DatasetSyncState(dataset_id=dataset_id, source_id=handle.source_id)
        session.add(state)
    state.version = version
    state.last_seen_run_id = handle.run.id
    state.synced_at = utcnow()


_OUTCOME_COUNTER = {
    "created": "added",
    "restored": "restored",
    "schema_changed": "changed",
    "updated": "changed",
    "unchanged": "unchanged",
}


@dataclass
class _LoadedPage:
    """One listing page, read from the source: what the writer applies in one transaction."""

    refs: list[DatasetRef]
    known: dict[tuple[str, str], tuple[Any, ...]]
    unchanged_ids: list[int]
    loaded: list[tuple[DatasetRef, LoadedDataset | ConnectorError]]


def _read_page(
    factory: sessionmaker[Session], connector: Connector, handle: _Handle, refs: list[DatasetRef]
) -> _LoadedPage:
    """Decide which of a page's datasets need loading (by their version tokens) and load them."""
    with session_scope(factory) as session:
        known = _known(session, handle.source_id, refs)
    unchanged_ids: list[int] = []
    to_load: list[DatasetRef] = []
    for ref in refs:
        row = known.get((ref.namespace, ref.name))
        if (
            not handle.full
            and row is not None
            and row[1] == handle.source_id
            and row[2] is None
            and ref.version is not None
            and row[3] == ref.version
        ):
            unchanged_ids.append(row[0])
        else:
            to_load.append(ref)
    # Read from the source outside any transaction of ours.
    loaded = list(connector.load_many(to_load)) if to_load else []
    return _LoadedPage(refs=refs, known=known, unchanged_ids=unchanged_ids, loaded=loaded)


def _create_new(session: Session, handle: _Handle, source: Source, new: list[tuple[DatasetRef, LoadedDataset]]) -> bool:
    """Write a page's new datasets in a few multi-row statements; False when one appeared meanwhile."""
    try:
        with session.begin_nested():
            created = create_datasets(session, source=source, snapshots=[item.snapshot for _, item in new])
            now = utcnow()
            bulk_insert(
                session,
                DatasetSyncState,
                [
                    {
                        "dataset_id": dataset.id,
                        "source_id": handle.source_id,
                        "version": item.version or ref.version,
                        "last_seen_run_id": handle.run.id,
                        "synced_at": now,
                    }
                    for dataset, (ref, item) in zip(created, new, strict=True)
                ],
            )
    except IntegrityError:  # created concurrently (e.g. by a lineage event): take the careful path
        return False
    handle.run.added += len(created)
    return True


def _apply_one(
    session: Session, handle: _Handle, source: Source, ref: DatasetRef, item: LoadedDataset, row: tuple[Any, ...] | None
) -> int | None:
    """Apply one loaded dataset in its own savepoint; the id of a known dataset that failed, to keep it."""
    run = handle.run
    try:
        with session.begin_nested():
            applied = apply_snapshot(session, source=source, snapshot=item.snapshot)
            _store_state(session, handle, applied.dataset.id, item.version or ref.version)
            session.flush()
    except HeadwaterError as exc:
        run.failed += 1
        _add_error(handle, ref.name, exc.message)
        return row[0] if row is not None and row[1] == handle.source_id else None
    counter = _OUTCOME_COUNTER[applied.outcome]
    setattr(run, counter, getattr(run, counter) + 1)
    return None


def _skip_unchanged(
    session: Session, handle: _Handle, page: _LoadedPage, loaded: list[tuple[DatasetRef, LoadedDataset]]
) -> list[tuple[DatasetRef, LoadedDataset]]:
    """Stamp the loaded datasets that did not change as seen (storing their new version tokens) in a few
    statements; what is left needs applying one by one."""
    candidates: dict[int, tuple[DatasetRef, LoadedDataset]] = {}
    for ref, result in loaded:
        row = page.known.get((ref.namespace, ref.name))
        if row is not None and row[1] == handle.source_id and row[2] is None and row[4]:
            candidates[row[0]] = (ref, result)
    same = unchanged_datasets(session, snapshots={key: item.snapshot for key, (_, item) in candidates.items()})
    if not same:
        return loaded
    now = utcnow()
    session.execute(  # the ORM's bulk UPDATE by primary key: one executemany
        update(DatasetSyncState),
        [
            {
                "dataset_id": dataset_id,
                "version": candidates[dataset_id][1].version or candidates[dataset_id][0].version,
                "last_seen_run_id": handle.run.id,
                "synced_at": now,
            }
            for dataset_id in sorted(same)
        ],
    )
    handle.run.unchanged += len(same)
    skipped = {id(candidates[dataset_id][1]) for dataset_id in same}
    return [(ref, result) for ref, result in loaded if id(result) not in skipped]


def _write_page(factory: sessionmaker[Session], handle: _Handle, page: _LoadedPage) -> None:
    """Apply one loaded page in one transaction: new datasets in bulk, unchanged ones skipped in bulk, the
    rest one by one."""
    run = handle.run
    run.listed += len(page.refs)
    run.unchanged += len(page.unchanged_ids)
    with session_scope(factory) as session:
        _renew_lease(session, source_id=handle.source_id, holder=handle.holder, seconds=handle.lease_seconds)
        source = session.get(Source, handle.source_id)
        if source is None:
            raise NotFound(f"source {handle.source_name!r} was removed during its sync")
        keep_ids = list(page.unchanged_ids)  # listed, so they exist: stamp them seen
        new: list[tuple[DatasetRef, LoadedDataset]] = []
        rest: list[tuple[DatasetRef, LoadedDataset]] = []
        for ref, result in page.loaded:
            row = page.known.get((ref.namespace, ref.name))
            if isinstance(result, ConnectorError):
                run.failed += 1
                _add_error(handle, ref.name, result.message)
                if row is not None and row[1] == handle.source_id:
                    keep_ids.append(row[0])  # keep it and its last known metadata
                continue
            if row is None:
                try:
                    validate_fields(result.snapshot.fields)
                except HeadwaterError as exc:
                    run.failed += 1
                    _add_error(handle, ref.name, exc.message)
                    continue
                new.append((ref, result))
            else:
                rest.append((ref, result))
        if new and not _create_new(session, handle, source, new):
            rest = new + rest
        rest = _skip_unchanged(session, handle, page, rest)
        for ref, result in rest:
            failed_id = _apply_one(session, handle, source, ref, result, page.known.get((ref.namespace, ref.name)))
            if failed_id is not None:
                keep_ids.append(failed_id)
        _mark_seen(session, handle, keep_ids)
        session.merge(run)  # the report so far, so GET .../syncs/{id} shows a running sync's progress


# ------------------------------------------------------------------------------------- deletion


def _delete_missing(factory: sessionmaker[Session], handle: _Handle) -> None:
    """Soft-delete the source's live datasets the complete listing did not return, in batches."""
    reason = f"no longer in source {handle.source_name!r} (sync run {handle.run.id})"
    while True:
        with session_scope(factory) as session:
            _renew_lease(session, source_id=handle.source_id, holder=handle.holder, seconds=handle.lease_seconds)
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


# ------------------------------------------------------------------------------------ collector

_frozen_lock = threading.Lock()
_frozen_runs = 0


@contextmanager
def _collector_spares_old_objects() -> Iterator[None]:
    """Keep CPython's full collections from rescanning everything the process held before the sync.

    A sync allocates hundreds of thousands of short-lived objects; each full collection they trigger
    would walk every object already alive (the imported libraries alone are ~100,000), which cost a
    fifth of a large first sync. ``gc.freeze`` sets those aside until the last running sync ends.
    """
    global _frozen_runs
    with _frozen_lock:
        if _frozen_runs == 0:
            gc.freeze()
        _frozen_runs += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen_runs -= 1
            if _frozen_runs == 0:
                gc.unfreeze()


# ------------------------------------------------------------------------------------- read-ahead

_END = object()


def _read_ahead(
    factory: sessionmaker[Session], connector: Connector, handle: _Handle, unlisted: list[str]
) -> Iterator[_LoadedPage]:
    """The source's pages, listed and loaded one page ahead of the writer, in a thread of their own.

    Reading a page from the source and writing the previous one into the catalog overlap, so a sync
    costs about the larger of the two rather than their sum. Only this thread touches the connector
    (Thrift and other clients are not thread-safe); at most two pages are held, so memory stays flat
    however large the source. ``unlisted`` collects the parts the listing could not read.
    """
    pages: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for listing in connector.list_pages():
                unlisted.extend(listing.unlisted)
                if not put(_read_page(factory, connector, handle, listing.refs)):
                    return
            put(_END)
        except BaseException as exc:  # handed to the writer, which raises it where the sync can report it
            put(exc)

    thread = threading.Thread(target=produce, name=f"sync-read-{handle.source_name}", daemon=True)
    thread.start()
    try:
        while True:
            item = pages.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


# -------------------------------------------------------------------------------------- the run


def _finish(factory: sessionmaker[Session], handle: _Handle, *, listing_error: str | None, started: float) -> SyncRun:
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
            _release_lease(session, source_id=handle.source_id, holder=handle.holder)
        session.flush()
        result = merged
    return result


def execute_sync(factory: sessionmaker[Session], handle: _Handle, *, progress: Progress | None = None) -> SyncRun:
    """Run a started sync to its end and store its report; never raises for a source's failure."""
    started = time.perf_counter()
    run = handle.run
    listing_error: str | None = None
    try:
        resolved = handle.vault.resolve(handle.secrets, source=handle.source_name)
        handle.scrub = Scrubber(resolved.values())
        with open_connector(
            kind=handle.kind,
            source_name=handle.source_name,
            namespace=handle.namespace,
            config=handle.config,
            secrets=resolved,
            egress=handle.egress,
        ) as connector:
            connector.check()
            unlisted: list[str] = []
            with _collector_spares_old_objects():
                for page in _read_ahead(factory, connector, handle, unlisted):
                    _write_page(factory, handle, page)
                    if progress is not None:
                        progress(run)
            for part in unlisted:
                _add_error(handle, None, f"not listed: {part}")
            run.complete = not unlisted
            if unlisted:
                listing_error = f"{len(unlisted)} part(s) of the source could not be listed: {unlisted[0]}"
        if run.complete:
            _delete_missing(factory, handle)
    except HeadwaterError as exc:
        listing_error = exc.message
        run.complete = False
        _add_error(handle, None, exc.message)
    except _LeaseLost as exc:
        listing_error = str(exc)
        run.complete = False
        _add_error(handle, None, str(exc))
    except Exception as exc:  # a bug or an unexpected library error: report it, never leave the run "running"
        # Logged through the scrubber: a library's exception may quote what it was given, credentials included.
        log.error("sync of source %r failed: %s", handle.source_name, handle.scrub(traceback.format_exc()))
        listing_error = f"{type(exc).__name__}: {exc}"
        run.complete = False
        _add_error(handle, None, listing_error)
    result = _finish(factory, handle, listing_error=listing_error, started=started)
    if progress is not None:
        progress(result)
    return result


def run_sync(
    factory: sessionmaker[Session],
    *,
    source_name: str,
    mode: SyncMode = SyncMode.INCREMENTAL,
    trigger: SyncTrigger = SyncTrigger.API,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    progress: Progress | None = None,
    vault: SecretVault | None = None,
    egress: EgressPolicy | None = None,
) -> SyncRun:
    """Sync one source now and return its report; raises SyncInProgress when another sync holds it."""
    handle = start_sync(
        factory,
        source_name=source_name,
        mode=mode,
        trigger=trigger,
        lease_seconds=lease_seconds,
        vault=vault,
        egress=egress,
    )
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


# ---------------------------------------------------------------------------------- scheduler


class SyncScheduler:
    """Runs the periodic syncs of sources that set ``sync_interval_seconds``, in a background thread."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        poll_seconds: float,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        vault: SecretVault | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.factory = factory
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.vault = vault
        self.egress = egress
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> list[SyncRun]:
        """Sync every due source once; the reports of the runs this call made."""
        with session_scope(self.factory) as session:
            names = due_sources(session)
        runs: list[SyncRun] = []
        for name in names:
            if self._stop.is_set():
                break
            try:
                runs.append(
                    run_sync(
                        self.factory,
                        source_name=name,
                        trigger=SyncTrigger.SCHEDULE,
                        lease_seconds=self.lease_seconds,
                        vault=self.vault,
                        egress=self.egress,
                    )
                )
            except SyncInProgress:
                continue  # another process or request is syncing it right now
            except HeadwaterError as exc:
                log.warning("periodic sync of source %r not started: %s", name, exc.message)
        return runs

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.tick()
            except Exception:  # the loop must survive a database hiccup
                log.exception("periodic sync check failed")

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="headwater-sync", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait for it (a running sync finishes its current page first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
