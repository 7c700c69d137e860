"""One page of a sync: what a running sync carries (:class:`SyncHandle`), reading a listing page from the source
and writing it into the catalog in one transaction, and the read-ahead thread that overlaps the two.

The run around the pages (its lease, its start, deletion and its report) is :mod:`headwater.catalog.sync`.
"""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog.bulk import create_datasets, unchanged_datasets, validate_fields
from headwater.catalog.connectors import Connector, ConnectorError, DatasetRef, LoadedDataset, Unmodified
from headwater.catalog.models import Dataset, Source
from headwater.catalog.service import apply_snapshot
from headwater.catalog.sync_models import DatasetSyncState, SyncLease, SyncRun
from headwater.db import bulk_insert, session_scope, utcnow
from headwater.egress import EgressPolicy
from headwater.errors import HeadwaterError, NotFound
from headwater.leases import RowLease
from headwater.secrets import Scrubber, SecretVault

__all__ = [
    "LEASE",
    "LeaseLost",
    "LoadedPage",
    "SyncHandle",
    "add_error",
    "collector_spares_old_objects",
    "read_ahead",
    "renew_lease",
    "write_page",
]

MAX_ERRORS = 100

# One sync per source at a time: the lease is the source's row in sync_leases.
LEASE = RowLease(SyncLease.holder, SyncLease.expires_at)


class LeaseLost(Exception):
    """The lease expired and another run claimed it; this run must stop writing."""


@dataclass
class SyncHandle:
    """What a running sync carries between its transactions (:func:`~headwater.catalog.sync.start_sync` makes it)."""

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


def add_error(handle: SyncHandle, dataset: str | None, message: str) -> None:
    """Add an error to the run's report (scrubbed of secrets; the first ``MAX_ERRORS`` are kept)."""
    run = handle.run
    if len(run.errors) < MAX_ERRORS:
        run.errors = [*run.errors, {"dataset": dataset, "error": handle.scrub(message)}]


def renew_lease(session: Session, handle: SyncHandle) -> None:
    """Extend the run's lease for another ``lease_seconds``; raises LeaseLost when another run took it."""
    if not LEASE.renew(
        session, SyncLease.source_id == handle.source_id, holder=handle.holder, seconds=handle.lease_seconds
    ):
        raise LeaseLost(f"the sync lease of source {handle.source_id} expired and was taken by another run")


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


def _mark_seen(session: Session, handle: SyncHandle, dataset_ids: Sequence[int]) -> None:
    if dataset_ids:
        session.execute(
            update(DatasetSyncState)
            .where(DatasetSyncState.dataset_id.in_(dataset_ids))
            .values(last_seen_run_id=handle.run.id)
            .execution_options(synchronize_session=False)
        )


def _store_state(session: Session, handle: SyncHandle, dataset_id: int, version: str | None) -> None:
    state = session.get(DatasetSyncState, dataset_id)
    if state is None:
        state = DatasetSyncState(dataset_id=dataset_id, source_id=handle.source_id)
        session.add(state)
    state.version = version
    state.last_seen_run_id = handle.run.id
    state.synced_at = utcnow()


_OUTCOME_COUNTER = {
    "adopted": "added",
    "created": "added",
    "restored": "restored",
    "schema_changed": "changed",
    "updated": "changed",
    "unchanged": "unchanged",
}


@dataclass
class LoadedPage:
    """One listing page, read from the source: what the writer applies in one transaction."""

    refs: list[DatasetRef]
    known: dict[tuple[str, str], tuple[Any, ...]]
    unchanged_ids: list[int]
    loaded: list[tuple[DatasetRef, LoadedDataset | Unmodified | ConnectorError]]


def _read_page(
    factory: sessionmaker[Session], connector: Connector, handle: SyncHandle, refs: list[DatasetRef]
) -> LoadedPage:
    """Decide which of a page's datasets need loading (by their version tokens) and load them."""
    with session_scope(factory) as session:
        known = _known(session, handle.source_id, refs)
    unchanged_ids: list[int] = []
    to_load: list[DatasetRef] = []
    for ref in refs:
        row = known.get((ref.namespace, ref.name))
        if handle.full or row is None or row[1] != handle.source_id or row[2] is not None:
            to_load.append(ref)
        elif ref.version is not None and row[3] == ref.version:
            unchanged_ids.append(row[0])
        elif ref.version is None and row[3] is not None:
            # No token in the listing: the connector may still tell "unchanged" from the stored one.
            to_load.append(replace(ref, stored_version=row[3]))
        else:
            to_load.append(ref)
    # Read from the source outside any transaction of ours.
    loaded = list(connector.load_many(to_load)) if to_load else []
    return LoadedPage(refs=refs, known=known, unchanged_ids=unchanged_ids, loaded=loaded)


def _create_new(
    session: Session, handle: SyncHandle, source: Source, new: list[tuple[DatasetRef, LoadedDataset]]
) -> bool:
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
    session: Session,
    handle: SyncHandle,
    source: Source,
    ref: DatasetRef,
    item: LoadedDataset,
    row: tuple[Any, ...] | None,
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
        add_error(handle, ref.name, exc.message)
        return row[0] if row is not None and row[1] == handle.source_id else None
    counter = _OUTCOME_COUNTER[applied.outcome]
    setattr(run, counter, getattr(run, counter) + 1)
    return None


def _skip_unchanged(
    session: Session, handle: SyncHandle, page: LoadedPage, loaded: list[tuple[DatasetRef, LoadedDataset]]
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


def write_page(factory: sessionmaker[Session], handle: SyncHandle, page: LoadedPage) -> None:
    """Apply one loaded page in one transaction: new datasets in bulk, unchanged ones skipped in bulk, the
    rest one by one."""
    run = handle.run
    run.listed += len(page.refs)
    run.unchanged += len(page.unchanged_ids)
    with session_scope(factory) as session:
        renew_lease(session, handle)
        source = session.get(Source, handle.source_id)
        if source is None:
            raise NotFound(f"source {handle.source_name!r} was removed during its sync")
        keep_ids = list(page.unchanged_ids)  # listed, so they exist: stamp them seen
        new: list[tuple[DatasetRef, LoadedDataset]] = []
        rest: list[tuple[DatasetRef, LoadedDataset]] = []
        retokened: list[dict[str, Any]] = []
        for ref, result in page.loaded:
            row = page.known.get((ref.namespace, ref.name))
            if isinstance(result, Unmodified):  # a conditional read found it unchanged (only known ones are asked)
                if row is not None:
                    run.unchanged += 1
                    keep_ids.append(row[0])
                    if result.version != row[3]:
                        retokened.append({"dataset_id": row[0], "version": result.version})
                continue
            if isinstance(result, ConnectorError):
                run.failed += 1
                add_error(handle, ref.name, result.message)
                if row is not None and row[1] == handle.source_id:
                    keep_ids.append(row[0])  # keep it and its last known metadata
                continue
            if row is None:
                try:
                    validate_fields(result.snapshot.fields)
                except HeadwaterError as exc:
                    run.failed += 1
                    add_error(handle, ref.name, exc.message)
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
        if retokened:
            session.execute(update(DatasetSyncState), retokened)
        _mark_seen(session, handle, keep_ids)
        session.merge(run)  # the report so far, so GET .../syncs/{id} shows a running sync's progress


# ------------------------------------------------------------------------------------ collector

_frozen_lock = threading.Lock()
_frozen_runs = 0


@contextmanager
def collector_spares_old_objects() -> Iterator[None]:
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


def read_ahead(
    factory: sessionmaker[Session], connector: Connector, handle: SyncHandle, unlisted: list[str]
) -> Iterator[LoadedPage]:
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
