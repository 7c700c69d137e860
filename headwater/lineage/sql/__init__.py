"""Column lineage from SQL with sqlglot, using the catalog as the schema source.

Each statement (INSERT, CTAS, CREATE VIEW, MERGE, UPDATE, or a bare query: see ``statements``) is qualified
by sqlglot's optimizer against the columns the catalog knows (so ``SELECT *`` expands), then every output
column is traced through CTEs, subqueries, joins, unions, aggregates and window functions to the base
table columns it comes from, with OpenLineage transformation types: DIRECT (IDENTITY, TRANSFORMATION,
AGGREGATION) for columns whose values flow into the output, INDIRECT (FILTER, JOIN, GROUP_BY, SORT,
WINDOW, CONDITIONAL) for columns that only decide which rows or values come out.

sqlglot has no Flink dialect: Flink SQL is read with the Hive dialect after length-preserving rewrites
(:mod:`headwater.lineage.sql.flink`). When the catalog falls short, a statement answers what it could trace and
warnings naming what it could not (:mod:`headwater.lineage.sql.resolve`); only SQL that does not parse, or nests
too deeply to analyse, is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.orm import Session
from sqlglot import exp

from headwater.auth.policy import Audience
from headwater.lineage.sql.catalog import Tables
from headwater.lineage.sql.model import ColumnInput, Identity, StatementLineage
from headwater.lineage.sql.parse import DIALECTS, SqlLineageError, dialect_of, parse, too_deep
from headwater.lineage.sql.statements import statement_lineage

log = logging.getLogger("headwater.lineage.sql")

__all__ = ["DIALECTS", "ColumnInput", "SqlLineageError", "StatementLineage", "dialect_of", "lineage_of_sql"]


def lineage_of_sql(
    session: Session,
    *,
    sql: str,
    dialect: str,
    namespace: str | None = None,
    default_schema: str | None = None,
    known_datasets: Sequence[Identity] = (),
    audience: Audience = None,
) -> list[StatementLineage]:
    """The column lineage of every statement of ``sql``; raises SqlLineageError naming the position of a parse error.

    Tables restricted from ``audience`` are answered as if the catalog did not know them (no columns)."""
    if dialect not in DIALECTS:
        raise SqlLineageError(
            f"dialect {dialect!r} is not supported; use one of {', '.join(DIALECTS)}", detail={"field": "dialect"}
        )
    tables = Tables(session, namespace, default_schema, known_datasets, audience)
    results: list[StatementLineage] = []
    for statement in parse(sql, dialect):
        tables.warnings = []
        try:
            found = statement_lineage(tables, statement, dialect)
        except RecursionError:
            raise too_deep(dialect) from None
        except SqlLineageError:
            raise
        except Exception as exc:  # a statement the analysis cannot follow is answered partially, never a 500
            log.warning("SQL lineage could not trace a statement: %r", exc, exc_info=True)
            found = [_untraced(tables, statement, exc)]
        for lineage in found:
            lineage.warnings = [*tables.warnings, *(w for w in lineage.warnings if w not in tables.warnings)]
        results += found
    return results


def _untraced(tables: Tables, statement: exp.Expr, exc: Exception) -> StatementLineage:
    """What is known of a statement whose columns could not be traced: the tables it names."""
    target = statement.this if isinstance(statement, exp.Insert | exp.Create | exp.Merge | exp.Update) else None
    target = target.this if isinstance(target, exp.Schema) else target
    named = [
        t for t in statement.find_all(exp.Table) if t.name and not isinstance(t.this, exp.Func) and t is not target
    ]
    ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
    return StatementLineage(
        kind=type(statement).__name__.lower(),
        target=tables.identity(target) if isinstance(target, exp.Table) else None,
        inputs=list(dict.fromkeys(tables.identity(t) for t in named if t.db or t.name.lower() not in ctes)),
        warnings=[f"the statement's columns could not be traced ({type(exc).__name__}: {exc}); only its tables are"],
    )
