"""Statements as queries to trace: INSERT, CTAS, views, MERGE and bare queries."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import build_scope

from headwater.lineage.sql.catalog import Tables, schema_for, tables_in
from headwater.lineage.sql.model import ColumnInput, Found, StatementLineage, keep
from headwater.lineage.sql.parse import DIALECTS, SqlLineageError
from headwater.lineage.sql.trace import Tracer, branches, indirect

__all__ = ["statement_lineage"]


def _target_columns(tables: Tables, target: exp.Expr, outputs: list[str]) -> list[str]:
    """Names of the target columns the query's outputs land in (INSERT maps by position when it must)."""
    if isinstance(target, exp.Schema) and target.expressions:
        return [c.name for c in target.expressions]
    table = target.this if isinstance(target, exp.Schema) else target
    if not isinstance(table, exp.Table):
        return outputs
    identity = tables.identity(table)
    tables.load_columns([identity])
    known = list(tables.columns.get(identity) or {})
    if not known or set(outputs) <= set(known):
        return outputs
    if len(known) >= len(outputs):
        return known[: len(outputs)]
    return outputs


def _analyse_query(
    tables: Tables, query: exp.Expr, dialect: str, kind: str, target: exp.Expr | None
) -> StatementLineage:
    sql_tables = tables_in(query)
    schema = schema_for(tables, sql_tables)
    try:
        qualified = qualify(
            query.copy(),
            dialect=DIALECTS[dialect],
            schema=schema or None,
            validate_qualify_columns=False,
            quote_identifiers=False,
            identify=False,
            db=tables.default_schema,
        )
        root = build_scope(qualified)
    except SqlglotError as exc:
        raise SqlLineageError(f"the SQL cannot be analysed: {exc}", detail={"field": "sql"}) from None
    target_table = target.this if isinstance(target, exp.Schema) else target
    lineage = StatementLineage(
        kind=kind,
        target=tables.identity(target_table) if isinstance(target_table, exp.Table) else None,
    )
    if root is None:
        lineage.warnings.append("the statement has no query to trace")
        return lineage
    tracer = Tracer(tables)
    scopes = branches(root)
    first = scopes[0].expression
    outputs = [s.alias_or_name for s in first.selects] if isinstance(first, exp.Select) else []
    if "*" in outputs:
        lineage.warnings.append("SELECT * over a table the catalog has no columns for could not be expanded")
    names = _target_columns(tables, target, outputs) if target is not None else outputs
    for position, (output, name) in enumerate(zip(outputs, names, strict=False)):
        if output == "*":
            continue
        found: Found = {}
        for branch in scopes:
            selects = branch.expression.selects if isinstance(branch.expression, exp.Select) else []
            if position < len(selects):
                for base, role in tracer.expression(branch, selects[position]).items():
                    keep(found, base, role)
        lineage.columns[name] = [ColumnInput(*base, *role) for base, role in sorted(found.items())]
    lineage.dataset_inputs = [ColumnInput(*base, *role) for base, role in sorted(indirect(tracer, root).items())]
    lineage.inputs = list(dict.fromkeys(tables.identity(t) for t in sql_tables if t is not target_table))
    if lineage.target in lineage.inputs and not _reads_target(query, target_table):
        lineage.inputs.remove(lineage.target)
    return lineage


def _reads_target(query: exp.Expr, target: exp.Expr | None) -> bool:
    if not isinstance(target, exp.Table):
        return False
    return any(t.name == target.name and t.db == target.db for t in query.find_all(exp.Table))


def _merge(tables: Tables, merge: exp.Merge, dialect: str) -> StatementLineage:
    """MERGE as the query it amounts to: the assigned expressions over ``using JOIN target ON ...``."""
    target = merge.this
    assert isinstance(target, exp.Table)
    using = merge.args["using"].copy()
    items: list[exp.Expr] = []
    names: list[str] = []
    conditions: list[exp.Expr] = []
    for when in merge.args["whens"].expressions:
        if when.args.get("condition") is not None:
            conditions.append(when.args["condition"].copy())
        then = when.args.get("then")
        if isinstance(then, exp.Update):
            for assignment in then.expressions:
                names.append(assignment.this.name)
                items.append(assignment.expression.copy())
        elif isinstance(then, exp.Insert) and isinstance(then.this, exp.Tuple):
            values = then.expression.expressions if isinstance(then.expression, exp.Tuple) else []
            for column, value in zip(then.this.expressions, values, strict=False):
                names.append(column.name)
                items.append(value.copy())
    query = exp.select(*(exp.alias_(item, f"_hw_{i}") for i, item in enumerate(items))).from_(using)
    query = query.join(target.copy(), on=merge.args["on"].copy())
    if conditions:
        query = query.where(exp.or_(*conditions))
    lineage = _analyse_query(tables, query, dialect, "merge", None)
    lineage.target = tables.identity(target)
    columns: dict[str, Found] = {}
    for i, name in enumerate(names):
        merged = columns.setdefault(name, {})
        for item in lineage.columns.get(f"_hw_{i}", []):
            keep(merged, (item.namespace, item.name, item.field), (item.type, item.subtype, item.masking))
    lineage.columns = {n: [ColumnInput(*b, *r) for b, r in sorted(found.items())] for n, found in columns.items()}
    lineage.inputs = [i for i in lineage.inputs if i != lineage.target]
    return lineage


def statement_lineage(tables: Tables, statement: exp.Expr, dialect: str) -> StatementLineage:
    if isinstance(statement, exp.Insert):
        return _analyse_query(tables, statement.expression, dialect, "insert", statement.this)
    if isinstance(statement, exp.Create) and statement.expression is not None:
        kind = "create_view" if (statement.kind or "").upper() == "VIEW" else "create_table_as"
        query = statement.expression
        return _analyse_query(tables, query, dialect, kind, statement.this)
    if isinstance(statement, exp.Merge):
        return _merge(tables, statement, dialect)
    if isinstance(statement, exp.Query):
        return _analyse_query(tables, statement, dialect, "select", None)
    kind = type(statement).__name__.lower()
    return StatementLineage(kind=kind, target=None, warnings=[f"a {kind} statement carries no column lineage"])
