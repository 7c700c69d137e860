"""Tracing the expressions of a qualified query to the base table columns they come from, with their roles."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from headwater.lineage.sql.catalog import Tables
from headwater.lineage.sql.model import RANK, Found, Role, keep

__all__ = ["Tracer", "branches", "indirect", "walk_columns"]

_MASKING = {"md5", "sha", "sha1", "sha2", "sha256", "hash", "xxhash64", "murmur3", "crc32", "mask"}


def walk_columns(expression: exp.Expr) -> Iterator[exp.Column]:
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


def _role(column: exp.Expr, root: exp.Expr) -> Role:
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


def _compose(outer: Role, inner: Role) -> Role:
    """The role of a base column seen through two steps: indirect anywhere makes it indirect."""
    masking = outer[2] or inner[2]
    if outer[0] == "INDIRECT":
        return outer[0], outer[1], masking
    if inner[0] == "INDIRECT":
        return inner[0], inner[1], masking
    subtype = max(outer[1], inner[1], key=lambda s: RANK.get(s, 1))
    return "DIRECT", subtype, masking


class Tracer:
    """Traces expressions of a qualified query to base table columns."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self._tracing: set[tuple[int, str]] = set()

    def expression(self, scope: Scope, root: exp.Expr) -> Found:
        """Base columns behind one expression of ``scope`` with their roles."""
        found: Found = {}
        inner = root.this if isinstance(root, exp.Alias) else root
        for column in walk_columns(inner):
            suffix, reference = _reference(column)
            role = _role(reference, inner)
            for base, base_role in self.column(scope, column, suffix).items():
                keep(found, base, _compose(role, base_role))
        for subquery in inner.find_all(exp.Subquery):  # scalar subqueries feed the value
            child = next((s for s in scope.subquery_scopes if s.expression is subquery.this), None)
            if child is not None and isinstance(child.expression, exp.Select) and child.expression.selects:
                for base, base_role in self.expression(child, child.expression.selects[0]).items():
                    keep(found, base, _compose(("DIRECT", "TRANSFORMATION", False), base_role))
        return found

    def column(self, scope: Scope, column: exp.Column, suffix: Sequence[str] = (), pivoted: bool = True) -> Found:
        """Base columns a (qualified) column reference stands for; ``suffix`` are the struct members it reads."""
        table = column.table or self._owner(scope, column.name)
        pivot = next((p for p in scope.pivots if p.alias_or_name == table), None) if pivoted else None
        if pivot is not None:
            return self._pivot(scope, pivot, column.name, suffix)
        source = scope.sources.get(table)
        generator = _generator(source)
        if generator is not None:  # explode(a) / UNNEST(a) WITH ORDINALITY / jsonb_array_elements(a): from a
            found: Found = {}
            for inner in walk_columns(generator):
                for base, role in self.column(scope, inner, _reference(inner)[0]).items():
                    keep(found, base, _compose(("DIRECT", "TRANSFORMATION", False), role))
            return found
        if isinstance(source, exp.Table):
            identity = self.tables.identity(source)
            path = self.tables.member(identity, column.name, suffix)
            return {(identity[0], identity[1], path): ("DIRECT", "IDENTITY", False)}
        if isinstance(source, Scope):
            visit = (id(source), column.name)
            if visit in self._tracing:  # a recursive CTE reading itself adds no base column
                return {}
            self._tracing.add(visit)
            try:
                return self._through(source, column, suffix)
            finally:
                self._tracing.discard(visit)
        return {}

    def _pivot(self, scope: Scope, pivot: exp.Pivot, name: str, suffix: Sequence[str]) -> Found:
        """A column of ``PIVOT (agg(v) FOR k IN (...))`` comes from v (k decides which column: CONDITIONAL); a value
        column of ``UNPIVOT (v FOR k IN (a, b))`` from a and b; other columns pass through from the source."""
        source = pivot.parent.alias_or_name if pivot.parent is not None else ""
        field = pivot.args["fields"][0] if pivot.args.get("fields") else None
        found: Found = {}
        if not pivot.args.get("unpivot") and name in {c.name for c in pivot.args.get("columns") or []}:
            for aggregate in pivot.expressions:
                for base, role in self.expression(scope, aggregate).items():
                    keep(found, base, role)
            for column in walk_columns(field.this) if isinstance(field, exp.In) else []:
                for base in self.column(scope, column, pivoted=False):
                    keep(found, base, ("INDIRECT", "CONDITIONAL", False))
            return found
        if pivot.args.get("unpivot") and isinstance(field, exp.In):
            if name in {e.name for e in pivot.expressions}:
                for column in field.expressions:
                    if isinstance(column, exp.Column):
                        for base, role in self.column(scope, column, suffix, pivoted=False).items():
                            keep(found, base, role)
                return found
            if name == field.this.name:  # the names of the unpivoted columns: no column's values
                return found
        return self.column(scope, exp.column(name, source), suffix, pivoted=False)

    def _through(self, source: Scope, column: exp.Column, suffix: Sequence[str]) -> Found:
        """Base columns behind an output column of a subquery or CTE."""
        found: Found = {}
        for branch in branches(source):
            select_ = _select_named(branch.expression, column.name)
            if select_ is None and _unexpanded_star(branch.expression):  # SELECT * over an unknown table
                for base, role in self.column(branch, exp.column(column.name), suffix).items():
                    keep(found, base, role)
            elif select_ is not None:
                for base, role in self.expression(branch, select_).items():
                    if suffix and role[1] == "IDENTITY":  # the struct passed through unchanged: its member
                        base = (*base[:2], self.tables.member(base[:2], base[2], suffix))
                    keep(found, base, role)
        return found

    def _owner(self, scope: Scope, name: str) -> str:
        """The source an unqualified column belongs to: the only source, else the only one without known columns."""
        if len(scope.sources) == 1:
            return next(iter(scope.sources))
        if not scope.sources:
            return ""
        for alias, source in scope.sources.items():  # UNNEST(tags) AS tag, LATERAL VIEW explode(x) t AS tag
            generator = _generator(source)
            if generator is not None and name in {alias, *_generated(generator)}:
                return alias
        unknown = [alias for alias, source in scope.sources.items() if not self._lists_columns(source)]
        if len(unknown) == 1:
            self.tables.warn(
                f"column {name!r} is in no table with known columns; taken to be {self._label(scope, unknown[0])}'s"
            )
            return unknown[0]
        holders = [a for a, source in scope.sources.items() if a in unknown or name in self._columns(source)]
        if holders:
            labels = ", ".join(self._label(scope, a) for a in holders)
            self.tables.warn(f"column {name!r} could belong to any of {labels}; not traced")
        return ""

    def _label(self, scope: Scope, alias: str) -> str:
        source = scope.sources[alias]
        return self.tables.sql_name(source) if isinstance(source, exp.Table) else alias

    def _columns(self, source: exp.Table | Scope) -> set[str]:
        if isinstance(source, exp.Table):
            return set(self.tables.columns.get(self.tables.identity(source)) or {})
        return {
            s.alias_or_name
            for b in branches(source)
            if isinstance(b.expression, exp.Select)
            for s in b.expression.selects
        }

    def _lists_columns(self, source: exp.Table | Scope) -> bool:
        if isinstance(source, exp.Table):
            return self.tables.has_columns(source)
        return not any(_unexpanded_star(b.expression) for b in branches(source))


def _generated(generator: exp.Expr) -> list[str]:
    """The column names a generator's alias gives (``g AS a, b`` / ``t(a, n)`` / ``WITH ORDINALITY``'s ``n``)."""
    holder = generator.parent if isinstance(generator.parent, exp.Lateral) else generator
    alias = holder.args.get("alias")
    names = [c.name for c in alias.columns] if isinstance(alias, exp.TableAlias) else []
    offset = generator.args.get("offset") if isinstance(generator, exp.Unnest) else None
    if not names and isinstance(generator, exp.Explode | exp.Posexplode):  # Spark's names when none are given
        names = ["pos", "col", "key", "value"]
    return names + ([offset.name] if isinstance(offset, exp.Identifier) else [])


def _generator(source: exp.Table | Scope | None) -> exp.Expr | None:
    """The function call of a source that generates rows from columns (LATERAL VIEW, UNNEST, a function in FROM)."""
    if isinstance(source, Scope):
        node = source.expression
        if isinstance(node, exp.Lateral):
            node = node.this
        return node if isinstance(node, exp.Unnest | exp.Func) else None
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Func):
        return source.this
    return None


def _unexpanded_star(query: exp.Expr) -> bool:
    return isinstance(query, exp.Select) and any(
        isinstance(s, exp.Star) or (isinstance(s, exp.Column) and isinstance(s.this, exp.Star)) for s in query.selects
    )


def branches(scope: Scope) -> list[Scope]:
    """The SELECT scopes of a scope (both sides of a UNION, recursively)."""
    if scope.set_operation_scopes:
        return [b for s in scope.set_operation_scopes for b in branches(s)]
    return [scope]


def _select_named(query: exp.Expr, name: str) -> exp.Expr | None:
    if not isinstance(query, exp.Select):
        return None
    for item in query.selects:
        if item.alias_or_name == name:
            return item
    return None


_CLAUSES = (("where", "FILTER"), ("having", "FILTER"), ("qualify", "FILTER"), ("group", "GROUP_BY"), ("order", "SORT"))


def indirect(tracer: Tracer, root: Scope) -> Found:
    """Columns that decide which rows come out: filters, join keys, grouping and sorting, in every scope."""
    found: Found = {}
    for scope in root.traverse():
        query = scope.expression
        if not isinstance(query, exp.Select):
            continue
        clauses: list[tuple[exp.Expr, str]] = [
            (query.args[key], subtype) for key, subtype in _CLAUSES if query.args.get(key) is not None
        ]
        clauses += [(join.args["on"], "JOIN") for join in query.args.get("joins") or [] if join.args.get("on")]
        for clause, subtype in clauses:
            for column in walk_columns(clause):
                for base in tracer.column(scope, column, _reference(column)[0]):
                    found.setdefault(base, ("INDIRECT", subtype, False))
        if scope.is_subquery and scope.parent is not None and query.selects:  # WHERE x IN (SELECT y ...)
            for item in query.selects:
                for base in tracer.expression(scope, item):
                    found.setdefault(base, ("INDIRECT", "FILTER", False))
    return found
