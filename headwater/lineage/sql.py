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

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope

from headwater.auth.policy import Audience
from headwater.catalog.models import Dataset, Field
from headwater.catalog.restrictions import hidden_among
from headwater.errors import InvalidInput
from headwater.lineage.schemas import ColumnLineageFacet, InputField, OutputFieldLineage, Transformation

__all__ = ["DIALECTS", "SqlLineageError", "StatementLineage", "dialect_of", "lineage_of_sql"]

# Our dialect names -> sqlglot's.
DIALECTS = {"spark": "spark", "hive": "hive", "flink": "hive", "trino": "trino", "postgres": "postgres"}
_FLINK_SESSION = re.compile(r"\bSESSION\s*\(", re.IGNORECASE)
_RANK = {"IDENTITY": 0, "TRANSFORMATION": 1, "AGGREGATION": 2}
_MASKING = {"md5", "sha", "sha1", "sha2", "sha256", "hash", "xxhash64", "murmur3", "crc32", "mask"}
_MAX_SQL_TABLES = 200
Identity = tuple[str, str]


class SqlLineageError(InvalidInput):
    """SQL that cannot be parsed or analysed; the message names the line and column."""


def dialect_of(name: str | None) -> str:
    """Our dialect name for an OpenLineage ``sql`` facet's dialect (default spark)."""
    value = (name or "spark").lower()
    if value in DIALECTS:
        return value
    return {"sparksql": "spark", "presto": "trino", "postgresql": "postgres", "flinksql": "flink"}.get(value, "spark")


@dataclass(frozen=True)
class ColumnInput:
    """One input column of an output column (or of the whole output)."""

    namespace: str
    name: str
    field: str
    type: str
    subtype: str
    masking: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "field": self.field,
            "type": self.type,
            "subtype": self.subtype,
            "masking": self.masking,
        }


@dataclass
class StatementLineage:
    """The lineage of one statement."""

    kind: str
    target: Identity | None
    inputs: list[Identity] = field(default_factory=list)
    columns: dict[str, list[ColumnInput]] = field(default_factory=dict)
    dataset_inputs: list[ColumnInput] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_facet(self) -> ColumnLineageFacet:
        """The lineage as an OpenLineage columnLineage facet of the target."""

        def input_field(item: ColumnInput) -> InputField:
            return InputField(
                namespace=item.namespace,
                name=item.name,
                field=item.field,
                transformations=[
                    Transformation.model_validate({"type": item.type, "subtype": item.subtype, "masking": item.masking})
                ],
            )

        return ColumnLineageFacet(
            fields={
                column: OutputFieldLineage(inputFields=[input_field(i) for i in inputs])
                for column, inputs in self.columns.items()
            },
            dataset=[input_field(i) for i in self.dataset_inputs],
        )


# ------------------------------------------------------------------------------------ parsing


def _parse(sql: str, dialect: str) -> list[exp.Expr]:
    text = _FLINK_SESSION.sub(lambda m: "SESSIO_" + m.group(0)[7:], sql) if dialect == "flink" else sql
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
        raise _too_deep(dialect) from None
    return [s for s in statements if s is not None]


def _too_deep(dialect: str) -> SqlLineageError:
    # sqlglot parses and walks expressions recursively: ~50 nested parentheses exhaust Python's stack.
    return SqlLineageError(
        f"the SQL nests too deeply to analyse as {dialect} (parentheses or subqueries nested dozens of levels); "
        "simplify the expression",
        detail={"field": "sql", "dialect": dialect, "reason": "too_deep"},
    )


# ---------------------------------------------------------------------------- catalog schema


@dataclass
class _Tables:
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


def _tables_in(expression: exp.Expr) -> list[exp.Table]:
    """Base tables a statement reads or writes (CTE names excluded)."""
    ctes = {cte.alias_or_name.lower() for cte in expression.find_all(exp.CTE)}
    tables = [t for t in expression.find_all(exp.Table) if t.name and not (not t.db and t.name.lower() in ctes)]
    if len(tables) > _MAX_SQL_TABLES:
        raise SqlLineageError(f"the SQL names {len(tables)} tables; at most {_MAX_SQL_TABLES} are analysed")
    return tables


def _schema_for(tables: _Tables, sql_tables: Sequence[exp.Table]) -> dict[str, Any]:
    """The catalog's columns in sqlglot's nested ``{db: {table: {column: type}}}`` form."""
    identities = {tables.sql_name(t): tables.identity(t) for t in sql_tables}
    tables.load_columns(list(identities.values()))
    schema: dict[str, Any] = {}
    for sql_name, identity in identities.items():
        columns = tables.columns.get(identity) or {}
        if not columns:
            continue
        db, _, name = sql_name.rpartition(".")
        schema.setdefault(db or "default", {})[name] = {c: "string" for c in columns}
    return schema


# ------------------------------------------------------------------------------------ tracing


def _walk_columns(expression: exp.Expr) -> Iterator[exp.Column]:
    """Columns of an expression, not descending into subqueries (they are scopes of their own)."""
    for node in expression.walk(prune=lambda n: isinstance(n, exp.Subquery | exp.Select) and n is not expression):
        if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
            yield node


def _reference(column: exp.Column) -> tuple[tuple[str, ...], exp.Expr]:
    """The struct members a column reference reads (``t.a.b.c``: ``(b, c)``) and the whole reference.

    Qualified against the catalog, ``a.b.c`` over a table with a column ``a`` is ``Dot(Dot(t.a, b), c)``.
    """
    suffix: list[str] = []
    node: exp.Expr = column
    while isinstance(node.parent, exp.Dot) and node.arg_key == "this":
        member = node.parent.expression
        if not isinstance(member, exp.Identifier):
            break
        suffix.append(member.name)
        node = node.parent
    return tuple(suffix), node


def _role(column: exp.Expr, root: exp.Expr) -> tuple[str, str, bool]:
    """(type, subtype, masking) of a column inside one output expression."""
    if column is root:
        return "DIRECT", "IDENTITY", False
    subtype = "TRANSFORMATION"
    masking = False
    node: exp.Expr = column
    while node is not root and node.parent is not None:
        parent = node.parent
        if isinstance(parent, exp.Window) and node.arg_key in ("partition_by", "order"):
            return "INDIRECT", "WINDOW", False
        if isinstance(parent, exp.If) and node.arg_key == "this":
            return "INDIRECT", "CONDITIONAL", False
        if isinstance(parent, exp.Case) and node.arg_key == "this":
            return "INDIRECT", "CONDITIONAL", False
        if isinstance(parent, exp.AggFunc):
            subtype = "AGGREGATION"
        if isinstance(parent, exp.Func) and parent.sql_name().lower() in _MASKING:
            masking = True
        node = parent
    return "DIRECT", subtype, masking


def _compose(outer: tuple[str, str, bool], inner: tuple[str, str, bool]) -> tuple[str, str, bool]:
    """The role of a base column seen through two steps: indirect anywhere makes it indirect."""
    masking = outer[2] or inner[2]
    if outer[0] == "INDIRECT":
        return outer[0], outer[1], masking
    if inner[0] == "INDIRECT":
        return inner[0], inner[1], masking
    subtype = max(outer[1], inner[1], key=lambda s: _RANK.get(s, 1))
    return "DIRECT", subtype, masking


class _Tracer:
    """Traces expressions of a qualified query to base table columns."""

    def __init__(self, tables: _Tables) -> None:
        self.tables = tables
        self.read: list[Identity] = []

    def expression(self, scope: Scope, root: exp.Expr) -> dict[tuple[str, str, str], tuple[str, str, bool]]:
        """Base columns behind one expression of ``scope`` with their roles."""
        found: dict[tuple[str, str, str], tuple[str, str, bool]] = {}
        inner = root.this if isinstance(root, exp.Alias) else root
        for column in _walk_columns(inner):
            suffix, reference = _reference(column)
            role = _role(reference, inner)
            for base, base_role in self.column(scope, column, suffix).items():
                _keep(found, base, _compose(role, base_role))
        for subquery in inner.find_all(exp.Subquery):  # scalar subqueries feed the value
            child = next((s for s in scope.subquery_scopes if s.expression is subquery.this), None)
            if child is not None and isinstance(child.expression, exp.Select) and child.expression.selects:
                for base, base_role in self.expression(child, child.expression.selects[0]).items():
                    _keep(found, base, _compose(("DIRECT", "TRANSFORMATION", False), base_role))
        return found

    def column(
        self, scope: Scope, column: exp.Column, suffix: Sequence[str] = ()
    ) -> dict[tuple[str, str, str], tuple[str, str, bool]]:
        """Base columns a (qualified) column reference stands for; ``suffix`` are the struct members it reads."""
        table = column.table
        if not table and len(scope.sources) == 1:
            table = next(iter(scope.sources))
        source = scope.sources.get(table)
        if isinstance(source, exp.Table):
            identity = self.tables.identity(source)
            path = self.tables.member(identity, column.name, suffix)
            return {(identity[0], identity[1], path): ("DIRECT", "IDENTITY", False)}
        if isinstance(source, Scope):
            found: dict[tuple[str, str, str], tuple[str, str, bool]] = {}
            for branch in _branches(source):
                select_ = _select_named(branch.expression, column.name)
                if select_ is not None:
                    for base, role in self.expression(branch, select_).items():
                        if suffix and role[1] == "IDENTITY":  # the struct passed through unchanged: its member
                            base = (*base[:2], self.tables.member(base[:2], base[2], suffix))
                        _keep(found, base, role)
            return found
        return {}


def _keep(found: dict[tuple[str, str, str], tuple[str, str, bool]], base: tuple[str, str, str], role: Any) -> None:
    old = found.get(base)
    if (
        old is None
        or (old[0] == "INDIRECT" and role[0] == "DIRECT")
        or old[0] == role[0] == "DIRECT"
        and _RANK.get(role[1], 1) > _RANK.get(old[1], 1)
    ):
        found[base] = role


def _branches(scope: Scope) -> list[Scope]:
    """The SELECT scopes of a scope (both sides of a UNION, recursively)."""
    if scope.set_operation_scopes:
        return [b for s in scope.set_operation_scopes for b in _branches(s)]
    return [scope]


def _select_named(query: exp.Expr, name: str) -> exp.Expr | None:
    if not isinstance(query, exp.Select):
        return None
    for item in query.selects:
        if item.alias_or_name == name:
            return item
    return None


_CLAUSES = (("where", "FILTER"), ("having", "FILTER"), ("qualify", "FILTER"), ("group", "GROUP_BY"), ("order", "SORT"))


def _indirect(tracer: _Tracer, root: Scope) -> dict[tuple[str, str, str], tuple[str, str, bool]]:
    """Columns that decide which rows come out: filters, join keys, grouping and sorting, in every scope."""
    found: dict[tuple[str, str, str], tuple[str, str, bool]] = {}
    for scope in root.traverse():
        query = scope.expression
        if not isinstance(query, exp.Select):
            continue
        clauses: list[tuple[exp.Expr, str]] = [
            (query.args[key], subtype) for key, subtype in _CLAUSES if query.args.get(key) is not None
        ]
        clauses += [(join.args["on"], "JOIN") for join in query.args.get("joins") or [] if join.args.get("on")]
        for clause, subtype in clauses:
            for column in _walk_columns(clause):
                for base in tracer.column(scope, column, _reference(column)[0]):
                    found.setdefault(base, ("INDIRECT", subtype, False))
        if scope.is_subquery and scope.parent is not None and query.selects:  # WHERE x IN (SELECT y ...)
            for item in query.selects:
                for base in tracer.expression(scope, item):
                    found.setdefault(base, ("INDIRECT", "FILTER", False))
    return found


# --------------------------------------------------------------------------------- statements


def _target_columns(tables: _Tables, target: exp.Expr, outputs: list[str]) -> list[str]:
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
    tables: _Tables, query: exp.Expr, dialect: str, kind: str, target: exp.Expr | None
) -> StatementLineage:
    sql_tables = _tables_in(query)
    schema = _schema_for(tables, sql_tables)
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
    tracer = _Tracer(tables)
    branches = _branches(root)
    first = branches[0].expression
    outputs = [s.alias_or_name for s in first.selects] if isinstance(first, exp.Select) else []
    if "*" in outputs:
        lineage.warnings.append("SELECT * over a table the catalog has no columns for could not be expanded")
    names = _target_columns(tables, target, outputs) if target is not None else outputs
    for position, (output, name) in enumerate(zip(outputs, names, strict=False)):
        if output == "*":
            continue
        found: dict[tuple[str, str, str], tuple[str, str, bool]] = {}
        for branch in branches:
            selects = branch.expression.selects if isinstance(branch.expression, exp.Select) else []
            if position < len(selects):
                for base, role in tracer.expression(branch, selects[position]).items():
                    _keep(found, base, role)
        lineage.columns[name] = [ColumnInput(*base, *role) for base, role in sorted(found.items())]
    lineage.dataset_inputs = [ColumnInput(*base, *role) for base, role in sorted(_indirect(tracer, root).items())]
    lineage.inputs = list(dict.fromkeys(tables.identity(t) for t in sql_tables if t is not target_table))
    if lineage.target in lineage.inputs and not _reads_target(query, target_table):
        lineage.inputs.remove(lineage.target)
    return lineage


def _reads_target(query: exp.Expr, target: exp.Expr | None) -> bool:
    if not isinstance(target, exp.Table):
        return False
    return any(t.name == target.name and t.db == target.db for t in query.find_all(exp.Table))


def _merge(tables: _Tables, merge: exp.Merge, dialect: str) -> StatementLineage:
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
    columns: dict[str, dict[tuple[str, str, str], tuple[str, str, bool]]] = {}
    for i, name in enumerate(names):
        merged = columns.setdefault(name, {})
        for item in lineage.columns.get(f"_hw_{i}", []):
            _keep(merged, (item.namespace, item.name, item.field), (item.type, item.subtype, item.masking))
    lineage.columns = {n: [ColumnInput(*b, *r) for b, r in sorted(found.items())] for n, found in columns.items()}
    lineage.inputs = [i for i in lineage.inputs if i != lineage.target]
    return lineage


def _statement(tables: _Tables, statement: exp.Expr, dialect: str) -> StatementLineage:
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
    tables = _Tables(session, namespace, default_schema, known_datasets, audience)
    results: list[StatementLineage] = []
    for statement in _parse(sql, dialect):
        tables.warnings = []
        try:
            lineage = _statement(tables, statement, dialect)
        except RecursionError:
            raise _too_deep(dialect) from None
        lineage.warnings = [*tables.warnings, *lineage.warnings]
        results.append(lineage)
    return results
