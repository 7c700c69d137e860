"""The ``sql`` search backend: documents in the catalog's own database, searched with its full-text index.

SQLite uses an FTS5 table (bm25 with per-column weights, prefix indexes); PostgreSQL a weighted
``tsvector`` with a GIN index (``ts_rank``). The tiers of :mod:`headwater.search.base` are computed in
SQL, so the order is exact and cursor pagination is keyset-based over (tier, score, id). Typo
tolerance: words of the query that no indexed name contains are corrected against the vocabulary
(``search_terms``) through its trigram table and a Damerau-Levenshtein check.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, create_engine, delete, event, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from headwater.db import UTCDateTime
from headwater.errors import InvalidInput
from headwater.pagination import decode_cursor, encode_cursor
from headwater.search.base import (
    DocumentType,
    MatchTier,
    Rebuild,
    SearchBackend,
    SearchDocument,
    SearchHit,
    SearchPage,
    SearchQuery,
    SearchUnavailable,
    Suggestion,
    describe,
    facet_list,
)
from headwater.search.models import SearchDocumentRow, SearchFacet, SearchTerm, SearchTermTrigram
from headwater.search.sql_capped import CANDIDATE_CAP, candidate_sql, excluded_condition, ranked_tier_sql
from headwater.search.text import (
    ParsedQuery,
    allowed_typos,
    edit_distance,
    highlight,
    parse_query,
    split_words,
    trigrams,
)

__all__ = ["SqlSearchBackend"]

log = logging.getLogger("headwater.search")

_DOCS: Table = SearchDocumentRow.__table__  # type: ignore[assignment]
_FACETS: Table = SearchFacet.__table__  # type: ignore[assignment]
_HIT_COLUMNS = (
    "d.id, d.key, d.type, d.dataset_id, d.name, d.name_key, d.dataset_name, d.namespace, d.source, d.kind, "
    "d.format, d.description, d.tags, d.owners, d.columns, d.updated_at"
)
_SORTS = {
    # Inside the name tiers the closer match first: the query's words in order (a phrase), then the shorter
    # name (title_daily_views before title_daily_views_backup).
    "relevance": ("tier ASC, closeness ASC, score DESC, id ASC", ("tier", "closeness", "score", "id")),
    "name": ("name_key ASC, id ASC", ("name_key", "id")),
    "-name": ("name_key DESC, id DESC", ("name_key", "id")),
    "updated_at": ("updated_at ASC, id ASC", ("updated_at", "id")),
    "-updated_at": ("updated_at DESC, id DESC", ("updated_at", "id")),
}


class _Sql:
    """Builds the parts of a statement that differ between SQLite and PostgreSQL."""

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

    # -- full-text expressions ---------------------------------------------------------------------

    def _fts5(self, parsed: ParsedQuery, columns: str | None) -> str:
        groups = []
        for i, term in enumerate(parsed.terms):
            last = i == len(parsed.terms) - 1
            alternatives = [f'"{word}"' for word in parsed.alternatives(term)]
            if last:
                alternatives[0] += "*"
            groups.append("(" + " OR ".join(alternatives) + ")")
        expression = " AND ".join(groups)
        if columns:
            expression = "{" + columns + "} : (" + expression + ")"
        if parsed.excluded:
            expression = f"({expression}) NOT (" + " OR ".join(f'"{w}"' for w in parsed.excluded) + ")"
        return expression

    def _tsquery(self, parsed: ParsedQuery, weights: str) -> str:
        groups = []
        for i, term in enumerate(parsed.terms):
            last = i == len(parsed.terms) - 1
            alternatives = [f"{word}:{weights}" for word in parsed.alternatives(term)]
            if last:
                alternatives[0] = f"{term}:*{weights}"
            groups.append("(" + " | ".join(alternatives) + ")")
        expression = " & ".join(groups)
        for word in parsed.excluded:
            expression += f" & !{word}"
        return expression

    def _best_words(self, parsed: ParsedQuery) -> list[str]:
        # The phrase uses each word as typed, or its best correction when it is a typo.
        return [parsed.corrections[t][0] if t in parsed.corrections else t for t in parsed.terms]

    def phrase(self, parsed: ParsedQuery) -> str:
        """1 when the query's words appear in the name in the query's order (the closer name match)."""
        if len(parsed.terms) < 2:
            return "1"
        words = self._best_words(parsed)
        if self.dialect == "sqlite":
            match = self.bind('{name_text} : "' + " ".join(words) + '" *')
            inner = f"SELECT rowid FROM fts_search_documents WHERE fts_search_documents MATCH {match}"
            return f"CASE WHEN d.id IN ({inner}) THEN 1 ELSE 0 END"
        expression = " <-> ".join(f"{w}:A" for w in words[:-1]) + f" <-> {words[-1]}:*A"
        return f"CASE WHEN d.fts_vector @@ to_tsquery('simple', {self.bind(expression)}) THEN 1 ELSE 0 END"

    def matched(self, parsed: ParsedQuery) -> tuple[str, str]:
        """A FROM clause of the matching documents ``d`` with a ``score`` column (higher is better), and
        the expression of the match tier."""
        exact = self.bind(parsed.exact)
        prefix = self.bind(_like_prefix(parsed.exact))
        if self.dialect == "sqlite":
            match = self.bind(self._fts5(parsed, None))
            source = (
                "(SELECT rowid AS fts_id, -bm25(fts_search_documents, 10.0, 4.0, 1.0, 2.0) AS score "
                f"FROM fts_search_documents WHERE fts_search_documents MATCH {match}) m "
                "CROSS JOIN search_documents d ON d.id = m.fts_id"
            )

            def within(columns: str) -> str:
                inner = self.bind(self._fts5(parsed, columns))
                return f"d.id IN (SELECT rowid FROM fts_search_documents WHERE fts_search_documents MATCH {inner})"

            tiers = [
                within("name_text"),
                within("name_text description_text"),
                within("name_text description_text columns_text"),
            ]
        else:
            match = self.bind(self._tsquery(parsed, ""))
            source = (
                f"(SELECT d0.*, ts_rank('{{0.1, 0.2, 0.4, 1.0}}', d0.fts_vector, to_tsquery('simple', {match}))::float8 "
                f"AS score FROM search_documents d0 WHERE d0.fts_vector @@ to_tsquery('simple', {match})) d"
            )

            def within(columns: str) -> str:
                return f"d.fts_vector @@ to_tsquery('simple', {self.bind(self._tsquery(parsed, columns))})"

            tiers = [within("A"), within("AB"), within("ABC")]
        tier = (
            f"CASE WHEN d.name_key = {exact} OR d.short_key = {exact} THEN 0 "
            f"WHEN d.name_key LIKE {prefix} ESCAPE '\\' OR d.short_key LIKE {prefix} ESCAPE '\\' THEN 1 "
            f"WHEN {tiers[0]} THEN 2 WHEN {tiers[1]} THEN 3 WHEN {tiers[2]} THEN 4 ELSE 5 END"
        )
        return source, tier

    def filters(self, query: SearchQuery) -> str:
        """The WHERE conditions of the type and facet filters on ``d``."""
        conditions = [f"d.type IN {self.bind([t.value for t in query.types], expanding=True)}"]
        for facet, values in query.filters.items():
            if facet in ("tag", "owner"):
                conditions.append(
                    "EXISTS (SELECT 1 FROM search_facets sf WHERE sf.document_id = d.id "
                    f"AND sf.facet = {self.bind(facet)} AND sf.value IN {self.bind(values, expanding=True)})"
                )
            else:
                conditions.append(f"d.{facet} IN {self.bind(values, expanding=True)}")
        return " AND ".join(conditions)

    def statement(self, sql: str, *, typed: bool = False) -> Any:
        """A text() statement with this builder's parameters bound."""
        stmt = text(sql).bindparams(
            *(
                bindparam(name, value, expanding=name in self.expanding, type_=self.types.get(name))
                for name, value in self.params.items()
                if re.search(rf":{name}\b", sql)  # the tier parameters are unused by count and facet queries
            )
        )
        return stmt.columns(updated_at=UTCDateTime()) if typed else stmt


def _like_prefix(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _json_list(value: Any) -> list[str]:
    # text() results are not typed: SQLite hands JSON columns back as strings.
    if isinstance(value, str):
        return list(json.loads(value))
    return list(value or [])


class SqlSearchBackend(SearchBackend):
    """Search documents stored beside the catalog, in the same database."""

    name = "sql"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # SQLite: reads get their own engine so they run without the write lock the catalog engine's
        # BEGIN IMMEDIATE takes (WAL lets them read beside the writer).
        self.read_engine = engine
        if self.dialect == "sqlite":
            self.read_engine = create_engine(engine.url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(self.read_engine, "connect", _sqlite_read_pragmas)
        self._known_terms: set[str] = set()

    def close(self) -> None:
        """Release the read engine."""
        if self.read_engine is not self.engine:
            self.read_engine.dispose()

    # -- writing ----------------------------------------------------------------------------------

    def ensure_ready(self) -> None:
        """Check the search tables exist (migration 0004)."""
        try:
            with self.read_engine.connect() as conn:
                conn.execute(select(_DOCS.c.id).limit(1))
        except SQLAlchemyError as exc:
            raise SearchUnavailable(f"the search tables cannot be read: {describe(exc)}") from exc

    def replace(self, dataset_ids: Sequence[int], documents: Sequence[SearchDocument]) -> None:
        """Delete the documents of ``dataset_ids`` and insert ``documents``, in one transaction."""
        try:
            with self.engine.begin() as conn:
                self._replace(conn, dataset_ids, documents)
        except SQLAlchemyError as exc:
            raise SearchUnavailable(f"writing search documents failed: {describe(exc)}") from exc

    def _replace(self, conn: Connection, dataset_ids: Sequence[int], documents: Sequence[SearchDocument]) -> None:
        for start in range(0, len(dataset_ids), 500):
            conn.execute(delete(_DOCS).where(_DOCS.c.dataset_id.in_(list(dataset_ids[start : start + 500]))))
        if not documents:
            return
        rows = [_row(doc) for doc in documents]
        ids = conn.execute(insert(_DOCS).returning(_DOCS.c.id, sort_by_parameter_order=True), rows).scalars().all()
        facets = [
            {"document_id": doc_id, "facet": facet, "value": value}
            for doc_id, doc in zip(ids, documents, strict=True)
            for facet in ("tag", "owner")
            for value in doc.facet_values()[facet]
        ]
        if facets:
            conn.execute(insert(_FACETS), facets)
        self._add_terms(conn, documents)

    def _add_terms(self, conn: Connection, documents: Sequence[SearchDocument]) -> None:
        words: set[str] = set()
        for doc in documents:
            words.update(split_words(doc.name))
            words.update(split_words(" ".join(doc.tags)))
            for column in doc.columns:
                words.update(split_words(column.path))
        new = sorted(w for w in words - self._known_terms if 3 <= len(w) <= 64)
        if not new:
            return
        existing = set(conn.scalars(select(SearchTerm.term).where(SearchTerm.term.in_(new))))
        fresh = [w for w in new if w not in existing]
        if fresh:
            conn.execute(self._insert_ignore(SearchTerm.__table__), [{"term": w} for w in fresh])
            conn.execute(
                self._insert_ignore(SearchTermTrigram.__table__),
                [{"trigram": g, "term": w} for w in fresh for g in trigrams(w)],
            )
        if len(self._known_terms) < 200_000:
            self._known_terms.update(new)

    def _insert_ignore(self, table: Any) -> Any:
        if self.dialect == "postgresql":
            return pg_insert(table).on_conflict_do_nothing()
        return sqlite_insert(table).on_conflict_do_nothing()

    def begin_rebuild(self) -> Rebuild:
        """Rewrite every document in place, batch by batch; documents of datasets not seen are swept at
        the end. Readers always see a full index (the old or the new version of each dataset)."""
        return _SqlRebuild(self)

    # -- reading ----------------------------------------------------------------------------------

    def count_documents(self) -> dict[str, int]:
        """Documents per type."""
        try:
            with self.read_engine.connect() as conn:
                rows = conn.execute(text("SELECT type, count(*) FROM search_documents GROUP BY type")).all()
        except SQLAlchemyError as exc:
            raise SearchUnavailable(f"counting search documents failed: {describe(exc)}") from exc
        counts = {t.value: 0 for t in DocumentType}
        counts.update({row[0]: row[1] for row in rows})
        return counts

    def search(self, query: SearchQuery) -> SearchPage:
        """Answer a validated query."""
        parsed = parse_query(query.q)
        try:
            with self.read_engine.connect() as conn:
                if not parsed.empty:
                    parsed.corrections = self._corrections(conn, parsed)
                return self._search(conn, query, parsed)
        except SQLAlchemyError as exc:
            raise SearchUnavailable(f"search failed: {describe(exc)}") from exc

    def _search(self, conn: Connection, query: SearchQuery, parsed: ParsedQuery) -> SearchPage:
        if query.sort == "relevance" and not parsed.empty:
            page = self._search_capped(conn, query, parsed)
            if page is not None:
                return page
        return self._search_all(conn, query, parsed)

    def _candidates(self, conn: Connection, query: SearchQuery, parsed: ParsedQuery) -> tuple[str, bool]:
        """The capped candidate set as JSON ``[[id, score], ...]``, and whether a step hit its cap."""
        sql = _Sql(self.dialect)
        exact = sql.bind(parsed.exact)
        statement = candidate_sql(
            self.dialect,
            types=sql.bind([t.value for t in query.types], expanding=True),
            exact=exact,
            prefix_bounds=(sql.bind(parsed.exact), sql.bind(parsed.exact + "\U0010ffff")),
            like_prefix=sql.bind(_like_prefix(parsed.exact)),
            all_match=sql.bind(sql._fts5(parsed, None) if self.dialect == "sqlite" else sql._tsquery(parsed, "")),
            name_match=sql.bind(
                sql._fts5(parsed, "name_text") if self.dialect == "sqlite" else sql._tsquery(parsed, "A")
            ),
            cap=sql.bind(CANDIDATE_CAP),
        )
        rows = conn.execute(sql.statement(statement)).all()
        capped = any(row[2] for row in rows)
        return json.dumps([[row[0], row[1]] for row in rows]), capped

    def _candidate_source(self, sql: _Sql, candidates: str) -> str:
        """FROM clause of the candidate documents ``d`` with their full-text ``score``."""
        values = sql.bind(candidates)
        if self.dialect == "sqlite":
            return (
                "(SELECT CAST(json_extract(value, '$[0]') AS INTEGER) AS cid, json_extract(value, '$[1]') AS score "
                f"FROM json_each({values})) c CROSS JOIN search_documents d ON d.id = c.cid"
            )
        return (
            "(SELECT (e->>0)::bigint AS cid, (e->>1)::float8 AS score "
            f"FROM jsonb_array_elements(CAST({values} AS jsonb)) e) c JOIN search_documents d ON d.id = c.cid"
        )

    def _search_capped(self, conn: Connection, query: SearchQuery, parsed: ParsedQuery) -> SearchPage | None:
        """Rank the capped candidate set; None when that set may be missing hits a full page needs."""
        candidates, capped = self._candidates(conn, query, parsed)
        order, key_columns = _SORTS["relevance"]
        sql = _Sql(self.dialect)
        source = self._candidate_source(sql, candidates)
        exact = sql.bind(parsed.exact)
        if self.dialect == "sqlite":
            low, high = sql.bind(parsed.exact), sql.bind(parsed.exact + "\U0010ffff")
            prefix = (
                f"((d.name_key >= {low} AND d.name_key < {high}) OR (d.short_key >= {low} AND d.short_key < {high}))"
            )
        else:
            like = sql.bind(_like_prefix(parsed.exact))
            prefix = f"(d.name_key LIKE {like} ESCAPE '\\' OR d.short_key LIKE {like} ESCAPE '\\')"
        tier, phrase = ranked_tier_sql(parsed, sql.bind, exact, prefix)
        where = sql.filters(query)
        if parsed.excluded:
            where += " AND " + excluded_condition(parsed.excluded, sql.bind)
        ranked = (
            f"SELECT d.id, d.name_key, d.source, d.kind, d.namespace, d.format, COALESCE(c.score, 0.0) AS score, "
            f"{tier} AS tier, {phrase} AS phrase FROM {source} WHERE {where}"
        )
        keyset = ""
        if query.cursor:
            keyset = "WHERE " + self._keyset(
                sql, "relevance", key_columns, decode_cursor(query.cursor, "search:relevance")
            )
        page = (
            "SELECT * FROM (SELECT r.*, "
            "CASE WHEN r.tier <= 2 THEN (1 - r.phrase) * 100000 + length(r.name_key) ELSE 0 END AS closeness, "
            f"count(*) OVER () AS total FROM hits r) page {keyset} "
            f"ORDER BY {order} LIMIT {sql.bind(query.limit + 1)}"
        )
        outer_order = ", ".join(f"p.{part.strip()}" for part in order.split(","))
        statement = (
            f"WITH hits AS MATERIALIZED ({ranked}) "
            f"SELECT {_HIT_COLUMNS}, p.score, p.tier, p.closeness, p.total FROM ({page}) p "
            f"JOIN search_documents d ON d.id = p.id ORDER BY {outer_order}"
        )
        rows = conn.execute(sql.statement(statement, typed=True)).mappings().all()
        if capped and not query.cursor and len(rows) <= query.limit:
            return None  # filters left too few candidates: rank every match instead
        total = rows[0]["total"] if rows else 0
        if query.cursor and not rows:
            total = self._capped_total(conn, sql, ranked)
        next_cursor = None
        if len(rows) > query.limit:
            rows = rows[: query.limit]
            last = rows[-1]
            next_cursor = encode_cursor("search:relevance", [last[c] for c in key_columns])
        hits = [self._hit(row, parsed, query, scored=True) for row in rows]
        facets = {}
        if query.facets:
            facets = facet_list(self._facet_counts(conn, sql, f"WITH hits AS MATERIALIZED ({ranked}) "))
        return SearchPage(
            items=hits,
            next_cursor=next_cursor,
            total=total,
            facets=facets,
            corrections=parsed.corrections,
            total_approximate=capped,
            facets_approximate=capped and query.facets,
        )

    def _capped_total(self, conn: Connection, sql: _Sql, ranked: str) -> int:
        return int(conn.execute(sql.statement(f"SELECT count(*) FROM ({ranked}) r")).scalar_one())

    def _search_all(self, conn: Connection, query: SearchQuery, parsed: ParsedQuery) -> SearchPage:
        sort = query.effective_sort if not parsed.empty else ("name" if query.sort == "relevance" else query.sort)
        order, key_columns = _SORTS[sort]
        sql = _Sql(self.dialect)
        if parsed.empty:
            source, tier = "search_documents d", "0"
            score = "0.0"
        else:
            source, tier = sql.matched(parsed)
            score = "d.score" if self.dialect == "postgresql" else "m.score"
        where = sql.filters(query)
        # Rank on narrow columns only, then fetch the wide ones for the page's rows alone.
        phrase = "1" if parsed.empty else sql.phrase(parsed)
        ranked = (
            f"SELECT d.id, d.name_key, d.updated_at, {score} AS score, {tier} AS tier, {phrase} AS phrase "
            f"FROM {source} WHERE {where}"
        )
        keyset = ""
        if query.cursor:
            keyset = "WHERE " + self._keyset(sql, sort, key_columns, decode_cursor(query.cursor, f"search:{sort}"))
        page = (
            "SELECT * FROM (SELECT r.*, "
            "CASE WHEN r.tier <= 2 THEN (1 - r.phrase) * 100000 + length(r.name_key) ELSE 0 END AS closeness, "
            f"count(*) OVER () AS total FROM ({ranked}) r) page {keyset} "
            f"ORDER BY {order} LIMIT {sql.bind(query.limit + 1)}"
        )
        outer_order = ", ".join(f"p.{part.strip()}" for part in order.split(","))
        statement = (
            f"SELECT {_HIT_COLUMNS}, p.score, p.tier, p.closeness, p.total FROM ({page}) p "
            f"JOIN search_documents d ON d.id = p.id ORDER BY {outer_order}"
        )
        rows = conn.execute(sql.statement(statement, typed=True)).mappings().all()
        total = rows[0]["total"] if rows else (0 if not query.cursor else self._count(conn, query, parsed))
        next_cursor = None
        if len(rows) > query.limit:
            rows = rows[: query.limit]
            last = rows[-1]
            values = [last[c].isoformat() if isinstance(last[c], dt.datetime) else last[c] for c in key_columns]
            next_cursor = encode_cursor(f"search:{sort}", values)
        hits = [self._hit(row, parsed, query, scored=not parsed.empty) for row in rows]
        facets = facet_list(self._facets(conn, query, parsed)) if query.facets else {}
        return SearchPage(
            items=hits, next_cursor=next_cursor, total=total, facets=facets, corrections=parsed.corrections
        )

    def _keyset(self, sql: _Sql, sort: str, columns: tuple[str, ...], values: list[Any]) -> str:
        if len(values) != len(columns):
            raise InvalidInput("cursor is malformed", detail={"field": "cursor"})
        try:
            if sort == "relevance":
                t, c = sql.bind(int(values[0])), sql.bind(int(values[1]))
                s, i = sql.bind(float(values[2])), sql.bind(int(values[3]))
                return (
                    f"(tier > {t} OR (tier = {t} AND (closeness > {c} OR (closeness = {c} AND "
                    f"(score < {s} OR (score = {s} AND id > {i}))))))"
                )
            if columns[0] == "updated_at":
                first = sql.bind(dt.datetime.fromisoformat(str(values[0])), type_=UTCDateTime())
            elif isinstance(values[0], str):
                first = sql.bind(values[0])
            else:
                raise TypeError(values[0])
            last_id = sql.bind(int(values[1]))
        except (TypeError, ValueError) as exc:
            raise InvalidInput("cursor holds a value of the wrong type", detail={"field": "cursor"}) from exc
        op = "<" if sort.startswith("-") else ">"
        column = columns[0]
        return f"({column} {op} {first} OR ({column} = {first} AND id {op} {last_id}))"

    def _count(self, conn: Connection, query: SearchQuery, parsed: ParsedQuery) -> int:
        sql = _Sql(self.dialect)
        source = "search_documents d" if parsed.empty else sql.matched(parsed)[0]
        return int(
            conn.execute(sql.statement(f"SELECT count(*) FROM {source} WHERE {sql.filters(query)}")).scalar_one()
        )

    def _facets(self, conn: Connection, query: SearchQuery, parsed: ParsedQuery) -> dict[str, dict[str, int]]:
        sql = _Sql(self.dialect)
        source = "search_documents d" if parsed.empty else sql.matched(parsed)[0]
        hits = (
            f"WITH hits AS MATERIALIZED (SELECT d.id, d.source, d.kind, d.namespace, d.format FROM {source} "
            f"WHERE {sql.filters(query)}) "
        )
        return self._facet_counts(conn, sql, hits)

    def _facet_counts(self, conn: Connection, sql: _Sql, hits: str) -> dict[str, dict[str, int]]:
        """Counts per facet value over the ``hits`` CTE (id, source, kind, namespace, format)."""
        statement = (
            hits + "SELECT 'source' AS facet, source AS value, count(*) AS n FROM hits GROUP BY source "
            "UNION ALL SELECT 'kind', kind, count(*) FROM hits GROUP BY kind "
            "UNION ALL SELECT 'namespace', namespace, count(*) FROM hits GROUP BY namespace "
            "UNION ALL SELECT 'format', format, count(*) FROM hits WHERE format IS NOT NULL GROUP BY format "
            "UNION ALL SELECT sf.facet, sf.value, count(*) FROM hits JOIN search_facets sf ON sf.document_id = hits.id "
            "GROUP BY sf.facet, sf.value"
        )
        counts: dict[str, dict[str, int]] = {}
        for facet, value, n in conn.execute(sql.statement(statement)).all():
            counts.setdefault(facet, {})[value] = int(n)
        return counts

    def _hit(self, row: Any, parsed: ParsedQuery, query: SearchQuery, *, scored: bool) -> SearchHit:
        columns = _json_list(row["columns"])
        tags = _json_list(row["tags"])
        hit = SearchHit(
            key=row["key"],
            type=DocumentType(row["type"]),
            dataset_id=row["dataset_id"],
            name=row["name"],
            dataset_name=row["dataset_name"],
            namespace=row["namespace"],
            source=row["source"],
            kind=row["kind"],
            format=row["format"],
            description=row["description"],
            tags=tags,
            owners=_json_list(row["owners"]),
            updated_at=row["updated_at"],
            match=MatchTier(int(row["tier"])) if scored else None,
            score=float(row["score"]) if scored else None,
        )
        if query.highlight and scored:
            hit.highlights = highlights_for(
                parsed, name=hit.name, description=hit.description, columns=columns, tags=tags
            )
        return hit

    def _corrections(self, conn: Connection, parsed: ParsedQuery) -> dict[str, list[str]]:
        candidates = [t for t in parsed.terms if allowed_typos(t) > 0]
        if not candidates:
            return {}
        known = set(conn.scalars(select(SearchTerm.term).where(SearchTerm.term.in_(candidates))))
        corrections: dict[str, list[str]] = {}
        for i, term in enumerate(candidates):
            if term in known:
                continue
            is_last = term == parsed.terms[-1] and i == len(candidates) - 1
            if is_last and conn.scalar(
                select(SearchTerm.term).where(SearchTerm.term.like(_like_prefix(term), escape="\\")).limit(1)
            ):
                continue  # a word being typed, not a typo
            grams = sorted(trigrams(term))
            shared = conn.execute(
                select(SearchTermTrigram.term)
                .where(SearchTermTrigram.trigram.in_(grams))
                .group_by(SearchTermTrigram.term)
                .order_by(text("count(*) DESC"), SearchTermTrigram.term)
                .limit(50)
            ).scalars()
            limit = allowed_typos(term)
            scored = sorted((edit_distance(term, word, limit), word) for word in shared)
            found = [word for distance, word in scored if distance <= limit][:3]
            if found:
                corrections[term] = found
        return corrections

    def suggest(self, prefix: str, *, limit: int, types: Sequence[DocumentType]) -> list[Suggestion]:
        """Names starting with ``prefix`` (whole name or last segment), then names with a word starting with it."""
        key = prefix.strip().lower()
        sql = _Sql(self.dialect)
        type_list = sql.bind([t.value for t in types], expanding=True)
        like = sql.bind(_like_prefix(key))
        statement = (
            "SELECT name, type, dataset_id, namespace, kind, "
            f"CASE WHEN name_key LIKE {like} ESCAPE '\\' THEN 0 ELSE 1 END AS tier FROM search_documents "
            f"WHERE type IN {type_list} AND (name_key LIKE {like} ESCAPE '\\' OR short_key LIKE {like} ESCAPE '\\') "
            f"ORDER BY tier, length(name), name_key LIMIT {sql.bind(limit)}"
        )
        try:
            with self.read_engine.connect() as conn:
                rows = list(conn.execute(sql.statement(statement)).all())
                words = split_words(key)
                if len(rows) < limit and words:
                    rows += self._suggest_words(conn, words, limit - len(rows), types, {r[0] for r in rows})
        except SQLAlchemyError as exc:
            raise SearchUnavailable(f"suggest failed: {describe(exc)}") from exc
        return [
            Suggestion(text=r[0], type=DocumentType(r[1]), dataset_id=r[2], namespace=r[3], kind=r[4]) for r in rows
        ]

    def _suggest_words(
        self, conn: Connection, words: list[str], limit: int, types: Sequence[DocumentType], seen: set[str]
    ) -> list[Any]:
        sql = _Sql(self.dialect)
        parsed = ParsedQuery(raw=" ".join(words), exact=" ".join(words), terms=words)
        type_list = sql.bind([t.value for t in types], expanding=True)
        if self.dialect == "sqlite":
            match = sql.bind(sql._fts5(parsed, "name_text"))
            source = (
                "(SELECT rowid AS fts_id FROM fts_search_documents WHERE fts_search_documents MATCH "
                f"{match}) m CROSS JOIN search_documents d ON d.id = m.fts_id"
            )
            condition = f"d.type IN {type_list}"
        else:
            source = "search_documents d"
            match = sql.bind(sql._tsquery(parsed, "A"))
            condition = f"d.type IN {type_list} AND d.fts_vector @@ to_tsquery('simple', {match})"
        statement = (
            f"SELECT d.name, d.type, d.dataset_id, d.namespace, d.kind, 2 AS tier FROM {source} "
            f"WHERE {condition} ORDER BY length(d.name), d.name_key LIMIT {sql.bind(limit + len(seen))}"
        )
        return [r for r in conn.execute(sql.statement(statement)).all() if r[0] not in seen][:limit]


def highlights_for(
    parsed: ParsedQuery, *, name: str, description: str | None, columns: list[str], tags: list[str]
) -> dict[str, list[str]]:
    """What matched, with <mark> around the matching words (the last query word also as a prefix)."""
    words = {w for term in parsed.terms for w in parsed.alternatives(term)}
    prefix = parsed.terms[-1] if parsed.terms else None
    found: dict[str, list[str]] = {}
    for label, values in (("name", [name]), ("description", [description]), ("columns", columns), ("tags", tags)):
        marked = [m for m in (highlight(v, words, prefix) for v in values) if m]
        if marked:
            found[label] = marked[:5]
    return found


class _SqlRebuild(Rebuild):
    def __init__(self, backend: SqlSearchBackend) -> None:
        self.backend = backend
        self.seen: set[int] = set()

    def add(self, dataset_ids: Sequence[int], documents: Sequence[SearchDocument]) -> None:
        self.backend.replace(dataset_ids, documents)
        self.seen.update(dataset_ids)

    def finish(self) -> None:
        try:
            with self.backend.engine.begin() as conn:
                present = set(conn.scalars(select(_DOCS.c.dataset_id).distinct()))
                stale = sorted(present - self.seen)
                for start in range(0, len(stale), 500):
                    conn.execute(delete(_DOCS).where(_DOCS.c.dataset_id.in_(stale[start : start + 500])))
                if self.backend.dialect == "sqlite":
                    conn.execute(text("INSERT INTO fts_search_documents(fts_search_documents) VALUES ('optimize')"))
        except SQLAlchemyError as exc:
            raise SearchUnavailable(f"finishing the rebuild failed: {describe(exc)}") from exc

    def abort(self) -> None:
        """Nothing to undo: each batch already replaced its datasets' documents with current ones."""


def _row(doc: SearchDocument) -> dict[str, Any]:
    return {
        "key": doc.key,
        "type": doc.type.value,
        "dataset_id": doc.dataset_id,
        "name": doc.name,
        "name_key": doc.name.lower(),
        "short_key": doc.short_key,
        "dataset_name": doc.dataset_name,
        "namespace": doc.namespace,
        "source": doc.source,
        "kind": doc.kind,
        "format": doc.format,
        "description": doc.description,
        "tags": doc.tags,
        "owners": doc.owners,
        "columns": [c.path for c in doc.columns],
        "field_type": doc.field_type,
        "lineage_degree": doc.lineage_degree,
        "job_usage": doc.job_usage,
        "updated_at": doc.updated_at,
        "name_text": doc.name_text,
        "description_text": doc.description_text,
        "columns_text": doc.columns_text,
        "other_text": doc.other_text,
    }


def _sqlite_read_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()
