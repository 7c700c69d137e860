"""The sync engine against a real Kafka-protocol broker (Tansu) and the Schema Registry stand-in, on both
databases: topics with partitions and configs; Avro, Protobuf and JSON Schema fields; every registered
version as history; a new version's diff; a deleted topic; the broker down mid-sync; wrong registry
credentials."""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from kafka_fixtures_data import CLICK_V1, ORDER_KEY, ORDER_V1, ORDER_V2, USER_PROTO, avro
from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog import service, sources, sync
from headwater.catalog.connectors.kafka import KafkaConnector
from headwater.catalog.models import SourceKind, SourceStatus
from headwater.catalog.schemas import DatasetUpdate, FieldMetadataUpdate, SourceCreate
from headwater.catalog.sync_models import SyncRun
from headwater.db import session_scope
from headwater.secrets import KeyRing, ReferencePolicy, SecretVault, generate_key

pytestmark = pytest.mark.integration  # every test here talks to a server it starts

# The vault of a server that allows the tests' HW_TEST_* variables as secret references.
VAULT = SecretVault(policy=ReferencePolicy(allowed_env=("HW_TEST_*",)), keys=KeyRing(text=generate_key()))


def _run(factory: sessionmaker[Session], **kwargs: Any) -> SyncRun:
    return sync.run_sync(factory, vault=VAULT, **kwargs)


@pytest.fixture
def cluster(kafka_broker: Any, schema_registry_standin: Any) -> tuple[Any, SchemaRegistryClient]:
    """Three topics in this test's space on the session's broker, their schemas in the registry (orders has a key
    and two value versions)."""
    return _fill(kafka_broker, schema_registry_standin)


def _fill(broker: Any, standin: Any) -> tuple[Any, SchemaRegistryClient]:
    registry = SchemaRegistryClient({"url": standin.url})
    broker.create_topic("orders", partitions=3, configs={"retention.ms": "3600000", "cleanup.policy": "delete"})
    broker.create_topic("users", partitions=2)
    broker.create_topic("clicks")
    broker.create_topic("_internal_offsets")
    registry.register_schema(broker.topic("orders") + "-value", Schema(avro(ORDER_V1), "AVRO"))
    registry.register_schema(broker.topic("orders") + "-key", Schema(avro(ORDER_KEY), "AVRO"))
    registry.register_schema(broker.topic("users") + "-value", Schema(USER_PROTO, "PROTOBUF"))
    registry.register_schema(broker.topic("clicks") + "-value", Schema(json.dumps(CLICK_V1), "JSON"))
    return broker, registry


def _add_source(factory: sessionmaker[Session], broker: Any, registry_url: str, **config: Any) -> str:
    secrets = config.pop("secrets", {})
    with session_scope(factory) as session:
        sources.create_source(
            session,
            vault=VAULT,
            data=SourceCreate(
                name="events",
                kind=SourceKind.KAFKA,
                namespace="kafka://events",
                config={
                    "bootstrap_servers": broker.bootstrap,
                    "schema_registry_url": registry_url,
                    "topic_pattern": broker.pattern,  # this test's topics only: the broker is shared
                    **config,
                },
                secrets=secrets,
            ),
        )
    return f"kafka://{broker.bootstrap}"


def _get(factory: sessionmaker[Session], namespace: str, name: str, **kw: Any) -> service.Dataset:
    with session_scope(factory) as session:
        return service.get_dataset_by_name(session, namespace=namespace, name=name, **kw)


def _history(factory: sessionmaker[Session], dataset_id: int) -> list[Any]:
    with session_scope(factory) as session:
        return service.list_schema_versions(session, dataset_id=dataset_id, newest_first=False).items


def _fields(dataset: service.Dataset) -> list[tuple[str, str, bool]]:
    return [(f.path, f.type, f.nullable) for f in dataset.fields]


def test_topics_and_their_schemas_in_every_format(
    sync_factory: sessionmaker[Session], cluster: Any, schema_registry_standin: Any
) -> None:
    broker, _ = cluster
    namespace = _add_source(sync_factory, broker, schema_registry_standin.url)
    run = _run(sync_factory, source_name="events")
    assert (run.status, run.added, run.failed) == ("succeeded", 3, 0)  # the internal topic is left out

    orders = _get(sync_factory, namespace, broker.topic("orders"))
    assert orders.kind == "topic" and orders.format == "avro" and orders.source_description == "one order"
    assert _fields(orders) == [
        ("id", "long", False), ("count", "int", False), ("lines", "array<record>", False),
        ("lines.element", "record", False), ("lines.element.sku", "string", False),
        ("placed_at", "timestamp-millis", False), ("_key", "struct", False), ("_key.id", "long", False),
    ]  # fmt: skip
    assert orders.fields[0].source_description == "order id"
    assert orders.fields[5].normalized_type == "timestamptz"
    props = orders.source_properties
    assert (props["kafka.partitions"], props["kafka.replication_factor"]) == ("3", "1")
    assert props["kafka.config.retention.ms"] == "3600000" and props["kafka.config.cleanup.policy"] == "delete"
    subjects = (props["kafka.value.subject"], props["kafka.key.subject"])
    assert subjects == (broker.topic("orders") + "-value", broker.topic("orders") + "-key")
    # value v1 was registered before the key: the history has both steps
    assert [(v.version, v.source_schema_id) for v in _history(sync_factory, orders.id)] == [
        (1, "key:0/value:1"),
        (2, "key:1/value:1"),
    ]

    users = _get(sync_factory, namespace, broker.topic("users"))
    assert users.format == "protobuf"
    assert _fields(users) == [
        ("id", "string", False), ("email", "string", True), ("homes", "array<message>", False),
        ("homes.element", "message", False), ("homes.element.city", "string", False),
        ("homes.element.zip", "string", False), ("counters", "map<string,int64>", False),
        ("counters.key", "string", False), ("counters.value", "int64", False),
        ("created", "google.protobuf.Timestamp", True), ("status", "enum", False),
        ("phone", "string", True), ("pager", "string", True),
    ]  # fmt: skip
    assert {f.path: f.normalized_type for f in users.fields}["counters.value"] == "long"

    clicks = _get(sync_factory, namespace, broker.topic("clicks"))
    assert clicks.format == "json" and clicks.source_description == "a click on a page"
    assert _fields(clicks) == [
        ("url", "string", False), ("at", "string(date-time)", True), ("device", "object", True),
        ("device.os", "string", True), ("tags", "array<string>", True), ("tags.element", "string", False),
        ("extra", "map<string,integer>", True), ("extra.key", "string", False), ("extra.value", "integer", False),
    ]  # fmt: skip

    again = _run(sync_factory, source_name="events")
    assert (again.unchanged, again.changed, again.added) == (3, 0, 0)


def test_a_new_registry_version_records_a_schema_version_with_its_diff(
    sync_factory: sessionmaker[Session], cluster: Any, schema_registry_standin: Any
) -> None:
    broker, registry = cluster
    namespace = _add_source(sync_factory, broker, schema_registry_standin.url)
    _run(sync_factory, source_name="events")
    orders = _get(sync_factory, namespace, broker.topic("orders"))
    with session_scope(sync_factory) as session:
        service.update_dataset_metadata(
            session,
            dataset_id=orders.id,
            data=DatasetUpdate(fields={"count": FieldMetadataUpdate(description="items in the order")}),
            expected_revision=None,
        )
    registry.register_schema(broker.topic("orders") + "-value", Schema(avro(ORDER_V2), "AVRO"))
    run = _run(sync_factory, source_name="events")
    assert (run.changed, run.unchanged) == (1, 2)
    history = _history(sync_factory, orders.id)
    assert [(v.version, v.source_schema_id) for v in history] == [
        (1, "key:0/value:1"),
        (2, "key:1/value:1"),
        (3, "key:1/value:2"),
    ]
    diff = history[2].diff
    assert diff["added"] == ["note"] and diff["removed"] == [] and diff["renamed"] == []
    assert [(r["path"], r["old_type"], r["new_type"]) for r in diff["retyped"]] == [("count", "int", "long")]
    after = _get(sync_factory, namespace, broker.topic("orders"))
    assert after.source_properties["kafka.value.version"] == "2"
    assert next(f for f in after.fields if f.path == "count").user_description == "items in the order"


def test_a_deleted_topic_is_soft_deleted(
    sync_factory: sessionmaker[Session], cluster: Any, schema_registry_standin: Any
) -> None:
    broker, _ = cluster
    namespace = _add_source(sync_factory, broker, schema_registry_standin.url)
    _run(sync_factory, source_name="events")
    broker.delete_topic("clicks")
    run = _run(sync_factory, source_name="events")
    assert (run.status, run.deleted, run.unchanged) == ("succeeded", 1, 2)
    assert _get(sync_factory, namespace, broker.topic("clicks"), include_deleted=True).deleted_at is not None


def test_the_broker_down_mid_sync_deletes_nothing(
    sync_factory: sessionmaker[Session],
    private_kafka_broker: Any,
    schema_registry_standin: Any,
    fault_after_first_page: Any,
) -> None:
    broker, _ = _fill(private_kafka_broker, schema_registry_standin)  # its own broker: this test kills it
    _add_source(sync_factory, broker, schema_registry_standin.url, page_size=1, timeout_seconds=2)
    _run(sync_factory, source_name="events")

    fault_after_first_page(KafkaConnector, broker.kill)
    run = _run(sync_factory, source_name="events")
    assert (run.status, run.complete, run.deleted, run.listed) == ("failed", False, 0, 1)
    assert run.message and "nothing was deleted" in run.message
    down = _run(sync_factory, source_name="events")
    assert (down.status, down.listed, down.deleted) == ("failed", 0, 0)
    assert "could not reach Kafka" in (down.message or "")
    with session_scope(sync_factory) as session:
        assert sources.get_source(session, name="events").status == SourceStatus.UNHEALTHY.value
        assert service.list_datasets(session, filters=service.DatasetFilters(source="events")).total == 3


def test_wrong_registry_credentials_fail_the_sync(
    sync_factory: sessionmaker[Session], kafka_broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from schema_registry_standin import SchemaRegistryStandIn

    standin = SchemaRegistryStandIn(user="headwater", password="right").start()
    try:
        kafka_broker.create_topic("orders")
        SchemaRegistryClient({"url": standin.url, "basic.auth.user.info": "headwater:right"}).register_schema(
            kafka_broker.topic("orders") + "-value", Schema(avro(ORDER_V1), "AVRO")
        )
        monkeypatch.setenv("HW_TEST_REGISTRY_PASSWORD", "wrong")
        _add_source(
            sync_factory,
            kafka_broker,
            standin.url,
            schema_registry_user="headwater",
            secrets={"schema_registry_password": "env:HW_TEST_REGISTRY_PASSWORD"},
        )
        run = _run(sync_factory, source_name="events")
        assert (run.status, run.listed) == ("failed", 0)
        assert "Unauthorized" in (run.message or "") and "right" not in (run.message or "")
        monkeypatch.setenv("HW_TEST_REGISTRY_PASSWORD", "right")
        fixed = _run(sync_factory, source_name="events")
        assert (fixed.status, fixed.added) == ("succeeded", 1)
    finally:
        standin.stop()
