"""Statement building for the ``sql`` search backend: bind parameters, the dialect's full-text expressions
(SQLite FTS5 ``MATCH`` strings, PostgreSQL ``tsquery`` text), filters and keyset conditions.

Everything here only builds SQL text and parameters; :mod:`headwater.search.sql` runs it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import bindparam, text

from headwater.db import UTCDateTime
from headwater.errors import InvalidInput
from headwater.search.base import DocumentType, SearchQuery
from headwater.search.text import ParsedQuery

__all__ = ["HIT_COLUMNS", "SORTS", "SqlBuilder", "bm25", "fts_table", "json_list", "like_escape", "like_prefix"]

# The wide columns a page's hits are built from (fetched for the page's rows only).
HIT_COLUMNS = (
    "d.id, d.key, d.type, d.dataset_id, d.name, d.name_key, d.dataset_name, d.namespace, d.source, d.kind, "
    "d.format, d.description, d.tags, d.owners, d.columns, d.updated_at"
)
SORTS = {
    # One order on every backend (sql_ranking sorts candidates in Python by the same key): tier, name, dataset.
    "relevance": ("tier ASC, name_key ASC, dataset_id ASC, id ASC", ("tier", "name_key", "dataset_id", "id")),
    "name": ("name_key ASC, id ASC", ("name_key", "id")),
    "-name": ("name_key DESC, id DESC", ("name_key", "id")),
    "updated_at": ("updated_at ASC, id ASC", ("updated_at", "id")),
    "-updated_at": ("updated_at DESC, id DESC", ("updated_at", "id")),
}
# FTS5 column weights (name, descriptions, columns, other) and the PostgreSQL ts_rank weights {D, C, B, A}.
BM25_WEIGHTS = "10.0, 4.0, 1.0, 2.0"
TS_WEIGHTS = "'{0.1, 0.2, 0.4, 1.0}'"
# The PostgreSQL expression indexes of migration 0006: name words alone, and name + description words.
# A query must spell them exactly like this for the planner to use the index.
PG_NAME_VECTOR = "to_tsvector('simple'::regconfig, d.name_text)"
PG_DESCRIBED_VECTOR = "to_tsvector('simple'::regconfig, d.name_text || ' ' || d.description_text)"


def fts_table(types: Iterable[DocumentType]) -> str:
    """The SQLite FTS5 table to search for documents of ``types``: the dataset-only table of migration 0008
    when only datasets are wanted (the default), so a query never walks the column documents."""
    return "fts_search_datasets" if set(types) == {DocumentType.DATASET} else "fts_search_documents"


def bm25(table: str) -> str:
    """The FTS5 bm25 score of a row of ``table`` with Headwater's column weights."""
    return f"bm25({table}, {BM25_WEIGHTS})"


def like_escape(value: str) -> str:
    """``value`` with LIKE's wildcards escaped (escape character ``\\``)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_prefix(value: str) -> str:
    """A LIKE pattern (escape ``\\``) matching strings that start with ``value``."""
    return like_escape(value) + "%"


def json_list(value: Any) -> list[str]:
    """A JSON list column's value as a list; text() results are untyped, so SQLite hands back strings."""
    if isinstance(value, str):
        return list(orjson.loads(value))
    return list(value or [])


class SqlBuilder:
    """Builds the parts of a statement that differ between SQLite and PostgreSQL, collecting its parameters."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.params: dict[str, Any] = {}
        self.expanding: list[str] = []
        self.types: dict[str, Any] = {}

    def bind(self, value: Any, *, expanding: bool = False, type_: Any = None) -> str:
        """A fresh bind parameter holding ``value``; its placeholder."""
        name = f"p{len(self.params)}"
        self.params[name] = value
        if expanding:
            self.expanding.append(name)
        if type_ is not None:
            self.types[name] = type_
        return f":{name}"

    def statement(self, sql: str, *, typed: bool = False) -> Any:
        """A text() statement with this builder's parameters bound (those ``sql`` uses)."""
        stmt = text(sql).bindparams(
            *(
                bindparam(name, value, expanding=name in self.expanding, type_=self.types.get(name))
                for name, value in self.params.items()
                if re.search(rf":{name}\b", sql)
            )
        )
        return stmt.columns(updated_at=UTCDateTime()) if typed else stmt

    # -- full-text expressions ---------------------------------------------------------------------

    def fts5(self, parsed: ParsedQuery, columns: str | None) -> str:
        """An FTS5 MATCH string: every word (or a correction of it), the last also as a prefix."""
        groups = []
        for i, term in enumerate(parsed.terms):
            alternatives = [f'"{word}"' for word in parsed.alternatives(term)]
            if i == len(parsed.terms) - 1:
                alternatives[0] += "*"
            groups.append("(" + " OR ".join(alternatives) + ")")
        expression = " AND ".join(groups)
        if columns:
            expression = "{" + columns + "} : (" + expression + ")"
        if parsed.excluded:
            expression = f"({expression}) NOT (" + " OR ".join(f'"{w}"' for w in parsed.excluded) + ")"
        return expression

    def tsquery(self, parsed: ParsedQuery, weights: str = "", *, with_excluded: bool = True) -> str:
        """A to_tsquery string: every word (or a correction of it), the last also as a prefix, and unless
        ``with_excluded`` is false none of the excluded words."""
        groups = []
        for i, term in enumerate(parsed.terms):
            alternatives = [f"{word}:{weights}" for word in parsed.alternatives(term)]
            if i == len(parsed.terms) - 1:
                alternatives[0] = f"{term}:*{weights}"
            groups.append("(" + " | ".join(alternatives) + ")")
        expression = " & ".join(groups)
        for word in parsed.excluded if with_excluded else ():
            expression += f" & !{word}"
        return expression

    def match_condition(self, parsed: ParsedQuery, types: Iterable[DocumentType]) -> str:
        """A condition on ``d``: the document matches the query's words (the full-text index decides)."""
        if self.dialect == "sqlite":
            match, table = self.bind(self.fts5(parsed, None)), fts_table(types)
            return f"d.id IN (SELECT rowid FROM {table} WHERE {table} MATCH {match})"
        return f"d.fts_vector @@ to_tsquery('simple', {self.bind(self.tsquery(parsed))})"

    def filters(self, query: SearchQuery, *, type_index: bool = True) -> str:
        """The WHERE conditions of the type and facet filters on ``d``; ``type_index=False`` keeps SQLite
        from reading the type index (where another index is far more selective)."""
        column = "+d.type" if self.dialect == "sqlite" and not type_index else "d.type"
        conditions = [self.type_condition(query.types, column)]
        for facet, values in query.filters.items():
            if facet in ("tag", "owner"):
                conditions.append(
                    "EXISTS (SELECT 1 FROM search_facets sf WHERE sf.document_id = d.id "
                    f"AND sf.facet = {self.bind(facet)} AND sf.value IN {self.bind(values, expanding=True)})"
                )
            else:
                conditions.append(f"d.{facet} IN {self.bind(values, expanding=True)}")
        for phrase in query.phrases:
            # The phrase's words side by side in one field (fields are stored as space-separated words).
            fields = " || ' | ' || ".join(
                f"d.{c}" for c in ("name_text", "description_text", "columns_text", "other_text")
            )
            conditions.append(f"(' ' || {fields} || ' ') LIKE {self.bind(f'% {like_escape(phrase)} %')} ESCAPE '\\'")
        if query.audience is not None:
            conditions.append(self.visible(query.audience))
        return " AND ".join(conditions)

    def visible(self, audience: frozenset[str], column: str = "d.dataset_id") -> str:
        """The condition: the document's dataset is not restricted, or ``audience`` is in its audience (the
        catalog's ``dataset_audience``, which this backend shares, so a restriction applies at once)."""
        members = self.bind(sorted(audience), expanding=True)
        return (
            f"(NOT EXISTS (SELECT 1 FROM dataset_audience a WHERE a.dataset_id = {column}) OR EXISTS "
            f"(SELECT 1 FROM dataset_audience a WHERE a.dataset_id = {column} AND a.member IN {members}))"
        )

    def type_condition(self, types: Iterable[DocumentType], column: str = "d.type") -> str:
        """The condition: the document is of one of ``types``."""
        values = sorted({t.value for t in types})
        if values == [DocumentType.DATASET.value]:
            # A literal, not a bind: PostgreSQL's planner uses the partial indexes ``WHERE type = 'dataset'``
            # (migration 0008) only when it can prove their predicate from the statement text itself.
            return f"{column} = 'dataset'"
        return f"{column} IN {self.bind(values, expanding=True)}"

    def keyset(self, sort: str, values: list[Any]) -> str:
        """The condition selecting rows after the cursor position ``values`` under ``sort`` (not relevance)."""
        columns = SORTS[sort][1]
        if len(values) != len(columns):
            raise InvalidInput("cursor is malformed", detail={"field": "cursor"})
        try:
            if columns[0] == "updated_at":
                first = self.bind(dt.datetime.fromisoformat(str(values[0])), type_=UTCDateTime())
            elif isinstance(values[0], str):
                first = self.bind(values[0])
            else:
                raise TypeError(values[0])
            last_id = self.bind(int(values[1]))
        except (TypeError, ValueError) as exc:
            raise InvalidInput("cursor holds a value of the wrong type", detail={"field": "cursor"}) from exc
        op = "<" if sort.startswith("-") else ">"
        column = columns[0]
        return f"({column} {op} {first} OR ({column} = {first} AND id {op} {last_id}))"
