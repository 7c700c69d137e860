"""The search indexer and the outbox's retention: rows the indexer has passed are removed after the floor, and an
indexer left behind the trim (down longer than the ceiling) rebuilds instead of missing the changes removed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.catalog.events import trimmed_through
from headwater.catalog.models import ChangeEvent
from headwater.db import session_scope, utcnow
from headwater.retention import RetentionPolicy, run_retention
from headwater.search.base import SearchBackend, SearchQuery
from headwater.search.indexer import SearchIndexer
from headwater.search.models import SearchIndexState

AddDataset = Callable[..., Any]
KEEP_LINEAGE = {"events": None, "runs": None}


def names(backend: SearchBackend) -> set[str]:
    page = backend.search(SearchQuery(q=None, limit=100, facets=False).validate())
    return {hit.name for hit in page.items}


def test_rows_the_indexer_passed_go_after_the_floor_and_the_rest_stay(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset, session: Session
) -> None:
    add_dataset("db.a")
    add_dataset("db.b")
    indexer.catch_up()
    add_dataset("db.c")  # not indexed yet
    with session_scope(indexer.factory) as s:
        position = s.get(SearchIndexState, indexer.name).position  # type: ignore[union-attr]

    report = run_retention(indexer.factory, RetentionPolicy(**KEEP_LINEAGE), now=utcnow() + dt.timedelta(days=8))

    assert report.behind == [] and report.outbox_through == position
    with session_scope(indexer.factory) as s:
        assert min(s.scalars(select(ChangeEvent.id))) > position
    indexer.catch_up()
    assert names(search_backend) == {"db.a", "db.b", "db.c"}


def test_an_indexer_behind_the_trim_rebuilds_and_misses_nothing(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset, session: Session
) -> None:
    add_dataset("db.a")
    indexer.catch_up()
    indexer.release()
    # The indexer is down for longer than the ceiling while datasets come and change.
    add_dataset("db.b")
    add_dataset("db.c")
    add_dataset("db.d")
    report = run_retention(indexer.factory, RetentionPolicy(**KEEP_LINEAGE), now=utcnow() + dt.timedelta(days=31))
    assert report.behind == [indexer.name]
    with session_scope(indexer.factory) as s:
        assert trimmed_through(s) == report.outbox_through
        assert s.get(SearchIndexState, indexer.name).position < report.outbox_through  # type: ignore[union-attr]

    round_ = indexer.run_once()

    assert round_.skipped == "rebuilt: behind the outbox's retention"
    assert names(search_backend) == {"db.a", "db.b", "db.c", "db.d"}
    with session_scope(indexer.factory) as s:
        assert s.get(SearchIndexState, indexer.name).position >= report.outbox_through  # type: ignore[union-attr]
    indexer.catch_up()  # and from there it follows the feed as usual
    add_dataset("db.e")
    indexer.catch_up()
    assert "db.e" in names(search_backend)
