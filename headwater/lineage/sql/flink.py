"""Flink SQL read with sqlglot's Hive dialect: what Flink writes that Hive does not parse, made parsable.

Both rewrites of the text keep its length, so that a parse error's line and column still point into the SQL the
caller sent: the ``SESSION(`` group window becomes ``SESSIO_(``, and a windowing table function
``TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), ...))`` (also HOP, CUMULATE, SESSION) loses its ``TABLE`` keywords and
outer parentheses to blanks, and so do its named arguments' labels (``DATA => TABLE t``) and a session window's
``PARTITION BY`` keys (grouping within the window: they feed no column the window gives). The parsed call is then replaced by the rows it gives: the table's columns plus
``window_start``, ``window_end`` and ``window_time``, computed from the time column.
"""

from __future__ import annotations

import re

from sqlglot import exp

__all__ = ["flink_text", "flink_windows"]

_SESSION = re.compile(r"\bSESSION\s*\(", re.IGNORECASE)
_WINDOW_TVF = re.compile(r"\bTABLE\s*\(\s*(?:TUMBLE|HOP|CUMULATE|SESSION)\s*(\()", re.IGNORECASE)
# Inside the call: a named argument's label (``DATA =>``), the ``TABLE`` keyword before the data, and a session
# window's ``PARTITION BY`` keys (up to the next argument), all blanked.
_LABEL = re.compile(r"\b[A-Za-z_]\w*\s*=>")
_TABLE_ARG = re.compile(r"\bTABLE\b", re.IGNORECASE)
_PARTITION = re.compile(r"\bPARTITION\s+BY\b", re.IGNORECASE)
_WINDOWS = {"TUMBLE", "HOP", "CUMULATE", "SESSIO_"}
_WINDOW_COLUMNS = ("window_start", "window_end", "window_time")


def flink_text(sql: str) -> str:
    """Flink SQL with its window table functions unwrapped and ``SESSION(`` renamed, at the same length."""
    text = list(sql)
    for match in _WINDOW_TVF.finditer(sql):
        opening = sql.index("(", match.start())
        closing = _closing(sql, opening)
        inner = match.start(1)
        inner_closing = _closing(sql, inner)
        if closing is None or inner_closing is None:
            continue
        blanks = [*range(match.start(), opening + 1), closing]
        for pattern in (_LABEL, _TABLE_ARG):
            for found in pattern.finditer(sql, inner + 1, inner_closing):
                blanks.extend(range(*found.span()))
        partition = _PARTITION.search(sql, inner + 1, inner_closing)
        if partition is not None:
            end = _next_argument(sql, partition.end(), inner_closing)
            blanks.extend(range(partition.start(), end))
        for position in blanks:
            text[position] = " "
    return _SESSION.sub(lambda m: "SESSIO_" + m.group(0)[7:], "".join(text))


def _next_argument(sql: str, start: int, end: int) -> int:
    """The position of the comma ending the argument that goes on at ``start`` (or ``end``)."""
    depth = 0
    for position in range(start, end):
        char = sql[position]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            return position
    return end


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
        # By kind, not position: named arguments may come in any order.
        source = next((e for e in call.expressions if isinstance(e, exp.Column)), None)
        descriptor = next(
            (e for e in call.expressions if isinstance(e, exp.Anonymous) and str(e.this).upper() == "DESCRIPTOR"), None
        )
        if source is None or descriptor is None:
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
