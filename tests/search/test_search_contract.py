"""One behaviour suite for every search backend: sql on SQLite and PostgreSQL, Elasticsearch on the emulator.

Relevance is checked by order on clear-cut cases (the emulator's scores are not Lucene's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from headwater.catalog import service
from headwater.catalog.schemas import DatasetUpdate, FieldIn
from headwater.search.base import DocumentType, MatchTier, SearchBackend, SearchQuery
from headwater.search.indexer import SearchIndexer

AddDataset = Callable[..., Any]


def names(backend: SearchBackend, q: str | None, **kwargs: object) -> list[str]:
    """The names of every hit of a query, in order."""
    page = backend.search(SearchQuery(q=q, limit=100, **kwargs).validate())  # type: ignore[arg-type]
    return [hit.name for hit in page.items]


def build_catalog(add: AddDataset) -> None:
    """A small catalog where each relevance case has one clear right answer."""
    add(
        "analytics.title_daily_views",
        columns=["title_id", "view_date", "views"],
        description="Views per title per day",
        tags=["kpi"],
        owners=["team:analytics"],
        format="iceberg",
    )
    add("analytics.title_daily_views_backup", columns=["title_id", "views"], description="Old copy", format="iceberg")
    add("raw.view_events", columns=["event_id", "title_id"], description="Feeds title_daily_views every night")
    add(
        "curated.member_profiles",
        columns=[("email", "Member e-mail address"), "device_os_version", "country"],
        description="Accounts and profiles",
        tags=["pii", "gdpr"],
        owners=["team:membership"],
        format="parquet",
    )
    add("finance.revenue_daily", columns=["amount"], description="Daily totals", owners=["team:finance"])
    add("finance.ledger", columns=["entry_id"], description="Every revenue and cost entry", owners=["team:finance"])
    add("finance.payments", columns=["revenue_usd", "payment_id"], description="Card payments")
    add(
        "playback.events",
        columns=["event_ts", "member_id"],
        description="Play, pause and stop",
        kind="topic",
        format="avro",
    )


def test_exact_name_match_ranks_first(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset
) -> None:
    build_catalog(add_dataset)
    indexer.catch_up()
    for query in ("title_daily_views", "analytics.title_daily_views", "Analytics.Title_Daily_Views"):
        page = search_backend.search(SearchQuery(q=query).validate())
        assert page.items[0].name == "analytics.title_daily_views", query
        assert page.items[0].match is MatchTier.EXACT
    # The longer name (prefix) comes next, then the dataset that only mentions it in its description.
    found = names(search_backend, "title_daily_views")
    assert found[:3] == ["analytics.title_daily_views", "analytics.title_daily_views_backup", "raw.view_events"]


def test_name_beats_description_beats_columns(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset
) -> None:
    build_catalog(add_dataset)
    indexer.catch_up()
    page = search_backend.search(SearchQuery(q="revenue", limit=10).validate())
    assert [h.name for h in page.items] == ["finance.revenue_daily", "finance.ledger", "finance.payments"]
    assert [h.match for h in page.items] == [MatchTier.PREFIX, MatchTier.DESCRIPTION, MatchTier.COLUMNS]


def test_a_column_name_finds_its_table(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset
) -> None:
    build_catalog(add_dataset)
    indexer.catch_up()
    assert names(search_backend, "device_os_version") == ["curated.member_profiles"]
    columns = search_backend.search(SearchQuery(q="device_os_version", types=[DocumentType.COLUMN]).validate())
    assert [(h.name, h.dataset_name, h.type) for h in columns.items] == [
        ("device_os_version", "curated.member_profiles", DocumentType.COLUMN)
    ]
    # A column's description is searchable too.
    assert "curated.member_profiles" in names(search_backend, "e-mail address")


def test_a_typo_still_finds_the_dataset(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset
) -> None:
    build_catalog(add_dataset)
    indexer.catch_up()
    assert names(search_backend, "tilte_daily_veiws")[0] == "analytics.title_daily_views"
    assert names(search_backend, "membr profiles")[0] == "curated.member_profiles"


def test_prefix_matching_for_search_as_you_type(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset
) -> None:
    build_catalog(add_dataset)
    indexer.catch_up()
    assert names(search_backend, "analytics.title_da")[:2] == [
        "analytics.title_daily_views",
        "analytics.title_daily_views_backup",
    ]
    assert names(search_backend, "playb")[0] == "playback.events"


def test_filters_and_facet_counts(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset
) -> None:
    build_catalog(add_dataset)
    indexer.catch_up()
    assert names(search_backend, None, filters={"tag": ["pii"]}) == ["curated.member_profiles"]
    assert names(search_backend, "title", filters={"tag": ["pii"]}) == []
    assert sorted(names(search_backend, None, filters={"owner": ["team:finance"]})) == [
        "finance.ledger",
        "finance.revenue_daily",
    ]
    assert names(search_backend, "events", filters={"kind": ["topic"], "format": ["avro"]}) == ["playback.events"]
    page = search_backend.search(SearchQuery(q="title").validate())
    facets = {facet: {c.value: c.count for c in counts} for facet, counts in page.facets.items()}
    assert page.total == 3
    assert facets["format"] == {"iceberg": 2}
    assert facets["tag"] == {"kpi": 1}
    assert facets["owner"] == {"team:analytics": 1}
    assert facets["source"] == {"manual": 3}
    assert facets["kind"] == {"table": 3}
    everything = search_backend.search(SearchQuery(q=None).validate())
    assert everything.total == 8
    kinds = {c.value: c.count for c in everything.facets["kind"]}
    assert kinds == {"table": 7, "topic": 1}


def test_highlights_show_what_matched(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset
) -> None:
    build_catalog(add_dataset)
    indexer.catch_up()
    hit = search_backend.search(SearchQuery(q="title_daily_views").validate()).items[0]
    assert "<mark>title" in hit.highlights["name"][0]  # Elasticsearch marks a matched phrase as one span
    hit = search_backend.search(SearchQuery(q="revenue").validate()).items[1]
    assert "<mark>revenue</mark>" in hit.highlights["description"][0].lower()


def test_cursor_pages_cover_every_hit_once(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset
) -> None:
    build_catalog(add_dataset)
    indexer.catch_up()
    for q, sort in (("title", "relevance"), (None, "name"), (None, "-updated_at"), ("finance", "-name")):
        expected = names(search_backend, q, sort=sort)
        seen: list[str] = []
        cursor = None
        while True:
            page = search_backend.search(SearchQuery(q=q, sort=sort, limit=2, cursor=cursor).validate())
            seen += [h.name for h in page.items]
            assert page.total == len(expected)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected, (q, sort)
    assert names(search_backend, None, sort="name") == sorted(names(search_backend, None, sort="name"))


def test_excluded_words(search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset) -> None:
    build_catalog(add_dataset)
    indexer.catch_up()
    assert "analytics.title_daily_views_backup" not in names(search_backend, "title_daily_views -backup")
    assert "analytics.title_daily_views" in names(search_backend, "title_daily_views -backup")


def test_suggest_completes_names(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset
) -> None:
    build_catalog(add_dataset)
    indexer.catch_up()
    found = search_backend.suggest("analytics.ti", limit=5, types=[DocumentType.DATASET])
    assert [s.text for s in found] == ["analytics.title_daily_views", "analytics.title_daily_views_backup"]
    assert search_backend.suggest("revenue", limit=5, types=[DocumentType.DATASET])[0].text == "finance.revenue_daily"
    columns = search_backend.suggest("device", limit=5, types=[DocumentType.COLUMN])
    assert [(s.text, s.type) for s in columns] == [("device_os_version", DocumentType.COLUMN)]


def test_changes_reach_the_index(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset, session: Session
) -> None:
    build_catalog(add_dataset)
    indexer.catch_up()
    ledger = service.get_dataset_by_name(session, namespace="manual", name="finance.ledger")
    service.update_dataset_metadata(
        session, dataset_id=ledger.id, data=DatasetUpdate(tags=["certified"]), expected_revision=None
    )
    payments = service.get_dataset_by_name(session, namespace="manual", name="finance.payments")
    service.replace_manual_schema(
        session, dataset_id=payments.id, fields=[FieldIn(name="payment_id", type="long")], expected_revision=None
    )
    backup = service.get_dataset_by_name(session, namespace="manual", name="analytics.title_daily_views_backup")
    service.delete_dataset(session, dataset_id=backup.id, reason="obsolete", expected_revision=None)
    session.commit()
    indexer.catch_up()
    assert names(search_backend, None, filters={"tag": ["certified"]}) == ["finance.ledger"]
    assert "finance.payments" not in names(search_backend, "revenue")
    gone = search_backend.search(SearchQuery(q="revenue_usd", types=[DocumentType.COLUMN]).validate())
    assert "revenue_usd" not in [h.name for h in gone.items]
    assert gone.partial  # what is left matches "revenue" alone, and says so
    assert "analytics.title_daily_views_backup" not in names(search_backend, "title")
    counts = search_backend.count_documents()
    assert counts["dataset"] == 7
    assert counts["column"] == 13


def test_replaying_the_outbox_is_idempotent(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset, engine: object
) -> None:
    build_catalog(add_dataset)
    assert indexer.catch_up() == 8
    before = search_backend.count_documents()
    first = names(search_backend, "title")
    from sqlalchemy import update

    from headwater.db import session_scope
    from headwater.search.models import SearchIndexState

    with session_scope(indexer.factory) as s:
        s.execute(update(SearchIndexState).values(position=0))
    assert indexer.catch_up() == 8
    assert search_backend.count_documents() == before == {"dataset": 8, "column": 16}
    assert names(search_backend, "title") == first
