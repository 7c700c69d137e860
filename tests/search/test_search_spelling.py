"""Spelling suggestions ("did you mean") when a query's words find nothing, on every backend (sql on SQLite and
PostgreSQL, Elasticsearch on its emulator): words near the typed ones from the catalog's own vocabulary, offered only
when a search of them as the reader finds something, so a restricted dataset's words never reach a reader without
access. Exposed as ``suggestions`` (REST, GraphQL) and the UI's "Did you mean".

The catalog is a subscription business's: Kafka topics, order and customer tables, a churn feature table, and a
restricted fraud table only the risk team may find.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from headwater.auth.actions import Role
from headwater.auth.principal import Principal, PrincipalKind
from headwater.catalog import restrictions, service, sources
from headwater.catalog.models import Dataset, SourceKind
from headwater.catalog.schemas import DatasetCreate, FieldIn, Owner, SourceCreate
from headwater.search.base import SearchBackend, SearchPage, SearchQuery
from headwater.search.indexer import SearchIndexer

KAFKA = ("kafka-prod", "kafka://broker-1.shop.internal:9092")
LAKE = ("lakehouse", "iceberg://lakehouse")
ADMIN = Principal(name="root", kind=PrincipalKind.USER, roles=frozenset({Role.ADMIN}))
ANALYST = frozenset({"ann", "analysts"})
RISK = frozenset({"rita", "risk"})

# (source, name, kind, columns, description, tags)
CATALOG: list[tuple[tuple[str, str], str, str, list[str], str, list[str]]] = [
    (KAFKA, "shop.order_events", "topic", ["order_id", "customer_id", "status", "amount"],
     "Every state an order goes through, as the shop service emits it", ["commerce"]),
    (KAFKA, "billing.subscription_events", "topic", ["subscription_id", "customer_id", "plan", "event_type"],
     "Subscription starts, upgrades, downgrades and cancellations", ["billing"]),
    (KAFKA, "crm.customer_updates", "topic", ["customer_id", "email", "country"],
     "Changes to customer records made in the CRM", ["pii"]),
    (LAKE, "sales.orders", "table", ["order_id", "customer_id", "amount", "placed_at"],
     "One row per order, deduplicated", ["commerce", "certified"]),
    (LAKE, "crm.customers", "table", ["customer_id", "email", "country", "signed_up_at"],
     "Customer master data", ["pii", "gdpr"]),
    (LAKE, "billing.subscriptions", "table", ["subscription_id", "customer_id", "plan", "renews_at"],
     "The current subscription of every customer", ["billing", "certified"]),
    (LAKE, "ml.churn_features", "table", ["customer_id", "tenure_days", "orders_90d", "churn_score"],
     "Features of the model predicting who cancels next month", ["ml"]),
    (LAKE, "analytics.daily_revenue", "table", ["day", "revenue_usd", "plan"],
     "Recognised revenue per day and plan", ["kpi"]),
    (LAKE, "risk.fraud_alerts", "table", ["alert_id", "order_id", "fraud_score"],
     "Orders the scoring model flagged", ["risk"]),
]  # fmt: skip


def build(session: Session) -> dict[str, Dataset]:
    """The catalog above, through the catalog service; the fraud table restricted to the risk group."""
    for source, namespace in (KAFKA, LAKE):
        sources.create_source(session, data=SourceCreate(name=source, kind=SourceKind.MANUAL, namespace=namespace))
    made = {}
    for (source, namespace), name, kind, columns, description, tags in CATALOG:
        made[name] = service.register_dataset(
            session,
            data=DatasetCreate(
                source=source,
                namespace=namespace,
                name=name,
                kind=kind,  # type: ignore[arg-type]
                fields=[FieldIn(name=c, type="string") for c in columns],
                description=description,
                tags=tags,
                owners=[Owner(name="team:data")],
            ),
        )
        session.commit()
    restrictions.set_restriction(session, dataset=made["risk.fraud_alerts"], groups=["risk"], principal=ADMIN)
    session.commit()
    return made


@pytest.fixture
def catalog(session: Session, indexer: SearchIndexer) -> dict[str, Dataset]:
    """The subscription business's catalog, indexed."""
    made = build(session)
    indexer.catch_up()
    return made


def ask(backend: SearchBackend, q: str, audience: frozenset[str] | None = ANALYST) -> SearchPage:
    """The answer to ``q`` typed by a reader of ``audience`` (an analyst by default)."""
    return backend.search(SearchQuery(q=q, limit=20, audience=audience).validate())


def test_a_word_beyond_typo_tolerance_answers_nothing_but_did_you_mean(
    search_backend: SearchBackend, catalog: Any
) -> None:
    # Two slips in a five-letter word: typo tolerance allows one, so nothing matches; the catalog's word is offered.
    page = ask(search_backend, "chirm")
    assert (page.total, page.items, page.partial, page.searched) == (0, [], False, None)
    assert page.suggestions == ["churn"]
    assert [h.name for h in ask(search_backend, page.suggestions[0]).items] == ["ml.churn_features"]
    # Several dead words: spelled together when that finds something, else each on its own.
    assert ask(search_backend, "chirm tenr").suggestions == ["churn tenure"]
    assert ask(search_backend, "chirm cntry").suggestions == ["churn", "country"]
    # A dead word beside one that finds something through its prefix (the last word, being typed) is partial.
    page = ask(search_backend, "chirm tenur")
    assert page.partial and page.suggestions == ["tenur", "churn tenur"]
    # Words the catalog has nothing near stay an empty answer with nothing made up.
    nothing = ask(search_backend, "zebra unicorn")
    assert (nothing.total, nothing.suggestions) == (0, [])


def test_a_dead_word_next_to_live_ones_is_spelled_in_the_partial_answer(
    search_backend: SearchBackend, catalog: Any
) -> None:
    page = ask(search_backend, "chirm orders")
    assert page.partial and page.searched == "orders" and page.dropped == ["chirm"]
    # The words searched first (what the page shows), then the query spelled right, which finds every word.
    assert page.suggestions[:2] == ["orders", "churn orders"]
    assert [h.name for h in ask(search_backend, "churn orders").items] == ["ml.churn_features"]


def test_each_backend_offers_what_its_own_matching_misses(search_backend: SearchBackend, catalog: Any) -> None:
    dropped_vowels = ask(search_backend, "custmr")  # two edits in six letters
    first_letter = ask(search_backend, "vhurn")  # the key beside c
    if search_backend.name == "elasticsearch":
        # Lucene's AUTO fuzziness reaches two edits at six letters, but never forgives the first letter.
        assert dropped_vowels.total > 0 and not dropped_vowels.suggestions
        assert (first_letter.total, first_letter.suggestions) == (0, ["churn"])
    else:
        # The sql vocabulary corrects any letter within one edit, and spells one edit further.
        assert first_letter.items[0].name == "ml.churn_features"
        assert (dropped_vowels.total, dropped_vowels.suggestions) == (0, ["customer"])


def test_a_restricted_datasets_word_is_never_suggested_to_a_reader_without_access(
    search_backend: SearchBackend, catalog: Any
) -> None:
    # "fraud" is a word only the restricted table holds.
    for q in ("frod", "frod alrts", "chirm frod", "frod orders"):
        hidden = ask(search_backend, q)
        text = " ".join([*hidden.suggestions, hidden.searched or "", *sum(hidden.corrections.values(), [])])
        assert "fraud" not in text and "alert" not in text, (q, text)
        assert "risk.fraud_alerts" not in [h.name for h in hidden.items], q
    assert ask(search_backend, "chirm frod").suggestions == ["churn"]
    assert ask(search_backend, "frod").suggestions == []
    # The risk team, and an admin, are offered it.
    assert ask(search_backend, "frod", audience=RISK).suggestions == ["fraud"]
    assert ask(search_backend, "chirm frod", audience=RISK).suggestions == ["churn", "fraud"]
    assert ask(search_backend, "frod", audience=None).suggestions == ["fraud"]
    # A word that is also in a visible dataset is offered to everyone, found there only.
    page = ask(search_backend, "skor")  # two edits from score, and from shop: both found, both offered
    assert page.total == 0 and "score" in page.suggestions
    assert [h.name for h in ask(search_backend, "score").items] == ["ml.churn_features"]


@pytest.mark.anyio
async def test_did_you_mean_through_rest_graphql_and_the_ui(
    client: httpx.AsyncClient, app: FastAPI, session: Session
) -> None:
    build(session)
    app.state.search_indexer.catch_up()
    body = (await client.get("/api/v1/search", params={"q": "chirm"})).json()
    assert (body["total"], body["items"], body["partial"], body["suggestions"]) == (0, [], False, ["churn"])
    query = '{ search(query: "chirm") { ... on SearchPage { total partial suggestions } } }'
    page = (await client.post("/graphql", json={"query": query})).json()["data"]["search"]
    assert page == {"total": 0, "partial": False, "suggestions": ["churn"]}
    html = (await client.get("/ui", params={"q": "chirm"})).text
    assert "Did you mean" in html and 'href="/ui?q=churn&amp;type=dataset"' in html
    partial = (await client.get("/ui", params={"q": "chirm orders"})).text
    assert "Did you mean" not in partial and "churn orders" in partial
