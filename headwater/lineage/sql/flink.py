"""Flink SQL read with sqlglot's Hive dialect: what Flink writes that Hive does not parse, made parsable.

Both rewrites of the text keep its length, so that a parse error's line and column still point into the SQL the
caller sent: the ``SESSION(`` group window becomes ``SESSIO_(``, and a windowing table function
``TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), ...))`` (also HOP, CUMULATE, SESSION) loses its ``TABLE`` keywords and
outer parentheses to blanks. The parsed call is then replaced by the rows it gives: the table's columns plus
``window_start``, ``window_end`` and ``window_time``, computed from the time column.
"""

from __future__ import annotations

import re

from sqlglot import exp

__all__ = ["flink_text", "flink_windows"]

_SESSION = re.compile(r"\bSESSION\s*\(", re.IGNORECASE)
_WINDOW_TVF = re.compile(r"\bTABLE\s*\(\s*(?:TUMBLE|HOP|CUMULATE|SESSION)\s*\(\s*(TABLE)\b", re.IGNORECASE)
_WINDOWS = {"TUMBLE", "HOP", "CUMULATE", "SESSIO_"}
_WINDOW_COLUMNS = ("window_start", "window_end", "window_time")


def flink_text(sql: str) -> str:
    """Flink SQL with its window table functions unwrapped and ``SESSION(`` renamed, at the same length."""
    text = list(sql)
    for match in _WINDOW_TVF.finditer(sql):
        opening = sql.index("(", match.start())
        closing = _closing(sql, opening)
        if closing is None:
            continue
        for position in [*range(match.start(), opening + 1), *range(*match.span(1)), closing]:
            text[position] = " "
    return _SESSION.sub(lambda m: "SESSIO_" + m.group(0)[7:], "".join(text))


def _closing(sql: str, opening: int) -> int | None:
    """The position of the parenthesis closing the one at ``opening`` (quoted text skipped)."""
    depth = 0
    quote: str | None = None
    for position in range(opening, len(sql)):
        char = sql[position]
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return position
    return None


def flink_windows(statement: exp.Expr) -> exp.Expr:
    """``statement`` with each window table function call replaced by the subquery of the rows it gives."""

    def replace(node: exp.Expr) -> exp.Expr:
        call = node.this if isinstance(node, exp.Table) else None
        if not isinstance(call, exp.Anonymous) or str(call.this).upper() not in _WINDOWS:
            return node
        source, descriptor = (call.expressions + [None, None])[:2]
        if not isinstance(source, exp.Column) or not isinstance(descriptor, exp.Anonymous):
            return node
        time = descriptor.expressions[0] if descriptor.expressions else None
        if not isinstance(time, exp.Column):
            return node
        table = exp.to_table(".".join(p.name for p in source.parts))
        windows = [
            exp.alias_(exp.Anonymous(this="window", expressions=[exp.column(time.name)]), n) for n in _WINDOW_COLUMNS
        ]
        query = exp.select(exp.Star(), *windows).from_(table)
        alias = node.args.get("alias")
        return exp.Subquery(this=query, alias=alias.copy() if alias is not None else None)

    return statement.transform(replace)
