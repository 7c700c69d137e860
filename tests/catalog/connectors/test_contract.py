"""The behaviour every connector promises, run against each one on a real source.

To add a connector, add a case builder to CASES: it receives the pytest request (to reach fixtures that
start the real source) and returns a ContractCase.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from headwater.catalog.connectors import (
    CONNECTORS,
    ConnectorError,
    ConnectorNotInstalled,
    InvalidSourceConfig,
    connector_class,
    open_connector,
    validate_config,
)


@dataclass
class ContractCase:
    """A connector pointed at a real, filled source."""

    kind: str
    namespace: str
    config: dict[str, Any]
    expected: set[str]  # OpenLineage names the listing must return
    alter: Callable[[], str]  # adds one column to one dataset's schema at the source; returns the dataset's name
    added: tuple[str, str]  # the column alter adds: its path and its type as this source states it
    unreachable: dict[str, Any]  # a config that validates but cannot be read
    secrets: dict[str, str] = field(default_factory=dict)
    dataset_namespace: str | None = None  # when the connector names datasets by server, not by source


def _iceberg(request: pytest.FixtureRequest) -> ContractCase:
    warehouse = request.getfixturevalue("warehouse")
    tmp = request.getfixturevalue("tmp_path")

    def alter() -> str:
        warehouse.add_column("raw.clicks", "referrer")
        return "raw.clicks"

    return ContractCase(
        kind="iceberg",
        namespace="iceberg://lake",
        config=warehouse.config(page_size=2),
        expected={"analytics.title_views", "analytics.titles", "raw.clicks"},
        alter=alter,
        added=("referrer", "string"),
        unreachable={"type": "sql", "uri": f"sqlite:///{tmp / 'missing' / 'catalog.db'}", "catalog_name": "lake"},
    )


def _postgres(request: pytest.FixtureRequest) -> ContractCase:
    scratch = request.getfixturevalue("scratch_postgres")
    config = scratch.config(page_size=2)

    def alter() -> str:
        scratch.execute("ALTER TABLE public.audit_log ADD COLUMN level text")
        return f"{scratch.database}.public.audit_log"

    return ContractCase(
        kind="postgres",
        namespace="postgres://somewhere:5432",
        config=config,
        expected={f"{scratch.database}.{name}" for name in ("sales.customers", "sales.orders", "sales.big_orders")}
        | {f"{scratch.database}.public.audit_log"},
        alter=alter,
        added=("level", "text"),
        unreachable={**config, "user": "headwater_no_such_role", "connect_timeout": 3},
        dataset_namespace=f"postgres://{config['host']}:{config['port']}",
    )


def _hive(request: pytest.FixtureRequest) -> ContractCase:
    from hive_test_server import create_database, create_table, free_port

    metastore = request.getfixturevalue("hive_metastore")
    database = f"contract_{uuid.uuid4().hex[:10]}"  # its own database: the metastore is shared by a worker's tests
    with metastore.client() as client:
        create_database(client, database, team="contract")
        create_table(client, database, "clicks", [("id", "bigint"), ("url", "string")])
        create_table(
            client, database, "visits", [("id", "bigint"), ("page", "struct<path:string,query:map<string,string>>")]
        )
        create_table(client, database, "sessions", [("id", "bigint")], partition_keys=[("dt", "string")])

    def alter() -> str:
        from hive_test_server import alter_columns

        with metastore.client() as client:
            alter_columns(client, database, "clicks", [("id", "bigint"), ("url", "string"), ("referrer", "string")])
        return f"{database}.clicks"

    return ContractCase(
        kind="hive",
        namespace="hive://metastore",
        config=metastore.config(databases=[database], page_size=2),
        expected={f"{database}.{name}" for name in ("clicks", "visits", "sessions")},
        alter=alter,
        added=("referrer", "string"),
        unreachable={"host": "127.0.0.1", "port": free_port(), "timeout_seconds": 3},
        dataset_namespace=f"hive://127.0.0.1:{metastore.port}",
    )


def _kafka(request: pytest.FixtureRequest) -> ContractCase:
    import json

    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from hive_test_server import free_port
    from kafka_fixtures_data import CLICK_V1, CLICK_V2, ORDER_KEY, ORDER_V1, USER_PROTO, avro

    broker = request.getfixturevalue("kafka_broker")  # this test's topic space on the session's broker
    standin = request.getfixturevalue("schema_registry_standin")
    registry = SchemaRegistryClient({"url": standin.url})
    broker.create_topic("orders", partitions=3, configs={"retention.ms": "3600000"})
    broker.create_topic("users")
    broker.create_topic("clicks")
    orders, users, clicks = (broker.topic(name) for name in ("orders", "users", "clicks"))
    registry.register_schema(f"{orders}-key", Schema(avro(ORDER_KEY), "AVRO"))
    registry.register_schema(f"{orders}-value", Schema(avro(ORDER_V1), "AVRO"))
    registry.register_schema(f"{users}-value", Schema(USER_PROTO, "PROTOBUF"))
    registry.register_schema(f"{clicks}-value", Schema(json.dumps(CLICK_V1), "JSON"))

    def alter() -> str:
        registry.register_schema(f"{clicks}-value", Schema(json.dumps(CLICK_V2), "JSON"))
        return clicks

    return ContractCase(
        kind="kafka",
        namespace="kafka://cluster",
        config={
            "bootstrap_servers": broker.bootstrap,
            "schema_registry_url": standin.url,
            "topic_pattern": broker.pattern,  # this test's topics only: the broker is shared
            "page_size": 2,
        },
        expected={orders, users, clicks},
        alter=alter,
        added=("referrer", "string"),
        unreachable={"bootstrap_servers": f"127.0.0.1:{free_port()}", "timeout_seconds": 2},
        dataset_namespace=f"kafka://{broker.bootstrap}",
    )


CASES: dict[str, Callable[[pytest.FixtureRequest], ContractCase]] = {
    "hive": _hive,
    "iceberg": _iceberg,
    "kafka": _kafka,
    "postgres": _postgres,
}


# Connectors whose source is a server the test starts (a Hive Metastore; a Kafka broker and a Schema Registry):
# their cases belong to the integration tier.
SERVER_CASES = {"hive", "kafka"}


@pytest.fixture(
    params=[
        pytest.param(kind, marks=pytest.mark.integration) if kind in SERVER_CASES else kind for kind in sorted(CASES)
    ]
)
def case(request: pytest.FixtureRequest) -> ContractCase:
    """One connector against its real source."""
    return CASES[request.param](request)


def _open(case: ContractCase, config: dict[str, Any] | None = None) -> Any:
    return open_connector(
        kind=case.kind,
        source_name="contract",
        namespace=case.namespace,
        config=config or case.config,
        secrets=case.secrets,
    )


def _listing(connector: Any) -> dict[str, Any]:
    refs = [ref for page in connector.list_pages() for ref in page.refs]
    names = [ref.name for ref in refs]
    assert len(names) == len(set(names)), "a listing must name each dataset once"
    return {ref.name: ref for ref in refs}


def test_every_case_is_registered() -> None:
    assert set(CASES) == set(CONNECTORS)


def test_lists_every_dataset_in_pages_with_stable_versions(case: ContractCase) -> None:
    with _open(case) as connector:
        connector.check()
        pages = list(connector.list_pages())
        assert all(len(page.refs) <= case.config["page_size"] for page in pages)
        assert len(pages) >= 2, "the page size is small enough to need several pages"
        first = _listing(connector)
        second = _listing(connector)
    assert set(first) == case.expected
    expected_namespace = case.dataset_namespace or case.namespace
    assert {ref.namespace for ref in first.values()} == {expected_namespace}
    assert {n: r.version for n, r in first.items()} == {n: r.version for n, r in second.items()}


def test_loads_each_dataset_as_a_snapshot(case: ContractCase) -> None:
    with _open(case) as connector:
        refs = list(_listing(connector).values())
        results = dict(connector.load_many(refs))
        for ref in refs:
            loaded = results[ref]
            assert not isinstance(loaded, ConnectorError), loaded
            snapshot = loaded.snapshot
            assert (snapshot.namespace, snapshot.name) == (ref.namespace, ref.name)
            assert snapshot.fields, f"{ref.name} has fields"
            assert len({f.path for f in snapshot.fields}) == len(snapshot.fields)
            assert snapshot.format
            assert all(isinstance(v, str) for v in snapshot.properties.values())
            assert connector.load(ref).snapshot.fields == snapshot.fields


def _fields(connector: Any, listing: dict[str, Any]) -> dict[str, list[Any]]:
    """Every listed dataset's fields, loaded: name -> fields."""
    loaded = dict(connector.load_many(list(listing.values())))
    assert not [result for result in loaded.values() if isinstance(result, ConnectorError)]
    return {ref.name: result.snapshot.fields for ref, result in loaded.items()}


def test_a_schema_change_changes_only_that_version(case: ContractCase) -> None:
    with _open(case) as connector:
        before = _listing(connector)
        old = _fields(connector, before)
        changed = case.alter()
        after = _listing(connector)
        new = _fields(connector, after)
    differing = {name for name in before if before[name].version != after[name].version}
    # A connector without cheap versions reports None and the engine loads every dataset instead.
    if after[changed].version is not None:
        assert differing == {changed}
    # The column the source gained, by name and type, and nothing else: its other fields and every other dataset
    # read exactly as before.
    path, source_type = case.added
    old_paths = {f.path for f in old[changed]}
    gained = [f for f in new[changed] if f.path not in old_paths]
    assert [(f.path, f.name, f.type, f.nullable, f.parent_path) for f in gained] == [
        (path, path, source_type, True, None)
    ]
    assert gained[0].normalized_type == "string"
    assert [f for f in new[changed] if f.path != path] == old[changed]
    assert {name: fields for name, fields in new.items() if name != changed} == {
        name: fields for name, fields in old.items() if name != changed
    }
    assert set(new) == set(old)


def test_an_unreachable_source_raises_connector_error(case: ContractCase) -> None:
    with _open(case, case.unreachable) as connector, pytest.raises(ConnectorError):
        connector.check()
        list(connector.list_pages())


def test_config_validation_names_the_field(case: ContractCase) -> None:
    with pytest.raises(InvalidSourceConfig) as info:
        validate_config(case.kind, {**case.config, "colour": "blue"})
    assert "config.colour" in info.value.message
    assert info.value.status_code == 422


def test_a_missing_library_names_the_pip_extra(case: ContractCase, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = connector_class(case.kind)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in cls.requires else real(name, *a))
    with pytest.raises(ConnectorNotInstalled) as info:
        _open(case)
    assert f"pip install 'headwater[{cls.extra}]'" in info.value.message
