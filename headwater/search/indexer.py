"""The search indexer: feeds the search backend from the catalog's change-event outbox.

* Catalog writes never touch search; they append to the outbox in their own transaction, so a write
  cannot fail because search is down.
* The indexer reads events after its stored position, loads the current state of the datasets they
  name, replaces those datasets' documents in the backend, and only then advances the position. A
  failure leaves the position where it was, so everything is retried; replacing documents with the
  current state is idempotent, so a retry (or replaying from an older position) is harmless.
* One indexer writes an index at a time (a lease in ``search_index_state``); position updates are
  compare-and-set, so a rebuild's rewind is never overwritten by a round that started before it.
* A rebuild records the outbox position first, rewrites everything, then rewinds to that position:
  changes made during the rebuild are replayed onto the rebuilt index.
* An indexer whose position is behind the outbox's retention (``catalog.events.trimmed_through``: it was down
  longer than HEADWATER_OUTBOX_RETENTION_MAX_DAYS, or its index is new) could miss changes: it rebuilds instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog.events import latest_change_id, list_changes, trimmed_through
from headwater.catalog.models import Dataset
from headwater.db import session_scope, utcnow
from headwater.errors import Conflict
from headwater.leases import RowLease, new_holder
from headwater.loops import LoopService
from headwater.search.base import SearchBackend, SearchUnavailable, describe
from headwater.search.documents import documents_for, iter_dataset_batches, load_datasets
from headwater.search.models import SearchIndexState

__all__ = ["IndexerThread", "RebuildReport", "RoundReport", "SearchIndexer"]

log = logging.getLogger("headwater.search.indexer")

Progress = Callable[[int, int], None]

# One indexer writes an index at a time: the lease is in the index's row of search_index_state.
_LEASE = RowLease(SearchIndexState.lease_owner, SearchIndexState.lease_until)


@dataclass
class RoundReport:
    """What one indexing round did."""

    events: int
    datasets: int
    position: int
    skipped: str | None = None  # why nothing was done (another indexer holds the lease)


@dataclass
class RebuildReport:
    """What a rebuild did."""

    datasets: int
    documents: int
    position: int
    seconds: float


class SearchIndexer:
    """Keeps one backend's index in step with the catalog."""

    def __init__(
        self,
        *,
        factory: sessionmaker[Session],
        backend: SearchBackend,
        include_columns: bool = True,
        batch_size: int = 200,
        lease_seconds: float = 30.0,
        owner: str | None = None,
    ) -> None:
        self.factory = factory
        self.backend = backend
        self.include_columns = include_columns
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.owner = owner or new_holder(digits=6)
        self.name = backend.position_key

    # -- state ------------------------------------------------------------------------------------

    def _ensure_state(self, session: Session) -> None:
        dialect = session.get_bind().dialect.name
        maker: Any = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(maker(SearchIndexState).values(name=self.name, position=0).on_conflict_do_nothing())

    def _claim(self, session: Session) -> bool:
        """Take or renew the lease; False when another live indexer holds it."""
        self._ensure_state(session)
        where = SearchIndexState.name == self.name
        return _LEASE.acquire(session, where, holder=self.owner, seconds=self.lease_seconds, reentrant=True)

    def release(self) -> None:
        """Give the lease up (on shutdown), so another indexer can take over at once."""
        try:
            with session_scope(self.factory) as session:
                _LEASE.release(session, SearchIndexState.name == self.name, holder=self.owner)
        except SQLAlchemyError as exc:
            log.warning("could not release the search indexer lease: %s", exc)

    def _advance(self, old: int, new: int) -> bool:
        with session_scope(self.factory) as session:
            result = session.execute(
                update(SearchIndexState)
                .where(SearchIndexState.name == self.name, SearchIndexState.position == old)
                .values(position=new, updated_at=utcnow(), last_success_at=utcnow(), last_error=None)
            )
            return bool(getattr(result, "rowcount", 0))

    def record_error(self, error: BaseException) -> None:
        """Remember the last failure for the status endpoint (best effort: the database may be down too)."""
        try:
            with session_scope(self.factory) as session:
                self._ensure_state(session)
                session.execute(
                    update(SearchIndexState)
                    .where(SearchIndexState.name == self.name)
                    .values(last_error=describe(error), last_error_at=utcnow())
                )
        except SQLAlchemyError:
            pass

    # -- incremental ------------------------------------------------------------------------------

    def run_once(self) -> RoundReport:
        """Index the next batch of change events; raises SearchUnavailable when the backend is down."""
        with session_scope(self.factory) as session:
            if not self._claim(session):
                state = session.get(SearchIndexState, self.name)
                holder = state.lease_owner if state else "?"
                return RoundReport(0, 0, state.position if state else 0, skipped=f"lease held by {holder}")
            state = session.get(SearchIndexState, self.name)
            assert state is not None
            position = state.position
            through = trimmed_through(session)
            behind = position < through
            if not behind:
                events = list_changes(session, after=position, limit=self.batch_size)
                if not events:
                    return RoundReport(0, 0, position)
                dataset_ids = sorted({e.entity_id for e in events if e.entity_type == "dataset"})
                documents = documents_for(
                    session, load_datasets(session, dataset_ids), include_columns=self.include_columns
                )
                last = events[-1].id
        if behind:  # changes it has not seen were removed: only a rebuild is sure to hold them
            log.warning(
                "search index %r is at change %d, behind the outbox's retention (removed through %d): rebuilding",
                self.name,
                position,
                through,
            )
            rebuilt = self.rebuild()
            return RoundReport(0, rebuilt.datasets, rebuilt.position, skipped="rebuilt: behind the outbox's retention")
        # The read transaction is over before the backend is written (SQLite has a single writer).
        if dataset_ids:
            self.backend.replace(dataset_ids, documents)
        if not self._advance(position, last):
            log.info("search position moved under this round (a rebuild rewound it); replaying")
        return RoundReport(len(events), len(dataset_ids), last)

    def catch_up(self, *, max_rounds: int = 1_000_000) -> int:
        """Run rounds until no event is left (or ``max_rounds``); the number of events indexed."""
        total = 0
        for _ in range(max_rounds):
            report = self.run_once()
            total += report.events
            if report.events == 0:
                break
        return total

    # -- rebuild ----------------------------------------------------------------------------------

    def rebuild(self, *, progress: Progress | None = None, wait_for_lease: float = 0.0) -> RebuildReport:
        """Rebuild the index from the catalog, swap it in, and replay what changed meanwhile."""
        import time

        started = time.monotonic()
        deadline = started + wait_for_lease
        while True:
            with session_scope(self.factory) as session:
                claimed = self._claim(session)
                start_position = latest_change_id(session)
                total = session.scalar(select(func.count()).select_from(Dataset).where(Dataset.deleted_at.is_(None)))
            if claimed:
                break
            if time.monotonic() >= deadline:
                raise Conflict(f"another search indexer holds the lease on index {self.name!r}; try again shortly")
            time.sleep(1.0)
        self.backend.ensure_ready()
        rebuild = self.backend.begin_rebuild()
        done = documents = 0
        try:
            with self.factory() as session:
                batches = list(iter_dataset_batches(session, batch_size=self.batch_size))
            for ids in batches:
                with session_scope(self.factory) as session:
                    self._claim(session)  # renew
                    batch = documents_for(session, load_datasets(session, ids), include_columns=self.include_columns)
                rebuild.add(ids, batch)
                done += len(ids)
                documents += len(batch)
                if progress:
                    progress(done, total or 0)
            rebuild.finish()
        except BaseException:
            rebuild.abort()
            raise
        with session_scope(self.factory) as session:
            self._ensure_state(session)
            session.execute(
                update(SearchIndexState)
                .where(SearchIndexState.name == self.name)
                .values(position=start_position, updated_at=utcnow(), last_success_at=utcnow(), last_error=None)
            )
        return RebuildReport(done, documents, start_position, time.monotonic() - started)

    # -- status -----------------------------------------------------------------------------------

    def status(self, session: Session) -> dict[str, Any]:
        """Lag (events behind), document counts beside catalog counts, and the last success and error."""
        from headwater.catalog.models import ChangeEvent

        state = session.get(SearchIndexState, self.name)
        position = state.position if state else 0
        latest = latest_change_id(session)
        behind = session.scalar(select(func.count()).select_from(ChangeEvent).where(ChangeEvent.id > position)) or 0
        live = Dataset.deleted_at.is_(None)
        catalog = {
            "datasets": session.scalar(select(func.count()).select_from(Dataset).where(live)) or 0,
            "columns": session.scalar(select(func.coalesce(func.sum(Dataset.field_count), 0)).where(live)) or 0,
        }
        documents: dict[str, int] | None
        error: str | None = None
        try:
            documents = self.backend.count_documents()
        except SearchUnavailable as exc:
            documents, error = None, exc.message
        in_sync = (
            behind == 0
            and documents is not None
            and documents.get("dataset") == catalog["datasets"]
            and (not self.include_columns or documents.get("column") == catalog["columns"])
        )
        return {
            "backend": self.backend.name,
            "index": self.name,
            "available": error is None,
            "position": position,
            "latest_event": latest,
            "lag": int(behind),
            "documents": documents,
            "catalog": {k: int(v) for k, v in catalog.items()},
            "in_sync": in_sync,
            "indexes_columns": self.include_columns,
            "last_success_at": state.last_success_at if state else None,
            "last_error": error or (state.last_error if state else None),
            "last_error_at": state.last_error_at if state else None,
            "lease_owner": state.lease_owner if state else None,
        }


class IndexerThread(LoopService[None]):
    """Runs the indexer in the background: every ``interval`` seconds it catches up; while the backend (or the
    database) is down it backs off up to 30 s and keeps the position, so nothing is lost."""

    log = log

    def __init__(self, indexer: SearchIndexer, *, interval: float) -> None:
        super().__init__(name="headwater-search-indexer", interval=interval, run_first=True, max_backoff=30.0)
        self.indexer = indexer

    def run_once(self) -> None:
        """One pass: catch up as far as possible (bounded, so stop() is honoured)."""
        self.indexer.catch_up(max_rounds=50)

    def on_error(self, exc: Exception) -> None:
        """An unreachable backend or database is expected (a warning); anything else is a bug (a traceback)."""
        if isinstance(exc, SearchUnavailable | SQLAlchemyError):
            log.warning("search indexing paused (attempt %d): %s", self.failures, exc)
        else:
            log.exception("search indexer round failed")
        self.indexer.record_error(exc)

    def on_stop(self) -> None:
        """Release the lease, so another indexer can take over at once."""
        self.indexer.release()
