"""Qualifying a statement's columns against the catalog, degrading step by step when the catalog falls short.

sqlglot's qualifier refuses some SQL over tables it has no schema for (an unqualified column in a correlated
subquery, an alias used in WHERE, a ``USING`` column a known table lacks). Rather than lose the whole statement,
qualification is retried with the columns the statement itself shows those tables have, then with column
qualification off; each retry adds a warning naming what could not be resolved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope

from headwater.lineage.sql.catalog import Tables, schema_for
from headwater.lineage.sql.parse import DIALECTS

__all__ = ["qualified"]


def qualified(
    tables: Tables, query: exp.Expr, dialect: str, sql_tables: Sequence[exp.Table]
) -> tuple[exp.Expr, Scope | None]:
    """The query qualified against the catalog (``SELECT *`` expanded) and its root scope."""
    options: dict[str, Any] = {
        "dialect": DIALECTS[dialect],
        "validate_qualify_columns": False,
        "quote_identifiers": False,
        "identify": False,
        "db": tables.default_schema,
    }
    try:
        done = qualify(query.copy(), schema=schema_for(tables, sql_tables) or None, **options)
        return done, build_scope(done)
    except SqlglotError as exc:
        refusal = str(exc)
    extra = _shown_columns(tables, query, sql_tables)
    try:
        done = qualify(query.copy(), schema=schema_for(tables, sql_tables, extra) or None, **options)
        shown = "; ".join(f"{name}: {', '.join(sorted(columns))}" for name, columns in sorted(extra.items()))
        tables.warn(f"columns resolved from what the statement shows ({refusal}): {shown}")
        return done, build_scope(done)
    except SqlglotError:
        pass
    done = qualify(query.copy(), schema=schema_for(tables, sql_tables) or None, qualify_columns=False, **options)
    tables.warn(
        f"columns could not all be resolved ({refusal}); unqualified columns are traced where one table could hold them"
    )
    return done, build_scope(done)


def _shown_columns(tables: Tables, query: exp.Expr, sql_tables: Sequence[exp.Table]) -> dict[str, set[str]]:
    """Columns the statement shows tables have beyond what the catalog lists, by the table's SQL name.

    A column qualified by a table without catalog columns is that table's; an unqualified one that no catalogued
    table has is the one uncatalogued table's (when there is just one); a ``USING`` column is both sides'."""
    names: dict[str, str] = {}  # alias or name -> SQL name
    for table in sql_tables:
        names[table.alias_or_name] = names[table.name] = tables.sql_name(table)
    unknown = {tables.sql_name(t) for t in sql_tables if not tables.has_columns(t)}
    catalogued = {c for t in sql_tables for c in tables.columns.get(tables.identity(t)) or {}}
    aliases = {a.alias for a in query.find_all(exp.Alias)}
    extra: dict[str, set[str]] = {}
    for column in query.find_all(exp.Column):
        if isinstance(column.this, exp.Star):
            continue
        owner = names.get(column.table) if column.table else None
        if owner in unknown:
            extra.setdefault(owner, set()).add(column.name)
        elif not column.table and len(unknown) == 1 and column.name not in catalogued | aliases:
            extra.setdefault(next(iter(unknown)), set()).add(column.name)
    for join in query.find_all(exp.Join):
        using = [i.name for i in join.args.get("using") or []]
        right = join.this
        if not using or not isinstance(right, exp.Table):
            continue
        select = join.parent_select
        left = select.args["from_"].this if select is not None and select.args.get("from_") else None
        for side in (left, right):
            if isinstance(side, exp.Table):
                have = tables.columns.get(tables.identity(side)) or {}
                extra.setdefault(tables.sql_name(side), set()).update(c for c in using if c not in have)
    return {name: columns for name, columns in extra.items() if columns}
