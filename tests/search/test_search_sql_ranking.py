"""The sql backend's bounded relevance ranking (headwater.search.sql_ranking), on SQLite and PostgreSQL.

A tiny candidate cap stands in for a catalog where a word matches thousands of datasets: the best tiers
must still come first, filters must apply before the cap, and the page must say when totals and facet
counts cover the candidates only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from headwater.catalog import service
from headwater.catalog.schemas import DatasetUpdate
from headwater.db import make_sessionmaker
from headwater.search.base import DocumentType, MatchTier, SearchQuery
from headwater.search.indexer import SearchIndexer
from headwater.search.sql import SqlSearchBackend

AddDataset = Callable[..., Any]


@pytest.fixture
def capped(engine: Engine) -> Iterator[SqlSearchBackend]:
    """The sql backend ranking at most three candidates per query."""
    backend = SqlSearchBackend(engine, candidate_cap=3)
    yield backend
    backend.close()


@pytest.fixture
def index(engine: Engine, capped: SqlSearchBackend) -> Callable[[], int]:
    """Bring the capped backend's index up to date with the catalog (one indexer: it holds the lease)."""
    return SearchIndexer(factory=make_sessionmaker(engine), backend=capped, batch_size=50).catch_up


def test_the_exact_name_ranks_first_when_the_cap_is_reached(
    engine: Engine, capped: SqlSearchBackend, add_dataset: AddDataset, index: Callable[[], int]
) -> None:
    for i in range(6):
        add_dataset(f"analytics.title_metric_{i}", tags=["kpi"])
    add_dataset("core.title", owners=["team:core"])
    index()
    page = capped.search(SearchQuery(q="title").validate())
    assert page.items[0].name == "core.title" and page.items[0].match is MatchTier.EXACT
    assert [h.match for h in page.items[1:]] == [MatchTier.PREFIX] * (len(page.items) - 1)
    assert page.total_approximate and page.facets_approximate
    assert page.total == len(page.items) <= 4
    assert sum(c.count for c in page.facets["source"]) == page.total
    # Without the cap every match is counted exactly, and the page says so.
    full = SqlSearchBackend(engine)
    try:
        everything = full.search(SearchQuery(q="title").validate())
    finally:
        full.close()
    assert everything.total == 7 and not everything.total_approximate and not everything.facets_approximate
    assert {c.value: c.count for c in everything.facets["tag"]} == {"kpi": 6}


def test_filters_apply_before_the_cap(
    capped: SqlSearchBackend, add_dataset: AddDataset, index: Callable[[], int]
) -> None:
    for i in range(6):
        add_dataset(f"analytics.title_metric_{i}")
    add_dataset("analytics.title_private_views", tags=["pii"])
    add_dataset("raw.title_events", kind="topic")
    index()
    assert [h.name for h in capped.search(SearchQuery(q="title", filters={"tag": ["pii"]}).validate()).items] == [
        "analytics.title_private_views"
    ]
    topics = capped.search(SearchQuery(q="title", filters={"kind": ["topic"]}).validate())
    assert [h.name for h in topics.items] == ["raw.title_events"]
    assert not topics.total_approximate


def test_a_description_match_beats_column_matches_beyond_the_cap(
    capped: SqlSearchBackend, add_dataset: AddDataset, index: Callable[[], int]
) -> None:
    for i in range(6):
        add_dataset(f"finance.ledger_{i}", columns=["revenue_usd", "entry_id"])
    add_dataset("finance.totals", description="Daily revenue per market")
    index()
    page = capped.search(SearchQuery(q="revenue").validate())
    assert page.items[0].name == "finance.totals" and page.items[0].match is MatchTier.DESCRIPTION
    assert {h.match for h in page.items[1:]} == {MatchTier.COLUMNS}
    assert page.total_approximate


def test_cursor_pages_walk_the_candidates_once(
    capped: SqlSearchBackend, add_dataset: AddDataset, index: Callable[[], int]
) -> None:
    for i in range(6):
        add_dataset(f"ml.member_feature_{i}", description="member features")
    index()
    first = capped.search(SearchQuery(q="member", limit=2).validate())
    seen = [h.name for h in first.items]
    cursor = first.next_cursor
    while cursor:
        page = capped.search(SearchQuery(q="member", limit=2, cursor=cursor).validate())
        seen += [h.name for h in page.items]
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == first.total == 3


def test_typo_corrections_are_remembered_but_not_forever(
    capped: SqlSearchBackend, add_dataset: AddDataset, index: Callable[[], int]
) -> None:
    add_dataset("curated.member_profiles")
    index()
    assert capped.search(SearchQuery(q="membr profiles").validate()).corrections == {"membr": ["member"]}
    # The remembered answer serves the next query with no vocabulary lookup; once it expires, a word
    # indexed meanwhile ("membr" is a real dataset word now) is no longer corrected.
    add_dataset("raw.membr_signups")
    index()
    assert capped.search(SearchQuery(q="membr").validate()).corrections == {"membr": ["member"]}
    capped.vocabulary.ttl = 0.0
    capped.vocabulary._corrected.clear()
    assert capped.search(SearchQuery(q="membr").validate()).corrections == {}


def test_browsing_and_sorted_searches_count_up_to_the_cap(
    capped: SqlSearchBackend, add_dataset: AddDataset, index: Callable[[], int]
) -> None:
    for i in range(5):
        add_dataset(f"analytics.title_metric_{i}", tags=["kpi"])
    add_dataset("raw.events")
    index()
    browse = capped.search(SearchQuery(q=None, limit=2).validate())
    assert [h.name for h in browse.items] == ["analytics.title_metric_0", "analytics.title_metric_1"]
    assert browse.total == 3 and browse.total_approximate and browse.facets_approximate
    by_name = capped.search(SearchQuery(q="title", sort="-name", limit=10).validate())
    assert [h.name for h in by_name.items] == [f"analytics.title_metric_{i}" for i in (4, 3, 2, 1, 0)]
    assert by_name.items[0].match is MatchTier.PREFIX and by_name.items[0].score is None
    assert by_name.total_approximate
    small = capped.search(SearchQuery(q="events", sort="name").validate())
    assert small.total == 1 and not small.total_approximate and not small.facets_approximate


def test_dataset_searches_read_the_dataset_only_indexes_and_they_follow_updates_and_deletes(
    engine: Engine, session: Session, add_dataset: AddDataset
) -> None:
    """Dataset-only searches read dataset-only full-text indexes (migration 0008: a dataset FTS5 table on
    SQLite, partial GIN indexes on PostgreSQL); what they find must follow every write as the full index does."""
    backend = SqlSearchBackend(engine)
    indexer = SearchIndexer(factory=make_sessionmaker(engine), backend=backend, include_columns=True, batch_size=50)
    try:
        orders = add_dataset("sales.orders", columns=["customer_region"], description="weekly figures")
        add_dataset("sales.returns", columns=["customer_region"], description="weekly returns")
        indexer.catch_up()

        def datasets(q: str) -> list[str]:
            page = backend.search(SearchQuery(q=q).validate())
            assert all(h.type is DocumentType.DATASET for h in page.items)
            return sorted(h.name for h in page.items)

        assert datasets("customer regi") == ["sales.orders", "sales.returns"]  # a column word, as a prefix
        assert datasets("weekly figures") == ["sales.orders"]
        columns = backend.search(SearchQuery(q="customer_region", types=[DocumentType.COLUMN]).validate())
        assert {h.type for h in columns.items} == {DocumentType.COLUMN} and columns.total == 2
        both = backend.search(SearchQuery(q="orders", types=[DocumentType.DATASET, DocumentType.COLUMN]).validate())
        assert {h.type for h in both.items} == {DocumentType.DATASET, DocumentType.COLUMN}

        service.update_dataset_metadata(
            session, dataset_id=orders.id, data=DatasetUpdate(description="monthly totals"), expected_revision=None
        )
        session.commit()
        indexer.catch_up()
        assert datasets("weekly") == ["sales.returns"]  # the old words left the dataset index
        assert datasets("monthly totals") == ["sales.orders"]
        assert datasets("orders") == ["sales.orders"]  # words the old and new text share are still there

        service.delete_dataset(session, dataset_id=orders.id, reason="gone", expected_revision=None)
        session.commit()
        indexer.catch_up()
        assert datasets("customer") == ["sales.returns"]
        assert datasets("monthly") == []
    finally:
        indexer.release()
        backend.close()


def test_a_word_matching_more_documents_than_the_gin_bound_still_ranks_the_exact_name_first(
    engine: Engine, capped: SqlSearchBackend, add_dataset: AddDataset, index: Callable[[], int]
) -> None:
    """PostgreSQL's GIN scans return about ten times the cap (here 30) of a common word's documents, a random part
    of them past that; the exact name still comes first (the names step reads the name index), the page holds the cap
    and says its totals are approximate."""
    for i in range(70):
        add_dataset(f"analytics.title_metric_{i:02d}")
    add_dataset("core.title")
    index()
    statements: list[str] = []

    def keep(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(capped.read_engine, "before_cursor_execute", keep)
    try:
        page = capped.search(SearchQuery(q="title").validate())
    finally:
        event.remove(capped.read_engine, "before_cursor_execute", keep)
    assert page.items[0].name == "core.title" and page.items[0].match is MatchTier.EXACT
    assert len(page.items) == 3 and all(h.name.startswith("analytics.title_metric_") for h in page.items[1:])
    assert page.total_approximate and page.facets_approximate
    bounded = [s for s in statements if "gin_fuzzy_search_limit" in s]
    if engine.dialect.name == "postgresql":
        assert bounded == ["SET LOCAL gin_fuzzy_search_limit = 30"]
    else:
        assert bounded == []
