"""Real sources for the connector and sync tests: an Iceberg SQL-catalog warehouse built with pyiceberg,
a scratch database on the real PostgreSQL server, a real Hive Metastore filled by Spark
(hive_test_server.py), a Tansu Kafka-protocol broker per session (kafka_test_broker.py) and the Schema Registry
stand-in (schema_registry_standin.py), plus a session factory for the sync engine."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from headwater.db import make_sessionmaker


class Warehouse:
    """A local Iceberg warehouse behind a SQL catalog (SQLite file), filled by the tests through pyiceberg."""

    def __init__(self, root: Path) -> None:
        from pyiceberg.catalog.sql import SqlCatalog

        root.mkdir(parents=True, exist_ok=True)
        self.db_path = root / "catalog.db"
        self.uri = f"sqlite:///{self.db_path}"
        self.catalog = SqlCatalog("lake", uri=self.uri, warehouse=f"file://{root / 'warehouse'}")

    def config(self, **extra: Any) -> dict[str, Any]:
        """The Headwater source config of this warehouse."""
        return {"type": "sql", "uri": self.uri, "catalog_name": "lake", **extra}

    def build(self) -> None:
        """Namespaces with properties; a partitioned table (identity, day, bucket) with nested types and data;
        two plain tables."""
        from pyiceberg.partitioning import PartitionField, PartitionSpec
        from pyiceberg.schema import Schema
        from pyiceberg.table.sorting import SortField, SortOrder
        from pyiceberg.transforms import BucketTransform, DayTransform, IdentityTransform
        from pyiceberg.types import (
            IntegerType,
            ListType,
            LongType,
            MapType,
            NestedField,
            StringType,
            StructType,
            TimestamptzType,
        )

        self.catalog.create_namespace("analytics", {"owner": "team:analytics", "comment": "curated tables"})
        self.catalog.create_namespace("raw")
        schema = Schema(
            NestedField(1, "id", LongType(), required=True),
            NestedField(2, "country", StringType(), doc="ISO country code"),
            NestedField(3, "ts", TimestamptzType()),
            NestedField(4, "views", IntegerType()),
            NestedField(
                5,
                "device",
                StructType(NestedField(6, "os", StringType()), NestedField(7, "tags", ListType(8, StringType()))),
            ),
            NestedField(9, "attrs", MapType(10, StringType(), 11, StringType())),
        )
        spec = PartitionSpec(
            PartitionField(2, 1000, IdentityTransform(), "country"),
            PartitionField(3, 1001, DayTransform(), "ts_day"),
            PartitionField(1, 1002, BucketTransform(16), "id_bucket"),
        )
        table = self.catalog.create_table(
            "analytics.title_views",
            schema,
            partition_spec=spec,
            sort_order=SortOrder(SortField(3)),
            properties={"comment": "views per title per day", "write.format.default": "parquet"},
        )
        rows = [
            {
                "id": i,
                "country": "NL" if i % 2 else "US",
                "ts": dt.datetime(2024, 1, 1 + i, tzinfo=dt.UTC),
                "views": i * 10,
                "device": {"os": "ios", "tags": ["tv"]},
                "attrs": [("k", "v")],
            }
            for i in range(4)
        ]
        table.append(pyarrow.Table.from_pylist(rows, schema=table.schema().as_arrow()))
        plain = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "name", StringType()))
        self.catalog.create_table("analytics.titles", plain)
        self.catalog.create_table("raw.clicks", plain)

    def rename_and_widen(self) -> None:
        """Schema evolution on title_views: views -> view_count (a rename) and int -> long (a widening)."""
        from pyiceberg.types import LongType

        table = self.catalog.load_table("analytics.title_views")
        with table.update_schema() as update:
            update.update_column("views", LongType())
            update.rename_column("views", "view_count")

    def add_column(self, table_name: str, column: str) -> None:
        """Add an optional string column to a table."""
        from pyiceberg.types import StringType

        with self.catalog.load_table(table_name).update_schema() as update:
            update.add_column(column, StringType())

    def wipe(self) -> None:
        """Destroy the catalog database in place (what a lost or corrupted catalog looks like)."""
        with self.db_path.open("r+b") as handle:
            handle.truncate(0)


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    """A built Iceberg warehouse."""
    built = Warehouse(tmp_path / "iceberg")
    built.build()
    return built


@dataclass
class ScratchPostgres:
    """A scratch database on the real PostgreSQL server, filled with tables, a view, comments and keys."""

    url: str
    database: str
    engine: Engine
    admin: Engine

    def config(self, **extra: Any) -> dict[str, Any]:
        """The Headwater source config of this database (host and port of the test server)."""
        url = self.engine.url
        return {"host": url.host, "port": url.port or 5432, "database": self.database, "user": url.username, **extra}

    def execute(self, sql: str) -> None:
        """Run statements in the scratch database."""
        with self.engine.begin() as connection:
            connection.execute(text(sql))


SCRATCH_SQL = """
CREATE SCHEMA sales;
COMMENT ON SCHEMA sales IS 'orders and the people who place them';
CREATE TABLE sales.customers (
    id bigint PRIMARY KEY,
    email varchar(200) NOT NULL,
    country char(2),
    signed_up timestamptz,
    tags text[]
);
COMMENT ON TABLE sales.customers IS 'People who buy';
COMMENT ON COLUMN sales.customers.email IS 'contact address';
CREATE TABLE sales.orders (
    id serial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES sales.customers(id),
    total numeric(10, 2),
    placed_at timestamp
);
CREATE VIEW sales.big_orders AS SELECT id, customer_id, total FROM sales.orders WHERE total > 100;
CREATE TABLE public.audit_log (at timestamptz, message text);
"""


IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture
def scratch_postgres(postgres_server: Any) -> Iterator[ScratchPostgres]:
    """A new database on the real PostgreSQL server holding a small sales schema."""
    problem = postgres_server.available()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"{problem}; CI needs PostgreSQL", pytrace=False)
        pytest.skip(problem)
    url = postgres_server.create_database("source")
    engine = create_engine(url, pool_size=1)
    scratch = ScratchPostgres(
        url=url, database=make_url(url).database or "", engine=engine, admin=postgres_server.admin
    )
    scratch.execute(SCRATCH_SQL)
    yield scratch
    engine.dispose()


FaultAfterFirstPage = Callable[[type[Any], Callable[[], None]], None]


@pytest.fixture
def fault_after_first_page(monkeypatch: pytest.MonkeyPatch) -> FaultAfterFirstPage:
    """Install a real fault (a server killed, a catalog wiped) right after a connector hands out its first page.

    The sync reads one page ahead of what it writes, so a fault injected from the writer's progress callback
    lands at a timing-dependent page; hooking the listing makes "down after the first page" exact.
    """

    def install(connector_class: type[Any], fault: Callable[[], None]) -> None:
        original = connector_class.list_pages

        def list_pages(self: Any) -> Iterator[Any]:
            for number, page in enumerate(original(self)):
                yield page
                if number == 0:
                    fault()

        monkeypatch.setattr(connector_class, "list_pages", list_pages)

    return install


@pytest.fixture
def sync_factory(session: Session, engine: Engine) -> sessionmaker[Session]:
    """A session factory for the sync engine on the suite's database (emptied after the test)."""
    return make_sessionmaker(engine)


# ------------------------------------------------------------------------------- Hive Metastore


def _unavailable(problem: str) -> None:
    """A required test server is missing: fail under CI, skip with the reason locally."""
    if IN_CI:
        pytest.fail(f"{problem}; CI needs it", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="session")
def hive_image(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The run's Hive Metastore image, filled once by Spark (shared by the xdist workers)."""
    from hive_test_server import HiveUnavailable, missing_tools, shared_image

    problem = missing_tools()
    if problem is not None:
        _unavailable(problem)
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the directory all workers of the run share
    try:
        return shared_image(base)
    except HiveUnavailable as exc:
        _unavailable(str(exc))


@pytest.fixture(scope="session")
def hive_metastore(hive_image: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Hive Metastore holding Spark's tables, for this worker's tests that only add to it."""
    from hive_test_server import HiveUnavailable

    try:
        server = hive_image.serve(tmp_path_factory.mktemp("metastore"))
    except HiveUnavailable as exc:
        _unavailable(str(exc))
    yield server
    server.stop()


@pytest.fixture
def scratch_metastore(hive_image: Any, tmp_path: Path) -> Iterator[Any]:
    """A private Hive Metastore holding Spark's tables, for a test that changes, drops or kills it."""
    from hive_test_server import HiveUnavailable

    try:
        server = hive_image.serve(tmp_path / "metastore")
    except HiveUnavailable as exc:
        _unavailable(str(exc))
    yield server
    server.stop()


# ------------------------------------------------------------------------ Kafka + Schema Registry


def _start_broker(root: Path) -> Any:
    from kafka_test_broker import BrokerUnavailable, TansuBroker

    try:
        return TansuBroker(root).start()
    except BrokerUnavailable as exc:
        _unavailable(str(exc))


@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real Kafka-protocol broker (Tansu) on 127.0.0.1 for the whole session, both databases included."""
    broker = _start_broker(tmp_path_factory.mktemp("tansu"))
    yield broker
    broker.stop()


@pytest.fixture
def kafka_broker(kafka_server: Any) -> Any:
    """This test's own topic space (a prefix) on the session's broker: tests that share it never see each other's
    topics. A test that stops the broker takes ``private_kafka_broker``."""
    from kafka_test_broker import TopicSpace

    return TopicSpace(kafka_server)


@pytest.fixture
def private_kafka_broker(tmp_path: Path) -> Iterator[Any]:
    """A broker of this test's own, for a test that kills it; seen through a topic space like the shared one."""
    from kafka_test_broker import TopicSpace

    broker = _start_broker(tmp_path / "tansu")
    yield TopicSpace(broker)
    broker.stop()


@pytest.fixture
def schema_registry_standin() -> Iterator[Any]:
    """The Schema Registry stand-in (Confluent REST API), driven through the real SchemaRegistryClient."""
    from schema_registry_standin import SchemaRegistryStandIn

    standin = SchemaRegistryStandIn().start()
    yield standin
    standin.stop()
