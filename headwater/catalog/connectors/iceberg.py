"""The Iceberg connector: any catalog pyiceberg's ``load_catalog`` reaches (SQL, REST, Hive, Glue).

Datasets are named ``<namespace levels>.<table>`` in the source's namespace. Each snapshot carries the
current schema (Iceberg field ids as stable field identity, so a rename is a rename), every earlier
schema as history, the partition spec, sort order, table and namespace properties, location, format
version and the current snapshot's summary.

The version token of a table is its metadata location, which changes with every commit. For SQL
catalogs the listing reads it straight from the catalog's ``iceberg_tables`` rows, page by page, and for
Hive catalogs from the metastore's table objects, so a no-change re-sync loads no table. A REST catalog
lists identifiers only: its tables are loaded conditionally on the token stored at the last sync (the
server's ETag as ``If-None-Match``, else the answer's metadata location), see
:mod:`~headwater.catalog.connectors.iceberg_tokens`. Glue catalogs report no token: every table is loaded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from headwater.catalog.connectors.base import Connector, ConnectorConfig, ConnectorError, unreachable
from headwater.catalog.connectors.iceberg_tokens import list_hive, load_rest
from headwater.catalog.connectors.listing import DatasetRef, ListingPage, LoadedDataset, Unmodified
from headwater.catalog.fields import FlatField
from headwater.catalog.models import DatasetKind
from headwater.catalog.snapshots import DatasetSnapshot, HistoricalSchema
from headwater.egress import EgressPolicy, EgressRefused

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.io import FileIO
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table
    from pyiceberg.types import IcebergType

__all__ = ["IcebergConfig", "IcebergConnector", "flatten_schema"]

# A REST catalog's tables are asked for this many at a time.
REST_CONCURRENCY = 4


class IcebergConfig(ConnectorConfig):
    """How to reach an Iceberg catalog; secrets (``credential``, ``token``, ``s3.secret-access-key``…) are
    passed to pyiceberg as catalog properties of the same name."""

    type: Literal["sql", "rest", "hive", "glue"] = Field(default="rest", description="pyiceberg catalog type.")
    uri: str | None = Field(default=None, max_length=4096, description="Catalog URI (required except for glue).")
    warehouse: str | None = Field(default=None, max_length=4096, description="Warehouse location or name.")
    catalog_name: str = Field(default="default", min_length=1, max_length=255, description="pyiceberg catalog name.")
    namespaces: list[str] | None = Field(
        default=None, max_length=1000, description="Only these namespaces (and the ones nested in them)."
    )
    properties: dict[str, str] = Field(default_factory=dict, description="Further pyiceberg catalog properties.")

    @field_validator("properties")
    @classmethod
    def _safe_properties(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if _refused_property(key):
                raise ValueError(
                    f"the catalog property {key!r} is refused: py-* properties make pyiceberg load Python classes "
                    "(py-io-impl, py-catalog-impl...), which would run code chosen by the source's author"
                )
        return value

    @model_validator(mode="after")
    def _uri_required(self) -> IcebergConfig:
        if self.type != "glue" and not self.uri:
            raise ValueError(f"uri is required for a {self.type} catalog")
        return self


def _refused_property(key: str) -> bool:
    # pyiceberg reads py-io-impl, py-catalog-impl and friends to import and instantiate classes by name.
    return key.strip().lower().startswith("py-")


def _url_property(key: str) -> bool:
    key = key.lower()
    return key.endswith(("uri", "endpoint", "url")) or key == "oauth2-server-uri"


def _sqlalchemy_target(uri: str) -> tuple[str | None, int | None, str | None]:
    """(host, port, sqlite file) of a SQL catalog's SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    if url.get_backend_name() == "sqlite":
        return None, None, url.database
    return url.host, url.port or 5432, None


def _source_error(what: str, exc: BaseException) -> ConnectorError:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return ConnectorError(f"{what}: {type(exc).__name__}: {reason[0] if reason else ''}".rstrip(": "))


def _type_name(kind: IcebergType) -> str:
    """The type as Iceberg spells it; nested types name their members' types only, not their fields, so
    renaming a struct member changes the member's row and not its parent's type."""
    from pyiceberg.types import ListType, MapType, StructType

    if isinstance(kind, StructType):
        return "struct"
    if isinstance(kind, ListType):
        return f"list<{_type_name(kind.element_type)}>"
    if isinstance(kind, MapType):
        return f"map<{_type_name(kind.key_type)}, {_type_name(kind.value_type)}>"
    return str(kind)


def flatten_schema(schema: Schema) -> list[FlatField]:
    """An Iceberg schema as flat fields named the Iceberg way (``a.b``, ``a.element``, ``m.key``/``m.value``)."""
    from pyiceberg.types import ListType, MapType, StructType

    out: list[FlatField] = []

    def visit(kind: IcebergType, path: str) -> None:
        if isinstance(kind, StructType):
            for child in kind.fields:
                add(f"{path}.{child.name}", child.name, child.field_type, child.required, child.field_id, child.doc)
        elif isinstance(kind, ListType):
            add(f"{path}.element", "element", kind.element_type, kind.element_required, kind.element_id, None)
        elif isinstance(kind, MapType):
            add(f"{path}.key", "key", kind.key_type, True, kind.key_id, None)
            add(f"{path}.value", "value", kind.value_type, kind.value_required, kind.value_id, None)

    def add(path: str, name: str, kind: IcebergType, required: bool, field_id: int, doc: str | None) -> None:
        parent = path.rsplit(".", 1)[0] if "." in path else None
        out.append(
            FlatField(
                path=path,
                name=name,
                type=_type_name(kind),
                nullable=not required,
                parent_path=parent,
                field_id=field_id,
                description=doc,
            )
        )
        visit(kind, path)

    for top in schema.fields:
        add(top.name, top.name, top.field_type, top.required, top.field_id, top.doc)
    return out


def _sort_order_text(table: Table) -> str:
    order = table.sort_order()
    schema = table.schema()
    parts = []
    for item in order.fields:
        column = schema.find_column_name(item.source_id) or f"#{item.source_id}"
        transform = str(item.transform)
        target = column if transform == "identity" else f"{transform}({column})"
        parts.append(f"{target} {item.direction.name} {item.null_order.name.replace('_', ' ')}")
    return ", ".join(parts)


def _timestamp(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat()


class IcebergConnector(Connector):
    """Reads an Iceberg catalog through pyiceberg."""

    kind = "iceberg"
    Config = IcebergConfig
    extra = "iceberg"
    requires = ("pyiceberg",)
    # Where the credentials go: properties can name other endpoints (oauth2-server-uri, s3.endpoint).
    endpoint_keys = ("type", "uri", "warehouse", "properties")
    config: IcebergConfig

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._catalog: Catalog | None = None
        self._namespace_properties: dict[tuple[str, ...], dict[str, str]] = {}
        self._file_io: dict[str, FileIO] = {}
        # Tables read and converted, and conditional loads answered "unchanged", by this connector.
        self.loaded = 0
        self.not_modified = 0

    # ------------------------------------------------------------------------------ connecting

    @classmethod
    def check_egress(cls, config: IcebergConfig, policy: EgressPolicy) -> None:
        """The catalog's endpoint, the URLs among its properties and local catalog or warehouse files must be
        allowed by the egress policy (pyiceberg resolves names itself: see docs/security/egress.md)."""
        if config.uri:
            if config.type == "rest":
                policy.check_url(config.uri)
            elif config.type == "hive":
                for uri in config.uri.split(","):
                    parts = urlsplit(uri.strip())
                    if parts.scheme != "thrift" or not parts.hostname:
                        raise EgressRefused(f"{uri!r} is not a thrift://host:port metastore URI")
                    policy.check_host(parts.hostname, parts.port or 9083)
            elif config.type == "sql":
                try:
                    host, port, database = _sqlalchemy_target(config.uri)
                except Exception:
                    raise EgressRefused(f"{config.uri!r} is not a SQLAlchemy URL") from None
                if database is not None:
                    policy.check_file(database)
                elif host is not None and port is not None:
                    policy.check_host(host, port)
        if config.warehouse and (config.warehouse.startswith("file:") or config.warehouse.startswith("/")):
            policy.check_file(config.warehouse)
        for key, value in config.properties.items():
            if _url_property(key) and "://" in value:
                policy.check_url(value)

    def _catalog_properties(self) -> dict[str, str]:
        refused = [key for key in self.secrets if _refused_property(key)]
        if refused:
            raise EgressRefused(f"the secret {refused[0]!r} names a catalog property a source may not set")
        props = {**self.config.properties, **self.secrets, "type": self.config.type}
        if self.config.uri:
            props["uri"] = self.config.uri
        if self.config.warehouse:
            props["warehouse"] = self.config.warehouse
        if self.config.type == "sql":
            # A reader must never create catalog tables: a missing catalog database is "source down",
            # not an empty catalog whose listing would delete every dataset.
            props["init_catalog_tables"] = "false"
        return props

    @property
    def catalog(self) -> Catalog:
        """The pyiceberg catalog, connected on first use."""
        if self._catalog is None:
            from pyiceberg.catalog import load_catalog

            properties = self._catalog_properties()
            try:
                self._catalog = load_catalog(self.config.catalog_name, **properties)
            except Exception as exc:  # pyiceberg raises many unrelated types; all mean "cannot connect"
                # One message whatever the cause: an open port must look like a closed one.
                raise unreachable(f"Iceberg catalog {self.config.uri!r}", exc) from None
        return self._catalog

    def check(self) -> None:
        """Connect and list the top-level namespaces."""
        try:
            self.catalog.list_namespaces()
        except ConnectorError:
            raise
        except Exception as exc:
            raise _source_error("cannot list the catalog's namespaces", exc) from exc

    def close(self) -> None:
        """Dispose of a SQL catalog's engine."""
        engine = getattr(self._catalog, "engine", None)
        if engine is not None:
            engine.dispose()
        self._catalog = None
        self._file_io.clear()  # built from the closed catalog's properties
        super().close()

    # ------------------------------------------------------------------------------- listing

    def _wanted(self, namespace: str) -> bool:
        chosen = self.config.namespaces
        return chosen is None or any(namespace == n or namespace.startswith(n + ".") for n in chosen)

    def list_pages(self) -> Iterator[ListingPage]:
        """Every table, page by page; SQL and Hive catalogs give each table's metadata location as its version."""
        from pyiceberg.catalog.sql import SqlCatalog

        catalog = self.catalog
        if isinstance(catalog, SqlCatalog):
            yield from self._list_sql(catalog)
        elif self.config.type == "hive":
            yield from self._list_hive(catalog)
        else:
            yield from self._list_generic(catalog)

    def _list_hive(self, catalog: Catalog) -> Iterator[ListingPage]:
        pages = list_hive(catalog, namespace=self.namespace, page_size=self.config.page_size, wanted=self._wanted)
        while True:
            try:
                page = next(pages)
            except StopIteration:
                return
            except Exception as exc:
                raise _source_error("cannot list the catalog's tables", exc) from exc
            yield page

    def _list_sql(self, catalog: Any) -> Iterator[ListingPage]:
        from pyiceberg.catalog.sql import IcebergTables
        from sqlalchemy import or_, select, tuple_
        from sqlalchemy.orm import Session

        size = self.config.page_size
        after: tuple[str, str] | None = None
        columns = (IcebergTables.table_namespace, IcebergTables.table_name, IcebergTables.metadata_location)
        while True:
            stmt = select(*columns).where(IcebergTables.catalog_name == catalog.name)
            type_filter = getattr(catalog, "_iceberg_type_filter", lambda: None)()
            if type_filter is not None:
                stmt = stmt.where(type_filter)
            if self.config.namespaces:
                stmt = stmt.where(
                    or_(
                        *(
                            or_(IcebergTables.table_namespace == n, IcebergTables.table_namespace.like(f"{n}.%"))
                            for n in self.config.namespaces
                        )
                    )
                )
            if after is not None:
                stmt = stmt.where(tuple_(IcebergTables.table_namespace, IcebergTables.table_name) > tuple_(*after))
            stmt = stmt.order_by(IcebergTables.table_namespace, IcebergTables.table_name).limit(size)
            try:
                with Session(catalog.engine) as session:
                    rows = session.execute(stmt).all()
            except Exception as exc:
                raise _source_error("cannot list the catalog's tables", exc) from exc
            if not rows:
                return
            yield ListingPage(
                refs=[
                    DatasetRef(namespace=self.namespace, name=f"{ns}.{name}", version=location)
                    for ns, name, location in rows
                ]
            )
            if len(rows) < size:
                return
            after = (rows[-1][0], rows[-1][1])

    def _list_generic(self, catalog: Catalog) -> Iterator[ListingPage]:
        from pyiceberg.exceptions import NoSuchNamespaceError

        size = self.config.page_size
        page: list[DatasetRef] = []
        pending: list[tuple[str, ...]] = []
        try:
            pending = sorted(catalog.list_namespaces(), reverse=True)
        except Exception as exc:
            raise _source_error("cannot list the catalog's namespaces", exc) from exc
        while pending:
            namespace = pending.pop()
            try:
                children = catalog.list_namespaces(namespace)
                tables = catalog.list_tables(namespace)
            except NoSuchNamespaceError:
                continue  # dropped while we listed: its tables are gone too
            except Exception as exc:
                raise _source_error(f"cannot list namespace {'.'.join(namespace)!r}", exc) from exc
            pending.extend(sorted((c for c in children if c != namespace), reverse=True))
            if not self._wanted(".".join(namespace)):
                continue
            for identifier in sorted(tables):
                page.append(DatasetRef(namespace=self.namespace, name=".".join(identifier)))
                if len(page) >= size:
                    yield ListingPage(refs=page)
                    page = []
        if page:
            yield ListingPage(refs=page)

    # ------------------------------------------------------------------------------- loading

    def _properties_of(self, namespace: tuple[str, ...]) -> dict[str, str]:
        if namespace not in self._namespace_properties:
            try:
                props = self.catalog.load_namespace_properties(namespace)
            except Exception:  # properties are a nicety; a table must not fail over them
                props = {}
            self._namespace_properties[namespace] = {k: str(v) for k, v in props.items() if k != "exists"}
        return self._namespace_properties[namespace]

    def load(self, ref: DatasetRef) -> LoadedDataset | Unmodified:
        """Load one table's metadata (no data files are read); Unmodified when a REST catalog's answer says the
        stored token still holds."""
        return self._finish(ref, self._read(ref))

    def load_many(
        self, refs: Sequence[DatasetRef]
    ) -> Iterator[tuple[DatasetRef, LoadedDataset | Unmodified | ConnectorError]]:
        """Load tables; a REST catalog's are asked for ``REST_CONCURRENCY`` at a time (one request each, which
        a remote server's latency, not our work, makes slow), then converted here one by one."""
        if self.config.type != "rest" or len(refs) < 2:
            yield from super().load_many(refs)
            return
        self.catalog  # noqa: B018 - connect (and authenticate) once, before the threads share the session
        with ThreadPoolExecutor(REST_CONCURRENCY, thread_name_prefix="iceberg-rest") as pool:
            for ref, read in zip(refs, pool.map(self._read_or_error, refs), strict=True):
                try:
                    yield ref, self._finish(ref, read)
                except ConnectorError as exc:
                    yield ref, exc

    def _read_or_error(self, ref: DatasetRef) -> tuple[Table, str | None] | Unmodified | ConnectorError:
        try:
            return self._read(ref)
        except ConnectorError as exc:
            return exc

    def _read(self, ref: DatasetRef) -> tuple[Table, str | None] | Unmodified:
        """The table (and its token, when it is not the metadata location alone), or Unmodified."""
        identifier = tuple(ref.name.split("."))
        try:
            if ref.version:
                return self._load_listed(identifier, ref.version), None
            if self.config.type == "rest":
                return load_rest(self.catalog, identifier, ref.stored_version)
            return self.catalog.load_table(identifier), None
        except ConnectorError:
            raise
        except Exception as exc:
            raise _source_error(f"cannot load Iceberg table {ref.name!r}", exc) from exc

    def _finish(
        self, ref: DatasetRef, read: tuple[Table, str | None] | Unmodified | ConnectorError
    ) -> LoadedDataset | Unmodified:
        if isinstance(read, ConnectorError):
            raise read
        if isinstance(read, Unmodified):
            self.not_modified += 1
            return read
        table, version = read
        self.loaded += 1
        return LoadedDataset(snapshot=self.snapshot_of(ref, table), version=version or table.metadata_location)

    def _load_listed(self, identifier: tuple[str, ...], metadata_location: str) -> Table:
        """A table whose metadata location the listing already read (SQL catalogs): its metadata file, read
        directly, without asking the catalog database for the location again as ``load_table`` would."""
        from pyiceberg.io import load_file_io
        from pyiceberg.serializers import FromInputFile
        from pyiceberg.table import Table

        scheme = metadata_location.partition("://")[0]
        io = self._file_io.get(scheme)
        if io is None:  # one FileIO per scheme: pyiceberg would build two per table
            io = self._file_io[scheme] = load_file_io(properties=self.catalog.properties, location=metadata_location)
        metadata = FromInputFile.table_metadata(io.new_input(metadata_location))
        return Table(
            identifier=identifier, metadata=metadata, metadata_location=metadata_location, io=io, catalog=self.catalog
        )

    def snapshot_of(self, ref: DatasetRef, table: Table) -> DatasetSnapshot:
        """What Headwater keeps of one Iceberg table."""
        metadata = table.metadata
        schema = table.schema()
        spec = table.spec()
        partitioning: list[dict[str, Any]] = [
            {
                "column": schema.find_column_name(item.source_id) or f"#{item.source_id}",
                "transform": str(item.transform),
                "name": item.name,
                "field_id": item.field_id,
            }
            for item in spec.fields
        ]
        properties: dict[str, str] = {
            f"namespace.{key}": value for key, value in self._properties_of(tuple(ref.name.split(".")[:-1])).items()
        }
        properties.update({key: str(value) for key, value in metadata.properties.items()})
        properties["iceberg.format_version"] = str(metadata.format_version)
        properties["iceberg.table_uuid"] = str(metadata.table_uuid)
        properties["iceberg.partition_spec_id"] = str(spec.spec_id)
        sort_order = _sort_order_text(table)
        if sort_order:
            properties["iceberg.sort_order"] = sort_order
        current = table.current_snapshot()
        if current is not None:
            properties["iceberg.snapshot.id"] = str(current.snapshot_id)
            properties["iceberg.snapshot.timestamp"] = _timestamp(current.timestamp_ms)
            summary = current.summary
            if summary is not None:
                properties["iceberg.snapshot.operation"] = str(summary.operation.value)
                for key in ("added-records", "added-data-files", "total-records", "total-data-files"):
                    if summary.get(key) is not None:
                        properties[f"iceberg.snapshot.{key}"] = str(summary[key])
        history = [
            HistoricalSchema(fields=flatten_schema(old), source_schema_id=str(old.schema_id))
            for old in sorted(metadata.schemas, key=lambda s: s.schema_id)
            if old.schema_id != schema.schema_id
        ]
        return DatasetSnapshot(
            namespace=ref.namespace,
            name=ref.name,
            kind=DatasetKind.TABLE,
            fields=flatten_schema(schema),
            format="iceberg",
            location=table.location(),
            partitioning=partitioning,
            description=metadata.properties.get("comment"),
            properties=properties,
            source_schema_id=str(schema.schema_id),
            schema_history=history,
        )
