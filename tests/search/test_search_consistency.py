"""The index never drifts: catalog writes succeed while search is down, the indexer catches up with nothing
lost, a rebuild swaps in with zero downtime and replays what changed meanwhile, one indexer at a time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from headwater.catalog import service
from headwater.catalog.schemas import DatasetUpdate
from headwater.db import make_sessionmaker, session_scope
from headwater.search.base import DocumentType, SearchBackend, SearchDocument, SearchQuery
from headwater.search.indexer import IndexerThread, SearchIndexer
from headwater.search.models import SearchIndexState

AddDataset = Callable[..., Any]


def all_names(backend: SearchBackend) -> set[str]:
    """Every dataset name in the index."""
    names: set[str] = set()
    cursor = None
    while True:
        page = backend.search(SearchQuery(q=None, limit=100, cursor=cursor, facets=False).validate())
        names.update(h.name for h in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return names


def test_backend_down_during_catalog_writes_then_recovery_loses_nothing(
    search_backend: SearchBackend,
    indexer: SearchIndexer,
    add_dataset: AddDataset,
    session: Session,
    engine: Engine,
    unreachable_twin: Callable[[SearchBackend], SearchBackend],
) -> None:
    add_dataset("before.outage", columns=["a"])
    indexer.catch_up()
    indexer.release()  # as when the process stops; the lease would otherwise keep a second indexer out

    down = SearchIndexer(factory=indexer.factory, backend=unreachable_twin(search_backend), batch_size=50)
    assert down.name == indexer.name  # the same index, so the same stored position
    thread = IndexerThread(down, interval=60)
    written = [add_dataset(f"during.outage_{i}", columns=["x", "y"], tags=["t"]) for i in range(30)]
    service.delete_dataset(session, dataset_id=written[0].id, reason="gone", expected_revision=None)
    service.update_dataset_metadata(
        session,
        dataset_id=written[1].id,
        data=DatasetUpdate(description="changed in the outage"),
        expected_revision=None,
    )
    session.commit()  # every catalog write succeeded although search is down
    thread.tick()  # the background loop's round: it fails, records the error, keeps the position
    assert thread.failures == 1
    status = down.status(session)
    session.rollback()  # end the read (SQLite: its BEGIN IMMEDIATE holds the write lock)
    assert status["lag"] == 32 and not status["in_sync"]
    with make_sessionmaker(engine)() as s:
        state = s.get(SearchIndexState, indexer.name)
        assert state is not None and state.last_error and state.last_error_at
    down.release()

    indexer.catch_up()  # the backend is back
    expected = {"before.outage"} | {f"during.outage_{i}" for i in range(1, 30)}
    assert all_names(search_backend) == expected
    with make_sessionmaker(engine)() as s:
        status = indexer.status(s)
    assert status["lag"] == 0 and status["in_sync"], status
    assert status["documents"] == {"dataset": 30, "column": 59}
    hit = search_backend.search(SearchQuery(q="changed in the outage").validate()).items[0]
    assert hit.name == "during.outage_1"


def test_rebuild_swaps_in_with_zero_downtime_and_replays_changes_made_meanwhile(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset, session: Session
) -> None:
    for i in range(12):
        add_dataset(f"lake.table_{i:02d}", columns=["id", "value"])
    indexer.catch_up()
    before = search_backend.search(SearchQuery(q=None, limit=1).validate()).total
    old_indices = search_backend.live_indices() if search_backend.name == "elasticsearch" else []  # type: ignore[attr-defined]
    seen_during: list[int] = []

    def progress(done: int, total: int) -> None:
        # Readers keep seeing the whole index while the rebuild runs; a write lands mid-rebuild.
        seen_during.append(search_backend.search(SearchQuery(q=None, limit=1).validate()).total)
        if done == 5:
            with session_scope(indexer.factory) as s:
                target = service.get_dataset_by_name(s, namespace="manual", name="lake.table_03")
                service.update_dataset_metadata(
                    s, dataset_id=target.id, data=DatasetUpdate(tags=["during-rebuild"]), expected_revision=None
                )

    indexer.batch_size = 5
    report = indexer.rebuild(progress=progress)
    assert report.datasets == 12 and report.documents == 36
    assert seen_during and all(n == before == 12 for n in seen_during)
    indexer.catch_up()  # replays the change made during the rebuild onto the new index
    page = search_backend.search(SearchQuery(q=None, filters={"tag": ["during-rebuild"]}).validate())
    assert [h.name for h in page.items] == ["lake.table_03"]
    assert search_backend.count_documents() == {"dataset": 12, "column": 24}
    if search_backend.name == "elasticsearch":
        new_indices = search_backend.live_indices()  # type: ignore[attr-defined]
        assert len(new_indices) == 1 and new_indices != old_indices
        assert not search_backend.client.indices.exists(index=old_indices[0])  # type: ignore[attr-defined]


def test_rebuild_removes_documents_of_datasets_that_no_longer_exist(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset
) -> None:
    add_dataset("kept.one", columns=["a"])
    indexer.catch_up()
    search_backend.replace([999_999], [_orphan()])
    assert "ghost.table" in all_names(search_backend)
    indexer.rebuild()
    assert all_names(search_backend) == {"kept.one"}


def _orphan() -> SearchDocument:
    import datetime as dt

    return SearchDocument(
        key="dataset:999999",
        type=DocumentType.DATASET,
        dataset_id=999_999,
        name="ghost.table",
        dataset_name="ghost.table",
        namespace="manual",
        source="manual",
        kind="table",
        updated_at=dt.datetime.now(dt.UTC),
    )


def test_one_indexer_at_a_time(search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset) -> None:
    add_dataset("leased.table")
    other = SearchIndexer(factory=indexer.factory, backend=search_backend, owner="other-process")
    assert indexer.run_once().events == 1
    skipped = other.run_once()
    assert skipped.events == 0 and skipped.skipped and indexer.owner in skipped.skipped
    indexer.release()
    add_dataset("leased.second")
    assert other.run_once().events == 1


def test_background_thread_keeps_the_index_in_step(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset
) -> None:
    thread = IndexerThread(indexer, interval=0.05)
    thread.start()
    try:
        add_dataset("streamed.in", columns=["c"])
        deadline = time.monotonic() + 10
        while "streamed.in" not in all_names(search_backend):
            assert time.monotonic() < deadline, "the background indexer did not index the new dataset"
            time.sleep(0.05)
    finally:
        thread.stop()
    with make_sessionmaker(indexer.factory.kw["bind"])() as s:
        assert s.scalar(select(SearchIndexState.lease_owner)) is None  # released on stop


@pytest.mark.parametrize("search_backend", ["sql"], indirect=True)
def test_sql_position_is_not_advanced_when_a_rebuild_rewound_it(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset
) -> None:
    add_dataset("cas.one")
    with session_scope(indexer.factory) as s:
        assert indexer._claim(s)  # noqa: SLF001
    assert indexer._advance(0, 1)  # noqa: SLF001
    assert not indexer._advance(5, 6)  # noqa: SLF001 - someone else moved it: compare-and-set refuses
    assert indexer.run_once().events == 0
