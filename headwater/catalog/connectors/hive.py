"""The Hive Metastore connector: databases, tables and views read over Thrift.

It talks to the metastore with the generated Thrift client that ``pyiceberg[hive]`` ships (the
top-level modules ``hive_metastore`` and ``fb303``), over a plain socket with the buffered transport
and the binary protocol, as Hive's own clients do (no SASL/Kerberos).

Listing goes database by database: ``get_all_tables`` gives the names (cheap even for thousands of
tables), then ``get_table_objects_by_name`` reads them in chunks of ``page_size``; each chunk is one
listing page. The table objects of the page just listed are kept, so loading them costs nothing more
than the partition count, which is read with ``get_partition_names`` capped at ``max_partition_count``
— the connector never fetches every partition of a table.

Each table's version token is a hash of the Thrift table object as the metastore sent it (columns,
partition keys, storage, parameters — which include ``transient_lastDdlTime`` and, for an Iceberg table,
its ``metadata_location`` — and the view text) and of its database's, taken *before* any type is parsed,
so a table whose token did not change costs its listing and nothing more: no schema conversion, no
comparison with the catalog. ``transient_lastDdlTime`` alone would not do: the metastore sets it only
when a client leaves it out of an ``alter_table`` (one that passes the table it read back keeps the old
value), and it counts seconds. Adding partitions changes no definition, so while ``recount_partitions`` is
on (the default) a partitioned table's token also holds its capped partition count, read by the listing
with one capped call per partitioned table.

Spark's datasource tables keep their real schema as JSON in the ``spark.sql.sources.schema`` parameter
(or split into ``spark.sql.sources.schema.numParts`` + ``.part.N``); where it is present it is the
schema reported, since the Hive columns of such a table may be a placeholder. Datasets follow
OpenLineage naming: namespace ``hive://host:port``, name ``database.table``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import orjson
from pydantic import Field

from headwater.catalog.connectors.base import Connector, ConnectorConfig, ConnectorError, unreachable
from headwater.catalog.connectors.hive_types import HiveColumn, flatten_columns, parse_hive_type, parse_spark_schema
from headwater.catalog.connectors.listing import DatasetRef, ListingPage, LoadedDataset
from headwater.catalog.models import DatasetKind
from headwater.catalog.snapshots import DatasetSnapshot
from headwater.egress import EgressPolicy, Unreachable

__all__ = ["HiveConfig", "HiveConnector", "spark_schema_text"]

_SPARK_SCHEMA = "spark.sql.sources.schema"
_VIEW_TYPES = ("VIRTUAL_VIEW", "MATERIALIZED_VIEW")
# Input format class (lower case, substring) -> the storage format reported.
_FORMATS = (
    ("parquet", "parquet"),
    ("orc", "orc"),
    ("avro", "avro"),
    ("rcfile", "rcfile"),
    ("sequencefile", "sequencefile"),
    ("textinputformat", "textfile"),
)


class HiveConfig(ConnectorConfig):
    """How to reach a Hive Metastore's Thrift endpoint."""

    host: str = Field(min_length=1, max_length=255, description="Metastore host name or address.")
    port: int = Field(default=9083, ge=1, le=65535, description="Metastore Thrift port.")
    databases: list[str] | None = Field(default=None, max_length=1000, description="Only these databases.")
    timeout_seconds: float = Field(default=30.0, gt=0, le=600, description="Longest wait for one Thrift call.")
    max_partition_count: int = Field(
        default=10_000,
        ge=0,
        le=32_767,
        description="Count a table's partitions up to this many (0: do not count); the count is capped, "
        "never fetched whole.",
    )
    recount_partitions: bool = Field(
        default=True,
        description="Recount the partitions of partitioned tables on every sync (one capped call per table): "
        "adding partitions changes no table definition, so otherwise a new count is only seen by a full sync.",
    )


class _Gone(Exception):
    """The metastore says the object does not exist (dropped while we listed)."""


def spark_schema_text(parameters: Mapping[str, str]) -> str | None:
    """Spark's schema JSON from a table's parameters, joined from its parts when Spark split it."""
    if _SPARK_SCHEMA in parameters:
        return parameters[_SPARK_SCHEMA]
    parts = parameters.get(f"{_SPARK_SCHEMA}.numParts")
    if parts is None:
        return None
    try:
        count = int(parts)
        return "".join(parameters[f"{_SPARK_SCHEMA}.part.{index}"] for index in range(count))
    except (ValueError, KeyError):
        return None


def _format_of(table: Any, parameters: Mapping[str, str]) -> str:
    provider = parameters.get("spark.sql.sources.provider")
    if provider and provider.lower() != "hive":
        return provider.lower()
    if table.tableType in _VIEW_TYPES:
        return "hive"
    input_format = ((table.sd.inputFormat if table.sd else None) or "").lower()
    for needle, name in _FORMATS:
        if needle in input_format:
            return name
    return "hive"


def _comment(text: str | None) -> str | None:
    # Hive fills comments it cannot know with this placeholder.
    return None if not text or text == "from deserializer" else text


def _timestamp(seconds: int | None) -> str | None:
    if not seconds:
        return None
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat()


def _fields(columns: Any) -> list[tuple[Any, Any, Any]]:
    return [(c.name, c.type, c.comment) for c in columns or []]


def _database_print(database: Any) -> str:
    """A hash of what a table's snapshot takes from its database."""
    payload = [database.description, database.locationUri, database.parameters or {}]
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _version(database_print: str, table: Any, count: tuple[int, bool] | None) -> str:
    """A table's version token: a hash of its Thrift definition and its database's (see the module docstring),
    plus its partition count when it is recounted."""
    sd = table.sd
    serde = sd.serdeInfo if sd else None
    payload = {
        "database": database_print,
        "type": table.tableType,
        "owner": table.owner,
        "created": table.createTime,
        "parameters": table.parameters or {},
        "partition_keys": _fields(table.partitionKeys),
        "view": [table.viewOriginalText, table.viewExpandedText],
        "sd": None
        if sd is None
        else [_fields(sd.cols), sd.location, sd.inputFormat, sd.outputFormat, sd.numBuckets, sd.bucketCols],
        "serde": None if serde is None else [serde.serializationLib, serde.parameters or {}],
    }
    digest = hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return digest if count is None else f"{digest}:{count[0]}{'+' if count[1] else ''}"


class HiveConnector(Connector):
    """Reads a Hive Metastore over Thrift."""

    kind = "hive"
    Config = HiveConfig
    extra = "hive"
    requires = ("hive_metastore", "thrift")
    endpoint_keys = ("host", "port")
    config: HiveConfig

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # OpenLineage names Hive datasets by metastore, not by the source's own label.
        self.namespace = f"hive://{self.config.host}:{self.config.port}"
        self._transport: Any = None
        self._client: Any = None
        self._databases: dict[str, Any] = {}
        # The page just listed: name -> (database, table object, partition count if the listing counted).
        self._page: dict[str, tuple[Any, Any, tuple[int, bool] | None]] = {}
        self.converted = 0  # tables whose definition was converted to a snapshot (what a token spares)

    @property
    def where(self) -> str:
        """The metastore's address, for messages."""
        return f"the Hive Metastore at {self.config.host}:{self.config.port}"

    # ---------------------------------------------------------------------------------- calls

    def _connect(self) -> Any:
        if self._client is None:
            from hive_metastore import ThriftHiveMetastore
            from thrift.protocol import TBinaryProtocol
            from thrift.transport import TSocket, TTransport

            try:
                # Connect to an address the egress policy checked, not to a second resolution of the name.
                addresses = self.egress.addresses(self.config.host, self.config.port)
            except Unreachable as exc:
                raise unreachable(self.where, exc) from None
            transport = None
            error: Exception | None = None
            for address in addresses:
                socket = TSocket.TSocket(address, self.config.port)
                socket.setTimeout(int(self.config.timeout_seconds * 1000))
                transport = TTransport.TBufferedTransport(socket)
                try:
                    transport.open()
                    break
                except Exception as exc:
                    transport = None
                    error = exc
            if transport is None:
                raise unreachable(self.where, error)
            self._transport = transport
            self._client = ThriftHiveMetastore.Client(TBinaryProtocol.TBinaryProtocol(transport))
        return self._client

    def _disconnect(self) -> None:
        if self._transport is not None:
            with contextlib.suppress(Exception):  # closing a broken socket may fail too; it is gone either way
                self._transport.close()
        self._transport = None
        self._client = None

    def _call(self, what: str, method: str, *args: Any) -> Any:
        """Run one Thrift call; a missing object raises _Gone, anything else ConnectorError."""
        from hive_metastore.ttypes import NoSuchObjectException, UnknownDBException, UnknownTableException

        client = self._connect()
        try:
            return getattr(client, method)(*args)
        except (NoSuchObjectException, UnknownDBException, UnknownTableException) as exc:
            raise _Gone(str(exc)) from exc
        except Exception as exc:
            # A failed call leaves the socket in an unknown state: reconnect on the next call.
            self._disconnect()
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            raise ConnectorError(f"cannot {what} from {self.where}: {message}") from exc

    @classmethod
    def check_egress(cls, config: HiveConfig, policy: EgressPolicy) -> None:
        """The metastore's address must be one the egress policy allows."""
        policy.check_host(config.host, config.port)

    def check(self) -> None:
        """Connect and list the databases; any failure is "could not reach" (an open port that does not speak
        Thrift must look like a closed one)."""
        try:
            self._call("list the databases", "get_all_databases")
        except ConnectorError as exc:
            raise unreachable(self.where, exc) from None

    def close(self) -> None:
        """Close the Thrift connection."""
        self._disconnect()
        self._page.clear()
        self._databases.clear()
        super().close()

    # ------------------------------------------------------------------------------- listing

    def _database(self, name: str) -> Any:
        if name not in self._databases:
            self._databases[name] = self._call(f"read database {name!r}", "get_database", name)
        return self._databases[name]

    def list_pages(self) -> Iterator[ListingPage]:
        """Every table and view, one chunk of one database per page, with a definition hash as version."""
        size = self.config.page_size
        self._databases.clear()
        names = self._call("list the databases", "get_all_databases")
        wanted = self.config.databases
        for database in sorted(name for name in names if wanted is None or name in wanted):
            try:
                tables = sorted(self._call(f"list the tables of {database!r}", "get_all_tables", database))
                db = self._database(database)
            except _Gone:
                continue  # dropped while we listed: its tables are gone too
            for start in range(0, len(tables), size):
                chunk = tables[start : start + size]
                try:
                    objects = self._call(f"read tables of {database!r}", "get_table_objects_by_name", database, chunk)
                except _Gone:
                    break
                # A table dropped since get_all_tables is simply not returned: it is gone.
                self._page = {}
                refs: list[DatasetRef] = []
                db_print = _database_print(db)
                for table in sorted(objects, key=lambda t: t.tableName):
                    name = f"{table.dbName}.{table.tableName}"
                    try:
                        count = (
                            self._partition_count(database, table.tableName, table) if self._recounts(table) else None
                        )
                    except _Gone:
                        continue  # dropped since it was read
                    kind = DatasetKind.VIEW if table.tableType in _VIEW_TYPES else DatasetKind.TABLE
                    ref = DatasetRef(
                        namespace=self.namespace, name=name, version=_version(db_print, table, count), kind=kind
                    )
                    self._page[name] = (db, table, count)
                    refs.append(ref)
                if refs:
                    yield ListingPage(refs=refs)
        self._page = {}

    # ------------------------------------------------------------------------------- loading

    def load(self, ref: DatasetRef) -> LoadedDataset:
        """One table's definition and partition count."""
        database, _, name = ref.name.partition(".")
        cached = self._page.get(ref.name)
        try:
            if cached is None or (cached[2] is None and self._counts_partitions(cached[1])):
                db = self._database(database)
                table = cached[1] if cached else self._call(f"read table {ref.name!r}", "get_table", database, name)
                count = self._partition_count(database, name, table)
            else:
                db, table, count = cached
        except _Gone as exc:
            raise ConnectorError(f"table {ref.name!r} disappeared while it was read") from exc
        snapshot = self._snapshot(db, table)
        version = ref.version or _version(_database_print(db), table, count if self._recounts(table) else None)
        if count is not None:
            properties = {**snapshot.properties, "hive.partition_count": str(count[0])}
            if count[1]:
                properties["hive.partition_count_capped"] = "true"
            snapshot = replace(snapshot, properties=properties)
        return LoadedDataset(snapshot=snapshot, version=version)

    def _counts_partitions(self, table: Any) -> bool:
        return bool(table.partitionKeys) and table.tableType not in _VIEW_TYPES and self.config.max_partition_count > 0

    def _recounts(self, table: Any) -> bool:
        return self.config.recount_partitions and self._counts_partitions(table)

    def _partition_count(self, database: str, name: str, table: Any) -> tuple[int, bool] | None:
        """(count, capped) for a partitioned table, read with a cap; None when not counted."""
        limit = self.config.max_partition_count
        if not self._counts_partitions(table):
            return None
        names = self._call(f"count the partitions of {database}.{name}", "get_partition_names", database, name, limit)
        return len(names), len(names) >= limit

    def _columns(self, table: Any, parameters: Mapping[str, str]) -> tuple[list[HiveColumn], str | None]:
        """The table's columns and a problem reading them, if any.

        As Spark itself does: a datasource table's schema is the one Spark kept in its parameters; a Hive
        serde table's is its Hive columns, with Spark's copy used (for its nullability and exact types)
        only while it still matches them, ignoring case and nullability.
        """
        problem = None
        hive_columns: list[HiveColumn] = []
        for column in list((table.sd.cols if table.sd else None) or []) + list(table.partitionKeys or []):
            try:
                kind = parse_hive_type(column.type)
            except ValueError:
                kind = parse_hive_type("unknown")
                problem = problem or f"type of column {column.name!r} unreadable: {column.type!r}"
            hive_columns.append(HiveColumn(name=column.name, type=kind, comment=_comment(column.comment)))
        spark = spark_schema_text(parameters)
        if spark is None:
            return hive_columns, problem
        try:
            spark_columns = parse_spark_schema(spark)
        except (ValueError, KeyError, TypeError) as exc:
            return hive_columns, f"Spark schema unreadable, Hive columns used: {exc}"
        provider = (parameters.get("spark.sql.sources.provider") or "hive").lower()
        if provider != "hive" or [(c.name.lower(), c.type.signature()) for c in spark_columns] == [
            (c.name.lower(), c.type.signature()) for c in hive_columns
        ]:
            return spark_columns, None
        return hive_columns, problem

    def _snapshot(self, database: Any, table: Any) -> DatasetSnapshot:
        self.converted += 1
        parameters: dict[str, str] = dict(table.parameters or {})
        columns, problem = self._columns(table, parameters)
        sd = table.sd
        properties: dict[str, str] = {
            key: str(value)
            for key, value in parameters.items()
            if not key.startswith(_SPARK_SCHEMA) and key != "comment"
        }
        db_parameters = dict(database.parameters or {})
        properties.update({f"database.{key}": str(value) for key, value in db_parameters.items()})
        for key, value in (
            ("database.description", database.description),
            ("database.location", database.locationUri),
            ("hive.table_type", table.tableType),
            ("hive.owner", table.owner),
            ("hive.create_time", _timestamp(table.createTime)),
            ("hive.input_format", sd.inputFormat if sd else None),
            ("hive.output_format", sd.outputFormat if sd else None),
            ("hive.serde", sd.serdeInfo.serializationLib if sd and sd.serdeInfo else None),
            ("view_definition", table.viewOriginalText),
            ("hive.view.expanded_text", table.viewExpandedText),
            ("hive.schema_problem", problem),
        ):
            if value:
                properties[key] = str(value)
        if sd and sd.serdeInfo and sd.serdeInfo.parameters:
            properties.update({f"hive.serde.{k}": str(v) for k, v in sd.serdeInfo.parameters.items()})
        if sd and sd.numBuckets and sd.numBuckets > 0:
            properties["hive.num_buckets"] = str(sd.numBuckets)
            properties["hive.bucket_columns"] = ",".join(sd.bucketCols or [])
        is_view = table.tableType in _VIEW_TYPES
        return DatasetSnapshot(
            namespace=self.namespace,
            name=f"{table.dbName}.{table.tableName}",
            kind=DatasetKind.VIEW if is_view else DatasetKind.TABLE,
            fields=flatten_columns(columns),
            format=_format_of(table, parameters),
            location=None if is_view or not sd else sd.location,
            partitioning=[
                {"column": key.name, "transform": "identity", "type": key.type} for key in table.partitionKeys or []
            ],
            description=_comment(parameters.get("comment")),
            properties=properties,
        )
