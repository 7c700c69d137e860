"""Statements as the queries they amount to: INSERT (partitioned, multi-table, ``ON CONFLICT DO UPDATE``), CTAS,
views, MERGE, ``UPDATE ... FROM`` and bare queries; ``WITH`` clauses that write are read as the rows they return."""

from __future__ import annotations

from sqlglot import exp

from headwater.lineage.sql.catalog import Tables
from headwater.lineage.sql.model import ColumnInput, Found, StatementLineage, keep
from headwater.lineage.sql.query import analyse_query, target_columns

__all__ = ["statement_lineage"]

_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge)


def statement_lineage(tables: Tables, statement: exp.Expr, dialect: str) -> list[StatementLineage]:
    """The lineage of one parsed statement (several for a multi-table insert or a ``WITH`` that writes)."""
    nested = _writing_ctes(tables, statement, dialect)
    if isinstance(statement, exp.MultitableInserts):
        return nested + [_insert(tables, i, dialect, statement.args.get("source")) for i in statement.expressions]
    if isinstance(statement, exp.Insert):
        return [*nested, _insert(tables, statement, dialect)]
    if isinstance(statement, exp.Create) and statement.expression is not None:
        kind = "create_view" if (statement.kind or "").upper() == "VIEW" else "create_table_as"
        return [*nested, analyse_query(tables, _with(statement, statement.expression), dialect, kind, statement.this)]
    if isinstance(statement, exp.Merge):
        return [*nested, _merge(tables, statement, dialect)]
    if isinstance(statement, exp.Update):
        return [*nested, _update(tables, statement, dialect)]
    if isinstance(statement, exp.Query):
        return [*nested, analyse_query(tables, statement, dialect, "select", None)]
    kind = type(statement).__name__.lower()
    return [StatementLineage(kind=kind, target=None, warnings=[f"a {kind} statement carries no column lineage"])]


def _with(statement: exp.Expr, query: exp.Expr) -> exp.Expr:
    """``query`` with the ``WITH`` clause written before its statement (``WITH c AS (...) INSERT ... SELECT``)."""
    clause = statement.args.get("with_")
    if clause is None or not isinstance(query, exp.Query):
        return query
    query = query.copy()
    own = query.args.get("with_")
    merged = clause.copy()
    if own is not None:
        merged.set("expressions", [*merged.expressions, *own.expressions])
        merged.set("recursive", bool(clause.args.get("recursive") or own.args.get("recursive")))
    query.set("with_", merged)
    return query


def _insert(tables: Tables, insert: exp.Insert, dialect: str, source: exp.Expr | None = None) -> StatementLineage:
    query = insert.expression
    if source is not None and isinstance(query, exp.Select) and query.args.get("from_") is None:
        query = query.copy().from_(source.copy())  # Hive's FROM src INSERT ... SELECT ... INSERT ... SELECT ...
    lineage = analyse_query(tables, _with(insert, query), dialect, "insert", insert.this)
    conflict = insert.args.get("conflict")
    if isinstance(conflict, exp.OnConflict) and conflict.expressions:
        _on_conflict(tables, insert, conflict, lineage, dialect)
    return lineage


def _on_conflict(
    tables: Tables, insert: exp.Insert, conflict: exp.OnConflict, lineage: StatementLineage, dialect: str
) -> None:
    """``ON CONFLICT DO UPDATE SET c = t.c + EXCLUDED.c``: the target's own columns and the proposed row feed c."""
    schema = insert.this
    table = schema.this if isinstance(schema, exp.Schema) else schema
    assert isinstance(table, exp.Table)
    names = target_columns(tables, schema, list(lineage.columns))
    proposed = exp.Subquery(
        this=_with(insert, insert.expression),
        alias=exp.TableAlias(this=exp.to_identifier("_hw_excluded"), columns=[exp.to_identifier(n) for n in names]),
    )
    assignments = []
    for eq in conflict.expressions:
        value = eq.expression.copy().transform(_rename_excluded)
        assignments.append((eq.this.name, value))
    target = table.copy()
    target.set("alias", exp.TableAlias(this=exp.to_identifier(table.alias_or_name)))
    query = exp.select().from_(proposed).join(target, join_type="cross")
    where = conflict.args.get("where")
    if where is not None:
        query = query.where(where.this.transform(_rename_excluded))
    updated = _assigned(tables, query, assignments, table, dialect, "insert")
    _fold(lineage, updated)


def _rename_excluded(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Column) and node.table.lower() == "excluded":
        return exp.column(node.name, "_hw_excluded")
    return node


def _merge(tables: Tables, merge: exp.Merge, dialect: str) -> StatementLineage:
    """MERGE as the query it amounts to: every branch's assigned expressions over ``using JOIN target ON ...``."""
    target = merge.this
    assert isinstance(target, exp.Table)
    using = merge.args["using"]
    assignments: list[tuple[str, exp.Expr]] = []
    conditions: list[exp.Expr] = []
    stars: list[str] = []
    for when in merge.args["whens"].expressions:
        if when.args.get("condition") is not None:
            conditions.append(when.args["condition"].copy())
        then = when.args.get("then")
        if isinstance(then, exp.Update):
            if any(isinstance(a, exp.Star) for a in then.expressions):
                stars.append("UPDATE SET *")
            assignments += [(a.this.name, a.expression.copy()) for a in then.expressions if isinstance(a, exp.EQ)]
        elif isinstance(then, exp.Insert) and isinstance(then.this, exp.Star):
            stars.append("INSERT *")
        elif isinstance(then, exp.Insert) and isinstance(then.this, exp.Tuple):
            values = then.expression.expressions if isinstance(then.expression, exp.Tuple) else []
            assignments += [(c.name, v.copy()) for c, v in zip(then.this.expressions, values, strict=False)]
    if stars:  # every target column from the source column of the same name
        names = _star_names(tables, target, using)
        assignments += [(name, exp.column(name, using.alias_or_name)) for name in names]
        if not names:
            tables.warn(
                f"{' and '.join(dict.fromkeys(stars))} into {tables.sql_name(target)}: neither it nor the "
                "MERGE source has columns the catalog knows; not traced"
            )
    query = exp.select().from_(using.copy()).join(target.copy(), on=merge.args["on"].copy())
    if conditions:
        query = query.where(exp.or_(*conditions))
    return _assigned(tables, query, assignments, target, dialect, "merge")


def _star_names(tables: Tables, target: exp.Table, using: exp.Expr) -> list[str]:
    """The columns ``UPDATE SET *`` / ``INSERT *`` assign: the target's, else the source's."""
    identity = tables.identity(target)
    tables.load_columns([identity])
    if tables.columns.get(identity):
        return list(tables.columns[identity])
    if isinstance(using, exp.Table):
        source = tables.identity(using)
        tables.load_columns([source])
        return list(tables.columns.get(source) or {})
    query = using.this if isinstance(using, exp.Subquery) else None
    if isinstance(query, exp.Select):
        return [s.alias_or_name for s in query.selects if s.alias_or_name != "*"]
    return []


def _update(tables: Tables, update: exp.Update, dialect: str) -> StatementLineage:
    """``UPDATE t SET c = ... [FROM s ...] WHERE ...``: the assigned expressions over ``t CROSS JOIN s``."""
    target = update.this
    if not isinstance(target, exp.Table):
        return StatementLineage(kind="update", target=None, warnings=["an UPDATE of a non-table carries no lineage"])
    query = exp.select().from_(target.copy())
    source = update.args.get("from_")
    if source is not None:
        query = query.join(source.this.copy(), join_type="cross")
    for join in update.args.get("joins") or []:
        query = query.join(join.copy())
    if update.args.get("where") is not None:
        query = query.where(update.args["where"].this.copy())
    assignments = [(a.this.name, a.expression.copy()) for a in update.expressions if isinstance(a, exp.EQ)]
    with_query = _with(update, query)
    assert isinstance(with_query, exp.Select)
    return _assigned(tables, with_query, assignments, target, dialect, "update")


def _assigned(
    tables: Tables,
    query: exp.Select,
    assignments: list[tuple[str, exp.Expr]],
    target: exp.Table,
    dialect: str,
    kind: str,
) -> StatementLineage:
    """The lineage of ``column = expression`` assignments evaluated over ``query``'s rows, into ``target``."""
    query = query.select(*(exp.alias_(value, f"_hw_{i}") for i, (_, value) in enumerate(assignments)), append=True)
    if not assignments:
        query = query.select(exp.Literal.number(1), append=True)
    lineage = analyse_query(tables, query, dialect, kind, None)
    lineage.target = tables.identity(target)
    columns: dict[str, Found] = {}
    for i, (name, _) in enumerate(assignments):
        merged = columns.setdefault(name, {})
        for item in lineage.columns.get(f"_hw_{i}", []):
            keep(merged, (item.namespace, item.name, item.field), (item.type, item.subtype, item.masking))
    lineage.columns = {n: [ColumnInput(*b, *r) for b, r in sorted(found.items())] for n, found in columns.items()}
    lineage.inputs = [i for i in lineage.inputs if i != lineage.target]
    return lineage


def _fold(into: StatementLineage, more: StatementLineage) -> None:
    """Add ``more``'s column and row inputs to ``into`` (one statement that writes two ways)."""
    for name, inputs in more.columns.items():
        merged: Found = {}
        for item in [*into.columns.get(name, []), *inputs]:
            keep(merged, (item.namespace, item.name, item.field), (item.type, item.subtype, item.masking))
        into.columns[name] = [ColumnInput(*b, *r) for b, r in sorted(merged.items())]
    seen = {(i.namespace, i.name, i.field) for i in into.dataset_inputs}
    into.dataset_inputs += [i for i in more.dataset_inputs if (i.namespace, i.name, i.field) not in seen]
    into.inputs = list(dict.fromkeys([*into.inputs, *(i for i in more.inputs if i != into.target)]))
    into.warnings += [w for w in more.warnings if w not in into.warnings]


def _writing_ctes(tables: Tables, statement: exp.Expr, dialect: str) -> list[StatementLineage]:
    """Each ``WITH c AS (INSERT|UPDATE|DELETE ... RETURNING ...)`` as a statement of its own; the CTE is replaced
    in ``statement`` by the SELECT of the rows it returns, so that readers of ``c`` trace through it."""
    clause = statement.args.get("with_")
    if clause is None:
        return []
    found: list[StatementLineage] = []
    for cte in clause.expressions:
        body = cte.this
        if not isinstance(body, _WRITES):
            continue
        if not isinstance(body, exp.Delete):
            found += statement_lineage(tables, body, dialect)
        cte.set("this", _returned(tables, body))
    return found


def _returned(tables: Tables, write: exp.Expr) -> exp.Select:
    """The rows a writing statement's RETURNING clause gives, as a SELECT."""
    returning = write.args.get("returning")
    items = [e.copy() for e in returning.expressions] if returning is not None else [exp.Literal.number(1)]
    target = write.this.this if isinstance(write.this, exp.Schema) else write.this
    if isinstance(write, exp.Insert) and isinstance(target, exp.Table):
        names = target_columns(tables, write.this, [s.alias_or_name for s in write.expression.selects])
        alias = exp.TableAlias(
            this=exp.to_identifier(target.alias_or_name), columns=[exp.to_identifier(n) for n in names]
        )
        return exp.select(*items).from_(exp.Subquery(this=write.expression.copy(), alias=alias))
    query = exp.select(*items).from_(target.copy())
    if isinstance(write, exp.Update):
        assigned = {a.this.name: a.expression for a in write.expressions if isinstance(a, exp.EQ)}
        values = [(i, i.transform(lambda n: _assigned_value(n, assigned))) for i in items]
        items = [v if v.alias_or_name == i.alias_or_name else exp.alias_(v, i.alias_or_name) for i, v in values]
        query = exp.select(*items).from_(target.copy())
        if write.args.get("from_") is not None:
            query = query.join(write.args["from_"].this.copy(), join_type="cross")
    if write.args.get("where") is not None:
        query = query.where(write.args["where"].this.copy())
    return query


def _assigned_value(node: exp.Expr, assigned: dict[str, exp.Expr]) -> exp.Expr:
    if isinstance(node, exp.Column) and node.name in assigned:
        return assigned[node.name].copy()
    return node
