"""The sync engine against a real Hive Metastore filled by Spark, on both databases: managed, external,
partitioned, CTAS and datasource tables and a view; paging and capped partition counts; a table
dropped, a column renamed and one retyped through Thrift alter_table; the metastore killed mid-sync."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog import events, service, sources, sync
from headwater.catalog.connectors.hive import HiveConnector
from headwater.catalog.connectors.hive_types import flatten_columns, parse_hive_type, parse_spark_schema
from headwater.catalog.models import SourceKind, SourceStatus
from headwater.catalog.schemas import DatasetUpdate, SourceCreate, SourceUpdate
from headwater.catalog.sync_models import SyncMode
from headwater.db import session_scope

SPARK_TABLES = {
    "sales.customers",
    "sales.orders",
    "sales.raw_events",
    "sales.big_orders",
    "sales.order_totals",
    "sales.events_ds",
    "web.wide_ds",
    "web.clicks_json",
}


def _add_source(factory: sessionmaker[Session], metastore: Any, **config: Any) -> str:
    config.setdefault("databases", ["sales", "web"])
    with session_scope(factory) as session:
        sources.create_source(
            session,
            data=SourceCreate(
                name="metastore", kind=SourceKind.HIVE, namespace="hive://warehouse", config=metastore.config(**config)
            ),
        )
    return f"hive://127.0.0.1:{metastore.port}"


def _get(factory: sessionmaker[Session], namespace: str, name: str, **kw: Any) -> service.Dataset:
    with session_scope(factory) as session:
        return service.get_dataset_by_name(session, namespace=namespace, name=name, **kw)


def _fields(dataset: service.Dataset) -> list[tuple[str, str]]:
    return [(f.path, f.type) for f in dataset.fields]


@pytest.mark.integration
def test_spark_tables_views_and_storage_are_read(sync_factory: sessionmaker[Session], hive_metastore: Any) -> None:
    namespace = _add_source(sync_factory, hive_metastore)
    run = sync.run_sync(sync_factory, source_name="metastore")
    assert (run.status, run.added, run.failed) == ("succeeded", len(SPARK_TABLES), 0)
    with session_scope(sync_factory) as session:
        page = service.list_datasets(session, filters=service.DatasetFilters(source="metastore"), limit=100)
        assert {d.name for d in page.items} == SPARK_TABLES
        assert {d.namespace for d in page.items} == {namespace}

    customers = _get(sync_factory, namespace, "sales.customers")
    assert _fields(customers) == [
        ("id", "bigint"), ("email", "string"), ("tags", "array<string>"), ("tags.element", "string"),
        ("address", "struct"), ("address.city", "string"), ("address.zip", "string"),
        ("prefs", "map<string,int>"), ("prefs.key", "string"), ("prefs.value", "int"),
    ]  # fmt: skip
    assert [f.source_description for f in customers.fields[:2]] == ["customer id", "contact address"]
    assert customers.source_description == "people who buy" and customers.format == "parquet"
    assert customers.location and customers.location.endswith("/sales.db/customers")
    props = customers.source_properties
    assert props["database.owner_team"] == "commerce" and props["database.tier"] == "gold"
    assert props["database.description"] == "orders and customers"
    assert props["hive.table_type"] == "MANAGED_TABLE" and props["hive.serde"].endswith("ParquetHiveSerDe")
    assert "transient_lastDdlTime" in props and not any(k.startswith("spark.sql.sources.schema") for k in props)

    orders = _get(sync_factory, namespace, "sales.orders")
    assert orders.format == "orc" and orders.partitioning == [
        {"column": "dt", "transform": "identity", "type": "string"}
    ]
    assert orders.source_properties["hive.partition_count"] == "3"
    assert _fields(orders)[-1] == ("dt", "string")

    external = _get(sync_factory, namespace, "sales.raw_events")
    ext_props = external.source_properties
    assert ext_props["hive.table_type"] == "EXTERNAL_TABLE" and ext_props["EXTERNAL"] == "TRUE"
    assert external.format == "textfile" and external.location and external.location.endswith("/external/raw_events")
    assert ext_props["hive.serde"].endswith("LazySimpleSerDe") and ext_props["hive.serde.field.delim"] == ","

    view = _get(sync_factory, namespace, "sales.big_orders")
    assert view.kind == "view" and view.location is None
    assert view.source_properties["view_definition"] == "SELECT id, total FROM sales.orders WHERE total > 15"
    assert _fields(view) == [("id", "bigint"), ("total", "decimal(10,2)")]

    ctas = _get(sync_factory, namespace, "sales.order_totals")
    assert _fields(ctas) == [("customer_id", "bigint"), ("total", "decimal(20,2)")]

    datasource = _get(sync_factory, namespace, "sales.events_ds")
    assert datasource.format == "parquet" and datasource.source_properties["spark.sql.sources.provider"] == "parquet"
    assert _fields(datasource) == [
        ("payload", "struct"), ("payload.kind", "string"), ("payload.n", "int"),
        ("weights", "map<string,double>"), ("weights.key", "string"), ("weights.value", "double"), ("day", "date"),
    ]  # fmt: skip
    assert datasource.partitioning == [{"column": "day", "transform": "identity", "type": "date"}]

    with hive_metastore.client() as client:
        wide_params = client.get_table("web", "wide_ds").parameters
        json_cols = [(c.name, c.type) for c in client.get_table("web", "clicks_json").sd.cols]
    # Spark split this schema into parts, and kept only a placeholder column in Hive for the JSON table.
    assert int(wide_params["spark.sql.sources.schema.numParts"]) > 1
    wide = _get(sync_factory, namespace, "web.wide_ds")
    assert len(wide.fields) == 150 and wide.fields[149].path == "attribute_with_a_rather_long_name_149"
    assert json_cols == [("col", "array<string>")]
    clicks = _get(sync_factory, namespace, "web.clicks_json")
    assert clicks.format == "json"
    assert _fields(clicks) == [
        ("user", "string"),
        ("at", "timestamp"),
        ("ids", "array<bigint>"),
        ("ids.element", "bigint"),
    ]

    again = sync.run_sync(sync_factory, source_name="metastore")
    assert (again.status, again.unchanged, again.changed, again.added) == ("succeeded", len(SPARK_TABLES), 0, 0)


@pytest.mark.integration
def test_tables_are_read_in_pages_and_partitions_counted_with_a_cap(
    sync_factory: sessionmaker[Session], hive_metastore: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hive_metastore import ThriftHiveMetastore

    calls: list[tuple[str, Any]] = []
    for method in ("get_table_objects_by_name", "get_partition_names", "get_partitions", "get_table"):
        real = getattr(ThriftHiveMetastore.Client, method)

        def spy(self: Any, *args: Any, _real: Any = real, _name: str = method) -> Any:
            calls.append((_name, args))
            return _real(self, *args)

        monkeypatch.setattr(ThriftHiveMetastore.Client, method, spy)
    namespace = _add_source(sync_factory, hive_metastore, databases=["sales"], page_size=4, max_partition_count=2)
    run = sync.run_sync(sync_factory, source_name="metastore")
    assert (run.status, run.added) == ("succeeded", 6)
    chunks = [args[1] for name, args in calls if name == "get_table_objects_by_name"]
    assert [len(chunk) for chunk in chunks] == [4, 2]
    assert [args for name, args in calls if name == "get_partition_names"] == [
        ("sales", "events_ds", 2),
        ("sales", "orders", 2),
    ]
    assert not [name for name, _ in calls if name in ("get_partitions", "get_table")]
    orders = _get(sync_factory, namespace, "sales.orders")
    assert orders.source_properties["hive.partition_count"] == "2"
    assert orders.source_properties["hive.partition_count_capped"] == "true"


@pytest.mark.integration
def test_a_dropped_table_and_a_renamed_and_a_retyped_column(
    sync_factory: sessionmaker[Session], scratch_metastore: Any
) -> None:
    from hive_test_server import alter_columns

    namespace = _add_source(sync_factory, scratch_metastore)
    sync.run_sync(sync_factory, source_name="metastore")
    orders = _get(sync_factory, namespace, "sales.orders")
    with session_scope(sync_factory) as session:
        service.update_dataset_metadata(
            session, dataset_id=orders.id, data=DatasetUpdate(description="every order"), expected_revision=None
        )
    with scratch_metastore.client() as client:
        client.drop_table("sales", "raw_events", False)
        # Hive's ALTER TABLE orders CHANGE customer_id buyer_id bigint; CHANGE total total decimal(12,2)
        alter_columns(client, "sales", "orders", [("id", "bigint"), ("buyer_id", "bigint"), ("total", "decimal(12,2)")])
    run = sync.run_sync(sync_factory, source_name="metastore")
    assert (run.status, run.changed, run.deleted, run.unchanged) == ("succeeded", 1, 1, len(SPARK_TABLES) - 2)
    gone = _get(sync_factory, namespace, "sales.raw_events", include_deleted=True)
    assert gone.deleted_at is not None
    after = _get(sync_factory, namespace, "sales.orders")
    assert after.user_description == "every order" and after.current_schema_version == 2
    assert _fields(after) == [("id", "bigint"), ("buyer_id", "bigint"), ("total", "decimal(12,2)"), ("dt", "string")]
    with session_scope(sync_factory) as session:
        diff = service.get_schema_version(session, dataset_id=after.id, version=2).diff
    # Hive keeps no column ids, so a rename is seen as one column removed and another added.
    assert (diff["added"], diff["removed"], diff["renamed"]) == (["buyer_id"], ["customer_id"], [])
    assert [(r["path"], r["old_type"], r["new_type"]) for r in diff["retyped"]] == [
        ("total", "decimal(10,2)", "decimal(12,2)")
    ]


@pytest.mark.integration
def test_added_partitions_are_recounted_by_incremental_syncs_unless_turned_off(
    sync_factory: sessionmaker[Session], scratch_metastore: Any
) -> None:
    from hive_test_server import add_partition

    namespace = _add_source(sync_factory, scratch_metastore)
    sync.run_sync(sync_factory, source_name="metastore")
    assert _get(sync_factory, namespace, "sales.orders").source_properties["hive.partition_count"] == "3"
    with scratch_metastore.client() as client:
        add_partition(client, "sales", "orders", ["2024-02-01"])
    run = sync.run_sync(sync_factory, source_name="metastore")
    assert (run.status, run.changed, run.unchanged) == ("succeeded", 1, len(SPARK_TABLES) - 1)
    assert _get(sync_factory, namespace, "sales.orders").source_properties["hive.partition_count"] == "4"

    with session_scope(sync_factory) as session:
        sources.update_source(
            session,
            name="metastore",
            data=SourceUpdate(config=scratch_metastore.config(databases=["sales", "web"], recount_partitions=False)),
        )
    settled = sync.run_sync(sync_factory, source_name="metastore")
    assert (settled.changed, settled.unchanged) == (0, len(SPARK_TABLES))
    with scratch_metastore.client() as client:
        add_partition(client, "sales", "orders", ["2024-02-02"])
    quiet = sync.run_sync(sync_factory, source_name="metastore")
    assert (quiet.changed, quiet.unchanged) == (0, len(SPARK_TABLES))  # the definition did not change
    assert _get(sync_factory, namespace, "sales.orders").source_properties["hive.partition_count"] == "4"
    full = sync.run_sync(sync_factory, source_name="metastore", mode=SyncMode.FULL)
    assert full.changed == 1
    assert _get(sync_factory, namespace, "sales.orders").source_properties["hive.partition_count"] == "5"


@pytest.mark.integration
def test_the_metastore_killed_mid_sync_deletes_nothing(
    sync_factory: sessionmaker[Session], scratch_metastore: Any, fault_after_first_page: Any
) -> None:
    _add_source(sync_factory, scratch_metastore, page_size=1)
    sync.run_sync(sync_factory, source_name="metastore")

    fault_after_first_page(HiveConnector, scratch_metastore.kill)
    run = sync.run_sync(sync_factory, source_name="metastore")
    assert (run.status, run.complete, run.deleted, run.listed) == ("failed", False, 0, 1)
    assert run.message and "nothing was deleted" in run.message and "Hive Metastore" in run.message
    with session_scope(sync_factory) as session:
        source = sources.get_source(session, name="metastore")
        assert source.status == SourceStatus.UNHEALTHY.value
        live = service.list_datasets(session, filters=service.DatasetFilters(source="metastore"), limit=100)
        assert live.total == len(SPARK_TABLES)

    down = sync.run_sync(sync_factory, source_name="metastore")  # still down: fails at once, deletes nothing
    assert (down.status, down.listed, down.deleted) == ("failed", 0, 0)
    assert "could not reach" in (down.message or "")


def test_hive_type_strings_and_spark_schemas_parse_into_nested_fields() -> None:
    kind = parse_hive_type("struct<`a b`:int COMMENT 'the a',c:uniontype<int,string>,d:decimal( 10 , 2 )>")
    fields = flatten_columns(parse_spark_schema('{"type":"struct","fields":[]}'))
    assert fields == []
    assert kind.spelling() == "struct"
    assert [(name, member.spelling(), comment) for name, member, _, comment in kind.members] == [
        ("a b", "int", "the a"),
        ("c", "uniontype<int,string>", None),
        ("d", "decimal(10,2)", None),
    ]
    spark = parse_spark_schema(
        '{"type":"struct","fields":[{"name":"v","type":"string","nullable":false,'
        '"metadata":{"__CHAR_VARCHAR_TYPE_STRING":"varchar(8)","comment":"code"}},'
        '{"name":"xs","type":{"type":"array","elementType":"short","containsNull":false},"nullable":true,"metadata":{}}]}'
    )
    assert [(f.path, f.type, f.nullable, f.description) for f in flatten_columns(spark)] == [
        ("v", "varchar(8)", False, "code"),
        ("xs", "array<smallint>", True, None),
        ("xs.element", "smallint", False, None),
    ]
    for bad in ("struct<a:int", "map<string>", "array<int>>", "decimal(10"):
        with pytest.raises(ValueError, match="cannot parse Hive type"):
            parse_hive_type(bad)


def _count_calls(monkeypatch: pytest.MonkeyPatch, cls: type[Any], method: str) -> list[str]:
    """Record each call of ``cls.method`` (its first argument after self), calling through."""
    calls: list[str] = []
    real = getattr(cls, method)

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(args[0] if args else ""))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, spy)
    return calls


def _changes_since(factory: sessionmaker[Session], after: int) -> list[tuple[str, str | None]]:
    with session_scope(factory) as session:
        return [(c.kind, c.name) for c in events.list_changes(session, after=after, entity_type="dataset")]


@pytest.mark.integration
def test_unchanged_hive_tables_are_not_converted_again_and_altered_ones_are(
    sync_factory: sessionmaker[Session], scratch_metastore: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hive_test_server import add_partition, alter_columns

    converted = _count_calls(monkeypatch, HiveConnector, "_snapshot")
    namespace = _add_source(sync_factory, scratch_metastore)
    first = sync.run_sync(sync_factory, source_name="metastore")
    assert (first.added, len(converted)) == (len(SPARK_TABLES), len(SPARK_TABLES))
    with session_scope(sync_factory) as session:
        before = events.latest_change_id(session)

    again = sync.run_sync(sync_factory, source_name="metastore")
    assert (again.status, again.unchanged, again.changed) == ("succeeded", len(SPARK_TABLES), 0)
    assert len(converted) == len(SPARK_TABLES)  # no table's schema was parsed again, partitioned ones included
    assert _changes_since(sync_factory, before) == []

    with scratch_metastore.client() as client:
        ddl_time = client.get_table("sales", "customers").parameters["transient_lastDdlTime"]
        columns = [(c.name, c.type) for c in client.get_table("sales", "customers").sd.cols]
        alter_columns(client, "sales", "customers", [*columns, ("phone", "string")])  # ADD COLUMNS (phone string)
        # A client that hands back the table it read keeps the DDL time: it cannot be the token alone.
        assert client.get_table("sales", "customers").parameters["transient_lastDdlTime"] == ddl_time
        add_partition(client, "sales", "orders", ["2024-02-01"])
    altered = sync.run_sync(sync_factory, source_name="metastore")
    assert (altered.status, altered.changed, altered.unchanged) == ("succeeded", 2, len(SPARK_TABLES) - 2)
    assert len(converted) == len(SPARK_TABLES) + 2  # the two changed tables only
    changes = _changes_since(sync_factory, before)
    assert {name for _, name in changes} == {"sales.customers", "sales.orders"}
    assert ("schema_changed", "sales.customers") in changes
    assert _fields(_get(sync_factory, namespace, "sales.customers"))[-1] == ("phone", "string")
    assert _get(sync_factory, namespace, "sales.orders").source_properties["hive.partition_count"] == "4"


@pytest.mark.integration
def test_an_iceberg_hive_catalog_lists_metadata_locations_and_reads_only_changed_tables(
    sync_factory: sessionmaker[Session], scratch_metastore: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyiceberg.catalog.hive import HiveCatalog
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StringType

    from headwater.catalog.connectors.iceberg import IcebergConnector

    warehouse = f"file://{tmp_path / 'lakehouse'}"
    catalog = HiveCatalog("lake", uri=scratch_metastore.uri, warehouse=warehouse)
    catalog.create_namespace("lakehouse")
    schema = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "name", StringType()))
    catalog.create_table("lakehouse.customers", schema)
    catalog.create_table("lakehouse.orders", schema)
    loads = _count_calls(monkeypatch, IcebergConnector, "snapshot_of")
    config = {"type": "hive", "uri": scratch_metastore.uri, "catalog_name": "lake", "warehouse": warehouse}
    with session_scope(sync_factory) as session:
        sources.create_source(
            session, data=SourceCreate(name="lake", kind=SourceKind.ICEBERG, namespace="iceberg://lake", config=config)
        )
    first = sync.run_sync(sync_factory, source_name="lake")
    # Spark's Hive tables share the metastore; only the Iceberg ones are the catalog's.
    assert (first.status, first.added, len(loads)) == ("succeeded", 2, 2)

    again = sync.run_sync(sync_factory, source_name="lake")
    assert (again.status, again.unchanged, len(loads)) == ("succeeded", 2, 2)

    # pyiceberg commits under a metastore lock, which the test metastore (no transaction tables) cannot grant:
    # the writer, not the code under test, is given one; the commit itself is pyiceberg's alter_table.
    from hive_metastore import ThriftHiveMetastore
    from hive_metastore.ttypes import LockResponse, LockState

    monkeypatch.setattr(ThriftHiveMetastore.Client, "lock", lambda self, request: LockResponse(1, LockState.ACQUIRED))
    monkeypatch.setattr(ThriftHiveMetastore.Client, "unlock", lambda self, request: None)
    with catalog.load_table("lakehouse.orders").update_schema() as update:
        update.add_column("total", LongType())
    changed = sync.run_sync(sync_factory, source_name="lake")
    assert (changed.status, changed.changed, changed.unchanged, len(loads)) == ("succeeded", 1, 1, 3)
    orders = _get(sync_factory, "iceberg://lake", "lakehouse.orders")
    assert [f.path for f in orders.fields] == ["id", "name", "total"] and orders.current_schema_version == 2
