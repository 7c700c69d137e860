"""Restricted datasets on every search backend (sql on SQLite and PostgreSQL, Elasticsearch on its emulator): a
reader outside a dataset's audience never finds it or its columns, by words, browsing, facets, counts or
suggestions, and pages stay full because the filter is in the query; a reader in it, and an admin, find it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from headwater.auth.actions import Role
from headwater.auth.principal import Principal, PrincipalKind
from headwater.catalog import restrictions
from headwater.catalog.models import Dataset
from headwater.search.base import DocumentType, SearchBackend, SearchQuery
from headwater.search.indexer import SearchIndexer

AddDataset = Callable[..., Dataset]
ADMIN = Principal(name="root", kind=PrincipalKind.USER, roles=frozenset({Role.ADMIN}))
ANALYST = frozenset({"ann", "analysts"})
READER = frozenset({"pia", "analysts", "pii-readers"})


def _shop(add: AddDataset, session: Session) -> dict[str, Dataset]:
    made = {
        "customers": add("shop.public.customers", columns=["email", "country"], tags=["pii"], owners=["team-crm"]),
        "daily": add("shop.marts.customers_daily", columns=["country"], tags=["mart"]),
        "dashboard": add("shop.marts.customers_dashboard", columns=["country"], tags=["mart"]),
        "orders": add("shop.public.orders", columns=["customer_email"], description="orders of customers"),
    }
    restrictions.set_restricting_tag(session, tag="pii", groups=["pii-readers"], principal=ADMIN)
    restrictions.set_restriction(session, dataset=made["orders"], groups=["finance"], principal=ADMIN)
    session.commit()
    return made


def _names(backend: SearchBackend, audience: frozenset[str] | None, **query: Any) -> list[str]:
    return [hit.name for hit in backend.search(SearchQuery(audience=audience, **query).validate()).items]


def test_a_reader_outside_the_audience_never_finds_a_restricted_dataset_or_its_columns(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset, session: Session
) -> None:
    _shop(add_dataset, session)
    indexer.catch_up()
    visible = {"shop.marts.customers_daily", "shop.marts.customers_dashboard"}
    assert set(_names(search_backend, ANALYST, q="customers")) == visible
    assert set(_names(search_backend, READER, q="customers")) == {*visible, "shop.public.customers"}
    assert set(_names(search_backend, None, q="customers")) == {*visible, "shop.public.customers", "shop.public.orders"}
    columns = _names(search_backend, ANALYST, q="email", types=[DocumentType.COLUMN])
    assert columns == []
    assert set(_names(search_backend, READER, q="email", types=[DocumentType.COLUMN])) == {"email"}


def test_browsing_pages_stay_full_and_counts_and_facets_leave_hidden_datasets_out(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset, session: Session
) -> None:
    _shop(add_dataset, session)
    for i in range(4):
        add_dataset(f"shop.zz.extra_{i}", columns=["x"])
    indexer.catch_up()
    first = search_backend.search(SearchQuery(limit=3, sort="name", audience=ANALYST).validate())
    assert len(first.items) == 3 and first.total == 6
    second = search_backend.search(
        SearchQuery(limit=3, sort="name", cursor=first.next_cursor, audience=ANALYST).validate()
    )
    shown = [h.name for h in (*first.items, *second.items)]
    assert len(shown) == 6 and "shop.public.customers" not in shown and "shop.public.orders" not in shown
    tags = {f.value for f in first.facets.get("tag", [])}
    assert "pii" not in tags and "mart" in tags
    everything = search_backend.search(SearchQuery(limit=3, sort="name").validate())
    assert everything.total == 8


def test_suggestions_leave_hidden_datasets_out_and_still_fill_the_list(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset, session: Session
) -> None:
    _shop(add_dataset, session)
    indexer.catch_up()
    types = [DocumentType.DATASET]
    assert search_backend.suggest("shop.public", limit=5, types=types, audience=ANALYST) == []
    as_reader = search_backend.suggest("shop.public", limit=5, types=types, audience=READER)
    assert [s.text for s in as_reader] == ["shop.public.customers"]
    as_admin = search_backend.suggest("shop.public", limit=5, types=types)
    assert {s.text for s in as_admin} == {"shop.public.customers", "shop.public.orders"}
    shop = search_backend.suggest("shop", limit=2, types=types, audience=ANALYST)
    assert len(shop) == 2 and {s.text for s in shop} <= {"shop.marts.customers_daily", "shop.marts.customers_dashboard"}


def test_lifting_a_restriction_makes_the_dataset_findable_once_indexed(
    search_backend: SearchBackend, indexer: SearchIndexer, add_dataset: AddDataset, session: Session
) -> None:
    made = _shop(add_dataset, session)
    indexer.catch_up()
    assert "shop.public.orders" not in _names(search_backend, ANALYST, q="orders")
    orders = session.get(Dataset, made["orders"].id)
    assert orders is not None
    restrictions.clear_restriction(session, dataset=orders, principal=ADMIN)
    session.commit()
    indexer.catch_up()
    assert "shop.public.orders" in _names(search_backend, ANALYST, q="orders")
