"""The Iceberg connector through pyiceberg's REST catalog client, against the Iceberg REST stand-in (no real
REST catalog server can be installed here; see iceberg_rest_standin.py), on both databases: the same
datasets as through the SQL catalog, OAuth client credentials, paginated listings, faults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from iceberg_rest_standin import IcebergRestStandIn
from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog import events, service, sources, sync
from headwater.catalog.models import SourceKind, SourceStatus
from headwater.catalog.schemas import SourceCreate
from headwater.catalog.sync_models import SyncMode, SyncRun
from headwater.db import session_scope
from headwater.secrets import KeyRing, ReferencePolicy, SecretVault, generate_key

pytestmark = pytest.mark.integration  # every test here talks to a server it starts

SQL_NS = "iceberg://lake-sql"
REST_NS = "iceberg://lake-rest"
TABLES = ["analytics.title_views", "analytics.titles", "raw.clicks"]


# The vault of a server that allows the tests' HW_TEST_* variables as secret references.
VAULT = SecretVault(policy=ReferencePolicy(allowed_env=("HW_TEST_*",)), keys=KeyRing(text=generate_key()))


def _run(factory: sessionmaker[Session], **kwargs: Any) -> SyncRun:
    return sync.run_sync(factory, vault=VAULT, **kwargs)


@pytest.fixture
def rest_catalog(warehouse: Any) -> Iterator[IcebergRestStandIn]:
    """The REST stand-in in front of the test warehouse, asking for OAuth client credentials."""
    standin = IcebergRestStandIn(warehouse.catalog, client_id="headwater", client_secret="s3cret").start()
    yield standin
    standin.stop()


def _add(factory: sessionmaker[Session], name: str, namespace: str, config: dict[str, Any], **secrets: str) -> None:
    with session_scope(factory) as session:
        sources.create_source(
            session,
            vault=VAULT,
            data=SourceCreate(name=name, kind=SourceKind.ICEBERG, namespace=namespace, config=config, secrets=secrets),
        )


def _rest_config(standin: IcebergRestStandIn, **properties: str) -> dict[str, Any]:
    properties = {"oauth2-server-uri": f"{standin.url}/v1/oauth/tokens", **properties}
    return {"type": "rest", "uri": standin.url, "catalog_name": "lake", "properties": properties}


def _seen(factory: sessionmaker[Session], namespace: str, name: str) -> dict[str, Any]:
    with session_scope(factory) as session:
        dataset = service.get_dataset_by_name(session, namespace=namespace, name=name)
        versions = service.list_schema_versions(session, dataset_id=dataset.id, newest_first=False).items
        return {
            "fields": [(f.path, f.type, f.field_id, f.nullable, f.source_description) for f in dataset.fields],
            "versions": [(v.fingerprint, v.diff, v.source_schema_id) for v in versions],
            "partitioning": dataset.partitioning,
            "location": dataset.location,
            "properties": dataset.source_properties,
            "description": dataset.source_description,
        }


def test_a_rest_catalog_syncs_the_same_datasets_as_the_sql_catalog_behind_it(
    sync_factory: sessionmaker[Session], warehouse: Any, rest_catalog: IcebergRestStandIn
) -> None:
    warehouse.rename_and_widen()
    _add(sync_factory, "lake-sql", SQL_NS, warehouse.config())
    # One item per listing page, so pyiceberg follows next-page-token through every namespace and table list.
    _add(
        sync_factory,
        "lake-rest",
        REST_NS,
        _rest_config(rest_catalog, **{"rest-page-size": "1"}),
        credential="headwater:s3cret",
    )
    by_sql = _run(sync_factory, source_name="lake-sql")
    by_rest = _run(sync_factory, source_name="lake-rest")

    assert (by_rest.status, by_rest.added, by_rest.failed) == ("succeeded", 3, 0)
    assert by_sql.added == 3
    for name in TABLES:
        assert _seen(sync_factory, REST_NS, name) == _seen(sync_factory, SQL_NS, name)
    views = _seen(sync_factory, REST_NS, "analytics.title_views")
    assert views["versions"][-1][1]["renamed"] == [{"field_id": 4, "old_path": "views", "new_path": "view_count"}]
    assert views["properties"]["namespace.owner"] == "team:analytics"
    assert "POST /v1/oauth/tokens" in rest_catalog.requests
    assert any("pageToken=" in r or r.endswith("/tables") for r in rest_catalog.requests)


def test_rest_listings_follow_page_tokens(rest_catalog: IcebergRestStandIn) -> None:
    from pyiceberg.catalog.rest import RestCatalog

    catalog = RestCatalog(
        "lake",
        uri=rest_catalog.url,
        credential="headwater:s3cret",
        **{"rest-page-size": "1", "oauth2-server-uri": f"{rest_catalog.url}/v1/oauth/tokens"},
    )
    assert sorted(catalog.list_tables("analytics")) == [("analytics", "title_views"), ("analytics", "titles")]
    assert sorted(catalog.list_namespaces()) == [("analytics",), ("raw",)]


def test_wrong_rest_credentials_fail_the_sync_and_delete_nothing(
    sync_factory: sessionmaker[Session], rest_catalog: IcebergRestStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_ICEBERG_CREDENTIAL", "headwater:s3cret")
    _add(sync_factory, "lake-rest", REST_NS, _rest_config(rest_catalog), credential="env:HW_TEST_ICEBERG_CREDENTIAL")
    assert _run(sync_factory, source_name="lake-rest").added == 3

    monkeypatch.setenv("HW_TEST_ICEBERG_CREDENTIAL", "headwater:guessed-0451")
    run = _run(sync_factory, source_name="lake-rest")
    assert (run.status, run.listed, run.deleted) == ("failed", 0, 0)
    assert run.message and "could not reach Iceberg catalog" in run.message
    assert "guessed-0451" not in run.message and "s3cret" not in run.message  # secrets never echoed
    with session_scope(sync_factory) as session:
        assert sources.get_source(session, name="lake-rest").status == SourceStatus.UNHEALTHY.value
        live = service.list_datasets(session, filters=service.DatasetFilters(source="lake-rest"))
        assert live.total == 3


def test_a_table_dropped_behind_the_rest_catalog_is_soft_deleted_and_a_stopped_server_deletes_nothing(
    sync_factory: sessionmaker[Session], warehouse: Any, rest_catalog: IcebergRestStandIn
) -> None:
    _add(sync_factory, "lake-rest", REST_NS, _rest_config(rest_catalog), credential="headwater:s3cret")
    _run(sync_factory, source_name="lake-rest")
    warehouse.catalog.drop_table("raw.clicks")
    run = _run(sync_factory, source_name="lake-rest")
    assert (run.status, run.deleted, run.changed, run.unchanged) == (
        "succeeded",
        1,
        0,
        2,
    )  # no version tokens: loaded, found equal

    warehouse.catalog.drop_table("analytics.titles")
    rest_catalog.stop()
    down = _run(sync_factory, source_name="lake-rest")
    assert (down.status, down.deleted) == ("failed", 0)
    with session_scope(sync_factory) as session:
        titles = service.get_dataset_by_name(session, namespace=REST_NS, name="analytics.titles")
        assert titles.deleted_at is None


def _changes_since(factory: sessionmaker[Session], after: int) -> list[tuple[str, str | None]]:
    with session_scope(factory) as session:
        return [(c.kind, c.name) for c in events.list_changes(session, after=after, entity_type="dataset")]


def _latest_change(factory: sessionmaker[Session]) -> int:
    with session_scope(factory) as session:
        return events.latest_change_id(session)


@pytest.mark.parametrize("etags", [True, False], ids=["etag-server", "no-etag-server"])
def test_an_unchanged_rest_table_is_not_read_again_and_a_new_schema_is(
    sync_factory: sessionmaker[Session], warehouse: Any, etags: bool
) -> None:
    standin = IcebergRestStandIn(warehouse.catalog, etags=etags).start()
    try:
        _add(sync_factory, "lake-rest", REST_NS, {"type": "rest", "uri": standin.url, "catalog_name": "lake"})
        first = _run(sync_factory, source_name="lake-rest")
        assert (first.status, first.added, standin.loads) == ("succeeded", 3, 3)
        before = _latest_change(sync_factory)

        again = _run(sync_factory, source_name="lake-rest")
        assert (again.status, again.unchanged, again.changed, again.added) == ("succeeded", 3, 0, 0)
        # A server with ETags answers 304 and sends no metadata; one without sends it, and the metadata
        # location, compared first, spares converting it. Either way nothing new is written.
        assert (standin.not_modified, standin.loads) == ((3, 3) if etags else (0, 6))
        assert _changes_since(sync_factory, before) == []
        assert len(_seen(sync_factory, REST_NS, "analytics.title_views")["versions"]) == 1

        warehouse.rename_and_widen()  # a new schema: a new metadata location and ETag for one table
        changed = _run(sync_factory, source_name="lake-rest")
        assert (changed.status, changed.changed, changed.unchanged) == ("succeeded", 1, 2)
        assert (standin.not_modified, standin.loads) == ((5, 4) if etags else (0, 9))
        assert _changes_since(sync_factory, before) == [("schema_changed", "analytics.title_views")]
        versions = _seen(sync_factory, REST_NS, "analytics.title_views")["versions"]
        assert versions[-1][1]["renamed"] == [{"field_id": 4, "old_path": "views", "new_path": "view_count"}]

        full = _run(sync_factory, source_name="lake-rest", mode=SyncMode.FULL)  # reads everything, conditionally never
        assert (full.status, full.unchanged, full.changed) == ("succeeded", 3, 0)
        assert standin.loads == (7 if etags else 12)
    finally:
        standin.stop()
