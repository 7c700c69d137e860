"""The PostgreSQL connector: schemas, tables, views and materialized views of one database.

Listing reads ``pg_catalog`` page by page (keyset order on schema and name) and gives each relation a
version token: an md5 of its columns, types, nullability, comments, constraints and view definition, so
an incremental sync reflects only relations that changed. Loading goes through SQLAlchemy's inspector
with its multi-table reflection (one round of queries per page, not per table).

A column's ``attnum`` (stable across renames and type changes) is its field id, so a renamed column is
recorded as a rename. Datasets follow OpenLineage naming: namespace ``postgres://host:port``, name ``database.schema.table``.
Primary and foreign keys and view definitions are kept in the dataset's source properties
(``primary_key``, ``foreign_keys`` as JSON, ``view_definition``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from headwater.catalog.connectors.base import Connector, ConnectorConfig, ConnectorError, unreachable
from headwater.catalog.connectors.listing import DatasetRef, ListingPage, LoadedDataset
from headwater.catalog.fields import FlatField
from headwater.catalog.models import DatasetKind
from headwater.catalog.snapshots import DatasetSnapshot
from headwater.egress import EgressPolicy, Unreachable

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["PostgresConfig", "PostgresConnector"]

_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")

# One row per relation after (schema, name), with a hash of everything the connector reports about it.
_LIST_SQL = """
SELECT n.nspname AS schema_name, c.relname AS table_name, c.relkind AS relkind,
  md5(concat_ws('|', c.relkind, obj_description(c.oid, 'pg_class'),
    CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
    (SELECT string_agg(a.attnum || ':' || a.attname || ':' || format_type(a.atttypid, a.atttypmod) || ':'
                       || a.attnotnull || ':' || coalesce(col_description(c.oid, a.attnum), ''), ','
                       ORDER BY a.attnum)
       FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
    (SELECT string_agg(k.conname || ':' || pg_get_constraintdef(k.oid), ',' ORDER BY k.conname)
       FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype IN ('p', 'f', 'u')))) AS version
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND (CAST(:schemas AS text[]) IS NULL OR n.nspname = ANY(CAST(:schemas AS text[])))
  AND (n.nspname, c.relname) > (:after_schema, :after_name)
ORDER BY n.nspname, c.relname
LIMIT :limit
"""


# A column's attnum is stable for its whole life (renames and type changes keep it), so it is the field id.
_ATTNUM_SQL = """
SELECT c.relname, a.attname, a.attnum FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relname = ANY(CAST(:names AS text[])) AND a.attnum > 0 AND NOT a.attisdropped
"""


class PostgresConfig(ConnectorConfig):
    """How to reach a PostgreSQL database; the password comes from the source's ``password`` secret."""

    host: str = Field(min_length=1, max_length=255, description="Server host name or address.")
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = Field(min_length=1, max_length=63, description="The database to catalogue.")
    user: str = Field(min_length=1, max_length=63, description="A role that can read the catalog.")
    schemas: list[str] | None = Field(default=None, max_length=1000, description="Only these schemas.")
    sslmode: str | None = Field(default=None, pattern="^(disable|allow|prefer|require|verify-ca|verify-full)$")
    connect_timeout: int = Field(default=10, ge=1, le=300, description="Seconds to wait for a connection.")
    statement_timeout_ms: int = Field(default=60_000, ge=100, description="Longest catalog query allowed.")


def _error(what: str, exc: BaseException) -> ConnectorError:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return ConnectorError(f"{what}: {reason[0] if reason else type(exc).__name__}")


class PostgresConnector(Connector):
    """Reads one PostgreSQL database's catalog."""

    kind = "postgres"
    Config = PostgresConfig
    extra = "postgres"
    requires = ("psycopg",)
    endpoint_keys = ("host", "port", "sslmode")  # sslmode: a downgrade would expose the password
    config: PostgresConfig

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # OpenLineage names PostgreSQL datasets by server, not by the source's own label.
        self.namespace = f"postgres://{self.config.host}:{self.config.port}"
        self._engine: Engine | None = None

    @property
    def where(self) -> str:
        """The server and role, for messages."""
        return f"PostgreSQL at {self.config.host}:{self.config.port} (database {self.config.database!r})"

    @property
    def engine(self) -> Engine:
        """A small, read-only engine on the database."""
        if self._engine is None:
            from sqlalchemy import create_engine
            from sqlalchemy.engine import URL

            url = URL.create(
                "postgresql+psycopg",
                username=self.config.user,
                password=self.secrets.get("password"),
                host=self.config.host,
                port=self.config.port,
                database=self.config.database,
            )
            try:
                addresses = self.egress.addresses(self.config.host, self.config.port)
            except Unreachable as exc:
                raise unreachable(self.where, exc) from None
            connect_args: dict[str, Any] = {
                # libpq connects to the checked address(es); the name stays the host for TLS verification.
                "hostaddr": addresses[0],
                "connect_timeout": self.config.connect_timeout,
                "options": (
                    f"-c default_transaction_read_only=on -c statement_timeout={self.config.statement_timeout_ms}"
                ),
                "application_name": "headwater-sync",
            }
            if self.config.sslmode:
                connect_args["sslmode"] = self.config.sslmode
            self._engine = create_engine(url, pool_size=1, max_overflow=0, connect_args=connect_args)
        return self._engine

    def check(self) -> None:
        """Connect and authenticate."""
        from sqlalchemy import text

        engine = self.engine  # outside the try: an egress refusal is reported as it is
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:
            original = getattr(exc, "orig", exc)
            # libpq reports a server's refusal at connect time as text ("FATAL:  role ... does not exist").
            if getattr(original, "sqlstate", None) is None and "FATAL:" not in str(original):
                # No answer from a PostgreSQL server (refused, timed out, another protocol): one message for all.
                raise unreachable(self.where, exc) from None
            raise _error(f"cannot connect to {self.where} as {self.config.user!r}", exc) from exc

    @classmethod
    def check_egress(cls, config: PostgresConfig, policy: EgressPolicy) -> None:
        """The server's address must be one the egress policy allows."""
        policy.check_host(config.host, config.port)

    def close(self) -> None:
        """Close the connection pool."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        super().close()

    def list_pages(self) -> Iterator[ListingPage]:
        """Every table and view with a catalog hash as its version, page by page."""
        from sqlalchemy import text

        after = ("", "")
        size = self.config.page_size
        while True:
            try:
                with self.engine.connect() as connection:
                    rows = connection.execute(
                        text(_LIST_SQL),
                        {
                            "schemas": self.config.schemas,
                            "after_schema": after[0],
                            "after_name": after[1],
                            "limit": size,
                        },
                    ).all()
            except Exception as exc:
                raise _error(f"cannot list the relations of {self.where}", exc) from exc
            if not rows:
                return
            yield ListingPage(
                refs=[
                    DatasetRef(
                        namespace=self.namespace,
                        name=f"{self.config.database}.{schema}.{table}",
                        version=version,
                        kind=DatasetKind.VIEW if relkind in ("v", "m") else DatasetKind.TABLE,
                    )
                    for schema, table, relkind, version in rows
                ]
            )
            if len(rows) < size:
                return
            after = (rows[-1][0], rows[-1][1])

    def _split(self, ref: DatasetRef) -> tuple[str, str]:
        _, schema, table = ref.name.split(".", 2)
        return schema, table

    def load(self, ref: DatasetRef) -> LoadedDataset:
        """Reflect one relation."""
        ((_, result),) = self.load_many([ref])
        if isinstance(result, ConnectorError):
            raise result
        return result

    def load_many(self, refs: Sequence[DatasetRef]) -> Iterator[tuple[DatasetRef, LoadedDataset | ConnectorError]]:
        """Reflect a page of relations, schema by schema, with SQLAlchemy's multi-table inspector."""
        from sqlalchemy import inspect, text
        from sqlalchemy.engine.reflection import ObjectKind

        by_schema: dict[str, list[DatasetRef]] = {}
        for ref in refs:
            by_schema.setdefault(self._split(ref)[0], []).append(ref)
        try:
            with self.engine.connect() as connection:
                inspector = inspect(connection)
                results: dict[str, LoadedDataset | ConnectorError] = {}
                for schema, group in by_schema.items():
                    names = [self._split(ref)[1] for ref in group]
                    kw: dict[str, Any] = {"schema": schema, "filter_names": names, "kind": ObjectKind.ANY}
                    columns = inspector.get_multi_columns(**kw)
                    pks = inspector.get_multi_pk_constraint(**kw)
                    fks = inspector.get_multi_foreign_keys(**kw)
                    comments = inspector.get_multi_table_comment(**kw)
                    attnums = {
                        (table, column): number
                        for table, column, number in connection.execute(
                            text(_ATTNUM_SQL), {"schema": schema, "names": names}
                        )
                    }
                    for ref in group:
                        key = (schema, self._split(ref)[1])
                        if key not in columns:
                            results[ref.name] = ConnectorError(f"{ref.name!r} disappeared while it was read")
                            continue
                        view_sql = None
                        if ref.kind == DatasetKind.VIEW:
                            view_sql = inspector.get_view_definition(key[1], schema=schema)
                        results[ref.name] = LoadedDataset(
                            snapshot=self._snapshot(
                                ref,
                                [{**c, "attnum": attnums.get((key[1], c["name"]))} for c in columns[key]],
                                pks.get(key),
                                fks.get(key, []),
                                comments.get(key),
                                view_sql,
                            ),
                            version=ref.version,
                        )
        except Exception as exc:
            error = _error(f"cannot read the catalog of {self.where}", exc)
            for ref in refs:
                yield ref, error
            return
        for ref in refs:
            yield ref, results[ref.name]

    def _snapshot(
        self,
        ref: DatasetRef,
        columns: list[Any],
        pk: Any,
        fks: list[Any],
        comment: Any,
        view_sql: str | None,
    ) -> DatasetSnapshot:
        dialect = self.engine.dialect
        schema = self._split(ref)[0]
        fields = [
            FlatField(
                path=column["name"],
                name=column["name"],
                type=column["type"].compile(dialect=dialect).lower(),
                nullable=bool(column["nullable"]),
                description=column.get("comment"),
                field_id=column.get("attnum"),
            )
            for column in columns
        ]
        properties: dict[str, str] = {}
        if pk and pk.get("constrained_columns"):
            properties["primary_key"] = json.dumps(pk["constrained_columns"])
        if fks:
            properties["foreign_keys"] = json.dumps(
                [
                    {
                        "name": fk.get("name"),
                        "columns": fk["constrained_columns"],
                        "references": ".".join(
                            (self.config.database, fk.get("referred_schema") or schema, fk["referred_table"])
                        ),
                        "referred_columns": fk["referred_columns"],
                    }
                    for fk in fks
                ]
            )
        if view_sql:
            properties["view_definition"] = view_sql.strip()
        return DatasetSnapshot(
            namespace=ref.namespace,
            name=ref.name,
            kind=ref.kind,
            fields=fields,
            format="postgres",
            description=(comment or {}).get("text"),
            properties=properties,
        )
