"""Parsing SQL for lineage: our dialect names, sqlglot's reading of them, and errors that name a position."""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from headwater.errors import InvalidInput
from headwater.lineage.sql.flink import flink_text, flink_windows

__all__ = ["DIALECTS", "SqlLineageError", "dialect_of", "parse", "too_deep"]

# Our dialect names -> sqlglot's.
DIALECTS = {"spark": "spark", "hive": "hive", "flink": "hive", "trino": "trino", "postgres": "postgres"}


class SqlLineageError(InvalidInput):
    """SQL that cannot be parsed or analysed; the message names the line and column."""


def dialect_of(name: str | None) -> str:
    """Our dialect name for an OpenLineage ``sql`` facet's dialect (default spark)."""
    value = (name or "spark").lower()
    if value in DIALECTS:
        return value
    return {"sparksql": "spark", "presto": "trino", "postgresql": "postgres", "flinksql": "flink"}.get(value, "spark")


def parse(sql: str, dialect: str) -> list[exp.Expr]:
    """The statements of ``sql``; raises SqlLineageError naming the line and column where parsing stopped."""
    text = flink_text(sql) if dialect == "flink" else sql
    try:
        statements = sqlglot.parse(text, read=DIALECTS[dialect])
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        line, col = first.get("line"), first.get("col")
        near = (first.get("highlight") or "").strip()
        description = first.get("description") or "cannot parse"
        raise SqlLineageError(
            f"the SQL does not parse as {dialect} at line {line}, column {col}"
            + (f" near {near!r}" if near else "")
            + f": {description}",
            detail={"field": "sql", "line": line, "column": col, "dialect": dialect},
        ) from None
    except TokenError as exc:
        raise SqlLineageError(
            f"the SQL does not tokenize as {dialect}: {exc}", detail={"field": "sql", "dialect": dialect}
        ) from None
    except RecursionError:
        raise too_deep(dialect) from None
    if dialect == "flink":
        return [flink_windows(s) for s in statements if s is not None]
    return [s for s in statements if s is not None]


def too_deep(dialect: str) -> SqlLineageError:
    """The error for SQL nested deeper than the parser's recursion allows."""
    # sqlglot parses and walks expressions recursively: ~50 nested parentheses exhaust Python's stack.
    return SqlLineageError(
        f"the SQL nests too deeply to analyse as {dialect} (parentheses or subqueries nested dozens of levels); "
        "simplify the expression",
        detail={"field": "sql", "dialect": dialect, "reason": "too_deep"},
    )
