"""The catalog as SQL lineage's schema source: table names in SQL mapped to datasets and their columns, with the
datasets an audience may not see treated as unknown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlglot import exp

from headwater.auth.policy import Audience
from headwater.catalog.models import Dataset, Field
from headwater.catalog.restrictions import hidden_among
from headwater.lineage.sql.model import Identity
from headwater.lineage.sql.parse import SqlLineageError

__all__ = ["Tables", "schema_for", "tables_in"]

_MAX_SQL_TABLES = 200


@dataclass
class Tables:
    """Maps the SQL's table names to catalog identities and columns."""

    session: Session
    namespace: str | None
    default_schema: str | None
    known: Sequence[Identity]
    audience: Audience = None  # restricted datasets it may not see are as if not in the catalog
    identities: dict[str, Identity] = field(default_factory=dict)
    columns: dict[Identity, dict[str, str]] = field(default_factory=dict)
    # Every field path the catalog knows per table, nested struct members (a.b.c) included.
    paths: dict[Identity, set[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        """Add a warning once."""
        if message not in self.warnings:
            self.warnings.append(message)

    def has_columns(self, table: exp.Table) -> bool:
        """Whether the catalog lists columns for ``table``."""
        identity = self.identity(table)
        self.load_columns([identity])
        return bool(self.columns.get(identity))

    def sql_name(self, table: exp.Table) -> str:
        parts = [p for p in (table.db, table.name) if p]
        if len(parts) == 1 and self.default_schema:
            parts.insert(0, self.default_schema)
        return ".".join(parts)

    def identity(self, table: exp.Table) -> Identity:
        key = self.sql_name(table)
        found = self.identities.get(key)
        if found is None:
            found = self._find(key, table.name)
            self.identities[key] = found
        return found

    def _find(self, key: str, bare: str) -> Identity:
        lowered = key.lower()
        for namespace, name in self.known:  # the event's own datasets first
            if name.lower() == lowered or name.lower().endswith(("." + lowered, "/" + lowered)):
                return namespace, name
        stmt = select(Dataset.namespace, Dataset.name, Dataset.id).where(Dataset.deleted_at.is_(None))
        names = {key, key.lower()} if "." in key else {key, key.lower(), bare}
        stmt = stmt.where(Dataset.name.in_(names))
        if self.namespace:
            stmt = stmt.where(Dataset.namespace == self.namespace)
        found = list(self.session.execute(stmt.limit(5)).all())
        hidden = hidden_among(self.session, [r[2] for r in found], self.audience) if self.audience is not None else ()
        rows = [(r[0], r[1]) for r in found if r[2] not in hidden]
        if len(rows) > 1:
            self.warnings.append(
                f"table {key!r} matches {len(rows)} catalog datasets ({rows[0][0]}, {rows[1][0]}, ...); "
                "pass a namespace to choose; used the first"
            )
        if rows:
            return rows[0]
        namespace = self.namespace or "unknown"
        self.warnings.append(f"table {key!r} is not in the catalog; recorded as {namespace}/{key}")
        return namespace, key

    def load_columns(self, identities: Sequence[Identity]) -> None:
        wanted = [i for i in dict.fromkeys(identities) if i not in self.columns]
        if not wanted:
            return
        rows = self.session.execute(
            select(Dataset.namespace, Dataset.name, Field.path, Field.type, Field.parent_path, Dataset.id)
            .join(Field, Field.dataset_id == Dataset.id)
            .where(Dataset.namespace.in_({i[0] for i in wanted}), Dataset.name.in_({i[1] for i in wanted}))
            .order_by(Dataset.id, Field.position)
        ).all()
        hidden = hidden_among(self.session, {r[5] for r in rows}, self.audience) if self.audience is not None else ()
        for identity in wanted:
            self.columns[identity] = {}
            self.paths[identity] = set()
        for namespace, name, path, type_, parent, dataset_id in rows:
            if (namespace, name) in self.columns and dataset_id not in hidden:
                self.paths[(namespace, name)].add(path)
                if parent is None:
                    self.columns[(namespace, name)][path] = type_

    def member(self, identity: Identity, path: str, suffix: Sequence[str]) -> str:
        """The deepest field path under ``path`` + ``suffix`` the catalog knows (``a.b.c`` for ``a`` and
        ``(b, c)`` when the struct's members are catalogued, else ``a.b`` or ``a``)."""
        if not suffix:
            return path
        self.load_columns([identity])
        known = self.paths.get(identity) or set()
        for depth in range(len(suffix), 0, -1):
            candidate = ".".join([path, *suffix[:depth]])
            if candidate in known:
                return candidate
        return path


def tables_in(expression: exp.Expr) -> list[exp.Table]:
    """Base tables a statement reads or writes (CTE names excluded)."""
    ctes = {cte.alias_or_name.lower() for cte in expression.find_all(exp.CTE)}
    tables = [
        t
        for t in expression.find_all(exp.Table)
        if t.name and not isinstance(t.this, exp.Func) and not (not t.db and t.name.lower() in ctes)
    ]
    if len(tables) > _MAX_SQL_TABLES:
        raise SqlLineageError(f"the SQL names {len(tables)} tables; at most {_MAX_SQL_TABLES} are analysed")
    return tables


def schema_for(
    tables: Tables, sql_tables: Sequence[exp.Table], extra: dict[str, set[str]] | None = None
) -> dict[str, Any]:
    """The catalog's columns in sqlglot's nested ``{db: {table: {column: type}}}`` form, with ``extra`` columns
    (by SQL name) that the statement shows a table has."""
    identities = {tables.sql_name(t): tables.identity(t) for t in sql_tables}
    tables.load_columns(list(identities.values()))
    schema: dict[str, Any] = {}
    for sql_name, identity in identities.items():
        columns = [*(tables.columns.get(identity) or {}), *sorted((extra or {}).get(sql_name, ()))]
        if not columns:
            continue
        db, _, name = sql_name.rpartition(".")
        schema.setdefault(db or "default", {})[name] = {c: "string" for c in columns}
    return schema
