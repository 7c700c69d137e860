"""One query traced to its output columns' inputs, and the target columns its outputs land in."""

from __future__ import annotations

from sqlglot import exp

from headwater.lineage.sql.catalog import Tables, tables_in
from headwater.lineage.sql.model import ColumnInput, Found, StatementLineage, keep
from headwater.lineage.sql.resolve import qualified
from headwater.lineage.sql.trace import Tracer, branches, indirect

__all__ = ["analyse_query", "target_columns"]


def target_columns(tables: Tables, target: exp.Expr, outputs: list[str]) -> list[str]:
    """Names of the target columns the query's outputs land in (INSERT maps by position when it must).

    Hive's partition insert writes the non-partition columns in order, then the dynamic partition columns
    (``PARTITION (dt)``) last; static ones (``PARTITION (dt='2024-01-01')``) take no output."""
    table = target.this if isinstance(target, exp.Schema) else target
    partition = table.args.get("partition") if isinstance(table, exp.Table) else None
    static = [p.this.name for p in partition.expressions if isinstance(p, exp.EQ)] if partition else []
    dynamic = [p.name for p in partition.expressions if isinstance(p, exp.Column)] if partition else []
    if isinstance(target, exp.Schema) and target.expressions:
        return [c.name for c in target.expressions] + dynamic
    if not isinstance(table, exp.Table):
        return outputs
    identity = tables.identity(table)
    tables.load_columns([identity])
    known = [c for c in tables.columns.get(identity) or {} if c not in static and c not in dynamic] + dynamic
    if not known and dynamic and len(outputs) >= len(dynamic):
        return outputs[: len(outputs) - len(dynamic)] + dynamic
    if not known or set(outputs) <= set(known):
        return outputs
    if len(known) >= len(outputs):
        return known[: len(outputs)]
    return outputs


def analyse_query(
    tables: Tables, query: exp.Expr, dialect: str, kind: str, target: exp.Expr | None
) -> StatementLineage:
    """The lineage of ``query``'s outputs, named for the ``target`` columns they land in."""
    sql_tables = tables_in(query)
    qualified_query, root = qualified(tables, query, dialect, sql_tables)
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
    names = target_columns(tables, target, outputs) if target is not None else outputs
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
