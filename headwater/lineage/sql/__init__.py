"""Column lineage from SQL with sqlglot, using the catalog as the schema source.

Each statement (INSERT ... SELECT, CREATE TABLE ... AS, CREATE VIEW, MERGE, or a bare query) is qualified
by sqlglot's optimizer against the columns the catalog knows (so ``SELECT *`` expands), then every output
column is traced through CTEs, subqueries, joins, unions, aggregates and window functions to the base
table columns it comes from, with OpenLineage transformation types: DIRECT (IDENTITY, TRANSFORMATION,
AGGREGATION) for columns whose values flow into the output, INDIRECT (FILTER, JOIN, GROUP_BY, SORT,
WINDOW, CONDITIONAL) for columns that only decide which rows or values come out.

sqlglot has no Flink dialect: Flink SQL (Calcite, backtick identifiers, Hive-compatible functions) is read
with the Hive dialect, after renaming Flink's ``SESSION(`` group window to a same-length function name
so that error positions still point into the text the caller sent. Flink's window table functions
(``TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), ...))``) do not parse and are reported with their position.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from headwater.auth.policy import Audience
from headwater.lineage.sql.catalog import Tables
from headwater.lineage.sql.model import ColumnInput, Identity, StatementLineage
from headwater.lineage.sql.parse import DIALECTS, SqlLineageError, dialect_of, parse, too_deep
from headwater.lineage.sql.statements import statement_lineage

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
            lineage = statement_lineage(tables, statement, dialect)
        except RecursionError:
            raise too_deep(dialect) from None
        lineage.warnings = [*tables.warnings, *lineage.warnings]
        results.append(lineage)
    return results
