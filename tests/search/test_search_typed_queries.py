"""Search people can type into, on every backend (sql on SQLite and PostgreSQL, Elasticsearch on its emulator):
inline filters, phrases and exclusions; a corrected typo's exact-name rank; the best partial matches when every
word together finds nothing; and one tie-break order, so the first hit never depends on the database.

The catalog is a streaming platform's: Kafka topics, Iceberg tables and a few warehouse tables, with the
descriptions, tags and owners such a catalog carries.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from headwater.auth.actions import Role
from headwater.auth.principal import Principal, PrincipalKind
from headwater.catalog import restrictions, service, sources
from headwater.catalog.models import Dataset, SourceKind
from headwater.catalog.schemas import DatasetCreate, FieldIn, Owner, SourceCreate
from headwater.search.base import MatchTier, SearchBackend, SearchPage, SearchQuery
from headwater.search.indexer import SearchIndexer
from headwater.search.query_syntax import parse_syntax

KAFKA = ("kafka-prod", "kafka://kafka-prod.internal:9092")
ICEBERG = ("lakehouse", "iceberg://lakehouse")
WAREHOUSE = ("warehouse", "postgres://dwh.internal:5432")
ADMIN = Principal(name="root", kind=PrincipalKind.USER, roles=frozenset({Role.ADMIN}))
ANALYST = frozenset({"ann", "analysts"})

# (source, name, kind, format, columns, description, tags, owners)
CATALOG: list[tuple[tuple[str, str], str, str, str | None, list[str], str, list[str], list[str]]] = [
    (KAFKA, "playback.events", "topic", "avro", ["event_ts", "member_id", "title_id", "action"],
     "Play, pause, seek and stop events from every device", ["streaming"], ["team:playback"]),
    (KAFKA, "playback.errors", "topic", "avro", ["event_ts", "device_id", "error_code"],
     "Player errors and rebuffering", ["streaming"], ["team:playback"]),
    (KAFKA, "billing.subscription_events", "topic", "avro", ["member_id", "plan", "event_type"],
     "Every change of a member's plan", ["billing"], ["alice"]),
    (KAFKA, "identity.logins", "topic", "json", ["member_id", "email", "ip_address"],
     "Sign-in attempts with the address they came from", ["pii", "security"], ["team:identity"]),
    (KAFKA, "shop.orders", "topic", "avro", ["order_id", "member_id", "amount"],
     "Orders as the shop service emits them", ["commerce"], ["bob"]),
    (KAFKA, "marketing.email_sends", "topic", "avro", ["campaign_id", "email_template"],
     "Every marketing e-mail sent", ["marketing"], ["carol"]),
    (ICEBERG, "shop.orders", "table", "iceberg", ["order_id", "member_id", "amount", "order_date"],
     "Orders, deduplicated and partitioned by day", ["commerce", "certified"], ["bob"]),
    (ICEBERG, "billing.subscriptions", "table", "iceberg", ["member_id", "plan", "started_at", "renews_at"],
     "The current subscription of every member", ["billing", "certified"], ["alice"]),
    (ICEBERG, "analytics.subscriptions_daily", "table", "iceberg", ["day", "plan", "active"],
     "Active subscriptions per plan per day", ["kpi"], ["alice"]),
    (ICEBERG, "billing.subscription_cancellations", "table", "iceberg", ["member_id", "cancelled_at", "reason"],
     "One row per cancelled subscription, with the reason given", ["billing"], ["alice"]),
    (ICEBERG, "crm.customers", "table", "iceberg", ["member_id", "email", "country", "birth_date"],
     "Customer master data", ["pii", "gdpr"], ["team:crm"]),
    (ICEBERG, "crm.customer_segments", "table", "iceberg", ["member_id", "segment"],
     "Marketing segments of customers", ["marketing"], ["team:crm"]),
    (ICEBERG, "identity.accounts", "table", "iceberg", ["account_id", "email_address", "created_at"],
     "Accounts and their login e-mail", ["pii"], ["team:identity"]),
    (ICEBERG, "growth.daily_signups", "table", "iceberg", ["day", "country", "signups"],
     "New member signups per day and country", ["kpi"], ["dave"]),
    (ICEBERG, "analytics.daily_active_members", "table", "iceberg", ["day", "members"],
     "Members who played anything that day", ["kpi"], ["erin"]),
    (ICEBERG, "analytics.active_devices_daily", "table", "iceberg", ["day", "device_type", "devices"],
     "Devices seen per day", ["kpi"], ["erin"]),
    (ICEBERG, "content.titles", "table", "iceberg", ["title_id", "title_name", "genre", "release_year"],
     "Every film and series in the catalogue", ["content"], ["team:content"]),
    (ICEBERG, "content.title_daily_views", "table", "iceberg", ["title_id", "day", "views"],
     "Views per title per day", ["kpi", "content"], ["team:content"]),
    (ICEBERG, "finance.chargebacks", "table", "iceberg", ["payment_id", "amount", "reason"],
     "Disputed card payments reversed by the bank", ["finance"], ["frank"]),
    (WAREHOUSE, "finance.revenue_monthly", "table", None, ["month", "revenue_usd"],
     "Recognised revenue per month", ["finance", "kpi"], ["frank"]),
    (WAREHOUSE, "accounting.adjustments", "table", None, ["entry_id", "amount"],
     "Manual journal adjustments booked by accounting at month end, including refunds issued by support",
     ["finance"], ["frank"]),
    (WAREHOUSE, "warehouse.zone_totals", "table", None, ["zone", "total"],
     "refunds", ["finance"], ["frank"]),
    (WAREHOUSE, "support.tickets", "table", None, ["ticket_id", "member_id", "topic"],
     "Support tickets opened by members", ["support"], ["gina"]),
]  # fmt: skip


def build(session: Session) -> dict[tuple[str, str], Dataset]:
    """The catalog above, registered through the catalog service, keyed by (namespace, name)."""
    for source, namespace in (KAFKA, ICEBERG, WAREHOUSE):  # manual sources, one per system
        sources.create_source(session, data=SourceCreate(name=source, kind=SourceKind.MANUAL, namespace=namespace))
    made = {}
    for (source, namespace), name, kind, fmt, columns, description, tags, owners in CATALOG:
        made[(namespace, name)] = service.register_dataset(
            session,
            data=DatasetCreate(
                source=source,
                namespace=namespace,
                name=name,
                kind=kind,  # type: ignore[arg-type]
                format=fmt,
                fields=[FieldIn(name=c, type="string") for c in columns],
                description=description,
                tags=tags,
                owners=[Owner(name=o) for o in owners],
            ),
        )
        session.commit()
    return made


@pytest.fixture
def catalog(session: Session, indexer: SearchIndexer) -> dict[tuple[str, str], Dataset]:
    """The streaming platform's catalog, indexed."""
    made = build(session)
    indexer.catch_up()
    return made


def ask(backend: SearchBackend, q: str, **kwargs: Any) -> SearchPage:
    """The answer to a query typed as ``q``."""
    return backend.search(SearchQuery(q=q, limit=50, **kwargs).validate())


def names(backend: SearchBackend, q: str, **kwargs: Any) -> list[str]:
    """The hits' names, in order."""
    return [hit.name for hit in ask(backend, q, **kwargs).items]


def test_the_syntax_reads_filters_phrases_exclusions_and_leaves_unknown_keys_as_words() -> None:
    typed = parse_syntax('tag:pii owner:"team:crm" kind:Topic "daily active" -errors kafka://broker:9092 who:me')
    assert typed.filters == {"tag": ["pii"], "owner": ["team:crm"], "kind": ["topic"]}
    assert typed.phrases == ["daily active"]
    assert typed.excluded == ["errors"]
    assert typed.words == ["daily active", "kafka://broker:9092", "who:me"]
    query = SearchQuery(q="tag:pii tag:gdpr email", filters={"owner": ["team:crm"]}).validate()
    assert (query.q, query.filters) == ("email", {"owner": ["team:crm"], "tag": ["pii", "gdpr"]})
    assert SearchQuery(q="owner:alice").validate().q is None  # only a filter: browse what it keeps


def test_inline_filters_narrow_like_the_filter_parameters(search_backend: SearchBackend, catalog: Any) -> None:
    assert set(names(search_backend, "tag:pii email")) == {"crm.customers", "identity.accounts", "identity.logins"}
    assert set(names(search_backend, "owner:alice")) == {
        "billing.subscriptions",
        "billing.subscription_events",
        "billing.subscription_cancellations",
        "analytics.subscriptions_daily",
    }
    topics = ask(search_backend, "kind:topic")
    assert topics.total == 6 and {h.kind for h in topics.items} == {"topic"}
    assert names(search_backend, "kind:topic playback") == ["playback.errors", "playback.events"]
    assert names(search_backend, "format:avro tag:commerce orders") == ["shop.orders"]
    orders = ask(search_backend, f"namespace:{KAFKA[1]} orders")
    assert [(h.namespace, h.name) for h in orders.items] == [(KAFKA[1], "shop.orders")]
    assert names(search_backend, "source:warehouse refunds") == ["accounting.adjustments", "warehouse.zone_totals"]
    # Typed filters and parameters combine: OR within a facet, AND across facets.
    both = set(names(search_backend, "tag:gdpr", filters={"tag": ["security"]}))
    assert both == {"crm.customers", "identity.logins"}
    assert names(search_backend, "tag:pii owner:team:crm") == ["crm.customers"]


def test_phrases_exclusions_and_unknown_keys(search_backend: SearchBackend, catalog: Any) -> None:
    assert set(names(search_backend, "daily active")) >= {
        "analytics.daily_active_members",
        "analytics.active_devices_daily",
    }
    assert names(search_backend, '"daily active"') == ["analytics.daily_active_members"]
    assert names(search_backend, '"per title per day"') == ["content.title_daily_views"]
    assert names(search_backend, "playback -errors") == ["playback.events"]
    # An unknown key is plain words: `member:email` searches the words member and email.
    assert names(search_backend, "member:email") == names(search_backend, "member email")
    assert names(search_backend, "member:email")


def test_a_typo_corrected_to_a_name_ranks_that_dataset_first(search_backend: SearchBackend, catalog: Any) -> None:
    page = ask(search_backend, "subscriptons")
    assert page.items[0].name == "billing.subscriptions"
    assert page.items[0].match is MatchTier.EXACT
    # Without the correction, the alphabetically first name holding the word would come first.
    assert "analytics.subscriptions_daily" in [h.name for h in page.items[1:]]
    assert names(search_backend, "billing.subscriptons")[0] == "billing.subscriptions"
    # A name's words typed apart are that name too (the words in another order are not).
    typed = ask(search_backend, "title daily views").items[0]
    assert (typed.name, typed.match) == ("content.title_daily_views", MatchTier.EXACT)
    assert ask(search_backend, "daily title views").items[0].match is not MatchTier.EXACT


def test_one_tie_break_order_on_every_backend(search_backend: SearchBackend, catalog: Any) -> None:
    # Both mention refunds in their description only (one tier); engines score the short description higher,
    # but every backend orders a tier by name, then dataset id.
    page = ask(search_backend, "refunds")
    assert [h.name for h in page.items] == ["accounting.adjustments", "warehouse.zone_totals"]
    assert {h.match for h in page.items} == {MatchTier.DESCRIPTION}
    # One name in two namespaces (the topic and the Iceberg table): the older dataset first.
    topic, table = catalog[(KAFKA[1], "shop.orders")], catalog[(ICEBERG[1], "shop.orders")]
    exact = [(h.dataset_id, h.match) for h in ask(search_backend, "shop.orders").items[:2]]
    assert exact == [(topic.id, MatchTier.EXACT), (table.id, MatchTier.EXACT)]
    # A tier of many hits: sorted by name, and pages walk it in that order.
    hits = ask(search_backend, "member_id").items
    for tier in {h.match for h in hits}:
        same = [(h.name.lower(), h.dataset_id) for h in hits if h.match is tier]
        assert same == sorted(same), tier
    walked: list[str] = []
    cursor = None
    while True:
        page = search_backend.search(SearchQuery(q="member_id", limit=3, cursor=cursor).validate())
        walked += [h.key for h in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert walked == [h.key for h in hits]


def test_words_nobody_wrote_answer_the_best_partial_matches(search_backend: SearchBackend, catalog: Any) -> None:
    page = ask(search_backend, "who cancelled")
    assert page.partial and page.dropped == ["who"] and page.searched == "cancelled"
    assert page.items[0].name == "billing.subscription_cancellations"
    assert page.suggestions[0] == "cancelled"
    # Two words that match, but never together: the subset finding the most, the other offered.
    page = ask(search_backend, "refunds genre")
    assert page.partial and page.searched == "refunds" and page.dropped == ["genre"]
    assert page.suggestions == ["refunds", "genre"]
    # A partial answer pages like any other: the typed query with the cursor it handed out.
    first = search_backend.search(SearchQuery(q="who refunds", limit=1).validate())
    second = search_backend.search(SearchQuery(q="who refunds", limit=1, cursor=first.next_cursor).validate())
    assert first.partial and second.partial and second.next_cursor is None
    assert [h.name for h in first.items + second.items] == ["accounting.adjustments", "warehouse.zone_totals"]
    # Words typed apart that the catalog writes as one.
    page = ask(search_backend, "sign ups")
    assert not page.partial and page.searched == "signups" and page.suggestions == ["signups"]
    assert page.items[0].name == "growth.daily_signups"
    # A full match is never partial; nothing at all stays nothing, with no made-up suggestion.
    assert not ask(search_backend, "cancelled subscription").partial
    nothing = ask(search_backend, "zebra unicorn")
    assert nothing.total == 0 and not nothing.partial and nothing.suggestions == []


def test_partial_matches_and_suggestions_never_reveal_a_restricted_dataset(
    search_backend: SearchBackend, catalog: Any, session: Session, indexer: SearchIndexer
) -> None:
    chargebacks = catalog[(ICEBERG[1], "finance.chargebacks")]
    restrictions.set_restriction(session, dataset=chargebacks, groups=["finance"], principal=ADMIN)
    session.commit()
    indexer.catch_up()
    finance = frozenset({"fay", "finance"})
    for q in ("who disputed", "charge backs", "chargebaks", "disputed reversed bank"):
        hidden = ask(search_backend, q, audience=ANALYST)
        shown = [h.name for h in hidden.items]
        assert "finance.chargebacks" not in shown, q
        text = " ".join([*hidden.suggestions, hidden.searched or "", *sum(hidden.corrections.values(), [])])
        assert "chargeback" not in text and "disputed" not in text, (q, text)
        assert ask(search_backend, q, audience=finance).items[0].name == "finance.chargebacks", q
    partial = ask(search_backend, "who disputed", audience=finance)
    assert partial.partial and partial.dropped == ["who"]
    assert ask(search_backend, "who disputed").items[0].name == "finance.chargebacks"  # an admin sees all
