"""The ``sql`` search backend: documents in the catalog's own database, searched with its full-text index.

SQLite uses an FTS5 table (bm25 with per-column weights, prefix indexes); PostgreSQL a weighted
``tsvector`` with a GIN index (``ts_rank``) plus GIN indexes on name words and on name + description words.
The modules beside this one hold the parts: :mod:`~headwater.search.sql_query` builds statements,
:mod:`~headwater.search.sql_ranking` ranks relevance queries tier by tier over a bounded candidate set,
:mod:`~headwater.search.sql_typos` corrects typos against the vocabulary of indexed words.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, delete, event, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

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
from headwater.search.sql_query import (
    HIT_COLUMNS,
    PG_NAME_VECTOR,
    SORTS,
    SqlBuilder,
    fts_table,
    json_list,
    like_prefix,
)
from headwater.search.sql_ranking import CANDIDATE_CAP, Candidate, find_candidates, like_tier
from headwater.search.sql_typos import Vocabulary, spelling
from headwater.search.text import ParsedQuery, highlights_for, parse_query, split_words, trigrams

__all__ = ["SqlSearchBackend"]

log = logging.getLogger("headwater.search")

_DOCS: Table = SearchDocumentRow.__table__  # type: ignore[assignment]
_FACETS: Table = SearchFacet.__table__  # type: ignore[assignment]


# A GIN scan of the PostgreSQL backend returns at most about this many documents per candidate kept (see run()).
FUZZY_LIMIT_PER_CAP = 10


class SqlSearchBackend(SearchBackend):
    """Search documents stored beside the catalog, in the same database."""

    name = "sql"

    def __init__(self, engine: Engine, *, candidate_cap: int = CANDIDATE_CAP) -> None:
        self.engine = engine
        self.candidate_cap = candidate_cap  # see headwater.search.sql_ranking
        self.vocabulary = Vocabulary()
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

    def run(self, query: SearchQuery) -> SearchPage:
        """Answer a validated query exactly as asked (every word must match)."""
        parsed = parse_query(query.q)
        try:
            with self.read_engine.connect() as conn:
                if self.dialect == "postgresql":
                    # A common word matches tens of thousands of documents, and a GIN scan builds its whole bitmap
                    # before the candidate step's LIMIT applies (48-68 ms of a 54-70 ms query for `amount`). Past
                    # this bound GIN returns a random part of the matches instead: the step keeps an arbitrary
                    # `candidate_cap` of them either way (before: the first in physical order), and totals and
                    # facets past the cap are marked approximate already. For this transaction only.
                    conn.exec_driver_sql(
                        f"SET LOCAL gin_fuzzy_search_limit = {FUZZY_LIMIT_PER_CAP * self.candidate_cap}"
                    )
                if parsed.empty:
                    return self._search_all(conn, query, parsed)
                parsed.corrections = self.vocabulary.corrections(conn, parsed)
                if query.sort == "relevance":
                    return self._search_relevance(conn, query, parsed)
                return self._search_all(conn, query, parsed)
        except SQLAlchemyError as exc:
            raise SearchUnavailable(f"search failed: {describe(exc)}") from exc

    def _search_relevance(self, conn: Connection, query: SearchQuery, parsed: ParsedQuery) -> SearchPage:
        """Rank the bounded candidate set (see :mod:`headwater.search.sql_ranking`), page and count it."""
        candidates = find_candidates(conn, self.dialect, query, parsed, cap=self.candidate_cap)
        ranked = candidates.items
        if query.cursor:
            ranked = candidates.after(decode_cursor(query.cursor, "search:relevance"))
        page = ranked[: query.limit]
        next_cursor = None
        if len(ranked) > query.limit:
            next_cursor = encode_cursor("search:relevance", page[-1].cursor_values())
        rows = self._rows(conn, [c.id for c in page])
        hits = [self._hit(rows[c.id], parsed, query, candidate=c) for c in page if c.id in rows]
        return SearchPage(
            items=hits,
            next_cursor=next_cursor,
            total=len(candidates.items),
            facets=facet_list(candidates.facet_counts()) if query.facets else {},
            corrections=parsed.corrections,
            total_approximate=candidates.capped,
            facets_approximate=candidates.capped and query.facets,
        )

    def _rows(self, conn: Connection, ids: list[int]) -> dict[int, Any]:
        """The wide columns of the page's documents, by id."""
        if not ids:
            return {}
        sql = SqlBuilder(self.dialect)
        statement = f"SELECT {HIT_COLUMNS} FROM search_documents d WHERE d.id IN {sql.bind(ids, expanding=True)}"
        return {row["id"]: row for row in conn.execute(sql.statement(statement, typed=True)).mappings()}

    def _search_all(self, conn: Connection, query: SearchQuery, parsed: ParsedQuery) -> SearchPage:
        """Browse (no words) or sort by name / update time: the page in the requested order; ``total`` and
        the facet counts are exact up to the candidate cap and flagged approximate beyond it."""
        sort = query.effective_sort if not parsed.empty else ("name" if query.sort == "relevance" else query.sort)
        order, key_columns = SORTS[sort]
        sql = SqlBuilder(self.dialect)
        where = sql.filters(query)
        if not parsed.empty:
            where += f" AND {sql.match_condition(parsed, query.types)}"
        keyset = f" AND {sql.keyset(sort, decode_cursor(query.cursor, f'search:{sort}'))}" if query.cursor else ""
        qualified = ", ".join(f"d.{part.strip()}" for part in order.split(","))
        # The page's ids through the sort's index; the wide columns and the match tier for those rows only.
        page = (
            f"SELECT d.id FROM search_documents d WHERE {where}{keyset} "
            f"ORDER BY {qualified} LIMIT {sql.bind(query.limit + 1)}"
        )
        tier = "CAST(NULL AS INTEGER)" if parsed.empty else like_tier(parsed, sql.bind)
        statement = (
            f"SELECT {HIT_COLUMNS}, {tier} AS tier FROM ({page}) p JOIN search_documents d ON d.id = p.id "
            f"ORDER BY {qualified}"
        )
        rows = conn.execute(sql.statement(statement, typed=True)).mappings().all()
        next_cursor = None
        if len(rows) > query.limit:
            rows = rows[: query.limit]
            last = rows[-1]
            values = [last[c].isoformat() if isinstance(last[c], dt.datetime) else last[c] for c in key_columns]
            next_cursor = encode_cursor(f"search:{sort}", values)
        hits = [self._hit(row, parsed, query) for row in rows]
        total, counts = self._counts(conn, sql, where, facets=query.facets)
        approximate = total > self.candidate_cap
        return SearchPage(
            items=hits,
            next_cursor=next_cursor,
            total=min(total, self.candidate_cap),
            facets=facet_list(counts) if query.facets else {},
            corrections=parsed.corrections,
            total_approximate=approximate,
            facets_approximate=approximate and query.facets,
        )

    def _counts(
        self, conn: Connection, sql: SqlBuilder, where: str, *, facets: bool
    ) -> tuple[int, dict[str, dict[str, int]]]:
        """How many documents meet ``where`` (counted up to the cap + 1) and, with ``facets``, the counts
        per facet value over those documents."""
        statement = (
            f"WITH hits AS MATERIALIZED (SELECT d.id, d.source, d.kind, d.namespace, d.format "
            f"FROM search_documents d WHERE {where} LIMIT {sql.bind(self.candidate_cap + 1)}) "
            "SELECT 'total' AS facet, '' AS value, count(*) AS n FROM hits"
        )
        if facets:
            # SQLite without statistics would scan every facet row and probe the hits: CROSS JOIN fixes the order.
            join = "CROSS JOIN" if self.dialect == "sqlite" else "JOIN"
            statement += (
                " UNION ALL SELECT 'source', source, count(*) FROM hits GROUP BY source "
                "UNION ALL SELECT 'kind', kind, count(*) FROM hits GROUP BY kind "
                "UNION ALL SELECT 'namespace', namespace, count(*) FROM hits GROUP BY namespace "
                "UNION ALL SELECT 'format', format, count(*) FROM hits WHERE format IS NOT NULL GROUP BY format "
                f"UNION ALL SELECT sf.facet, sf.value, count(*) FROM hits {join} search_facets sf "
                "ON sf.document_id = hits.id GROUP BY sf.facet, sf.value"
            )
        counts: dict[str, dict[str, int]] = {}
        for facet, value, n in conn.execute(sql.statement(statement)).all():
            counts.setdefault(facet, {})[value] = int(n)
        return counts.pop("total", {}).get("", 0), counts

    def _hit(
        self, row: Any, parsed: ParsedQuery, query: SearchQuery, *, candidate: Candidate | None = None
    ) -> SearchHit:
        tags = json_list(row["tags"])
        scored = not parsed.empty
        # Sorted by name or time, a hit has a tier but no score (as Elasticsearch has no _score then).
        tier = candidate.tier if candidate else row["tier"] if scored else None
        score = (candidate.score or 0.0) if candidate else None
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
            owners=json_list(row["owners"]),
            updated_at=row["updated_at"],
            match=MatchTier(int(tier)) if tier is not None else None,
            score=float(score) if score is not None else None,
        )
        if query.highlight and scored:
            hit.highlights = highlights_for(
                parsed, name=hit.name, description=hit.description, columns=json_list(row["columns"]), tags=tags
            )
        return hit

    def spelling(self, words: Sequence[str]) -> dict[str, list[str]]:
        """Vocabulary words near each word, through the trigram table (:func:`headwater.search.sql_typos.spelling`)."""
        try:
            with self.read_engine.connect() as conn:
                return spelling(conn, list(words))
        except SQLAlchemyError as exc:
            raise SearchUnavailable(f"spelling suggestions failed: {describe(exc)}") from exc

    def suggest(
        self, prefix: str, *, limit: int, types: Sequence[DocumentType], audience: frozenset[str] | None = None
    ) -> list[Suggestion]:
        """Names starting with ``prefix`` (whole name or last segment), then names with a word starting with it."""
        key = prefix.strip().lower()
        sql = SqlBuilder(self.dialect)
        type_list = sql.bind([t.value for t in types], expanding=True)
        like = sql.bind(like_prefix(key))
        visible = f" AND {sql.visible(audience, 'search_documents.dataset_id')}" if audience is not None else ""
        statement = (
            "SELECT name, type, dataset_id, namespace, kind, "
            f"CASE WHEN name_key LIKE {like} ESCAPE '\\' THEN 0 ELSE 1 END AS tier FROM search_documents "
            f"WHERE type IN {type_list} AND (name_key LIKE {like} ESCAPE '\\' OR short_key LIKE {like} ESCAPE '\\')"
            f"{visible} ORDER BY tier, length(name), name_key LIMIT {sql.bind(limit)}"
        )
        try:
            with self.read_engine.connect() as conn:
                rows = list(conn.execute(sql.statement(statement)).all())
                words = split_words(key)
                if len(rows) < limit and words:
                    rows += self._suggest_words(conn, words, limit - len(rows), types, {r[0] for r in rows}, audience)
        except SQLAlchemyError as exc:
            raise SearchUnavailable(f"suggest failed: {describe(exc)}") from exc
        return [
            Suggestion(text=r[0], type=DocumentType(r[1]), dataset_id=r[2], namespace=r[3], kind=r[4]) for r in rows
        ]

    def _suggest_words(
        self,
        conn: Connection,
        words: list[str],
        limit: int,
        types: Sequence[DocumentType],
        seen: set[str],
        audience: frozenset[str] | None = None,
    ) -> list[Any]:
        sql = SqlBuilder(self.dialect)
        parsed = ParsedQuery(raw=" ".join(words), exact=" ".join(words), terms=words)
        type_condition = sql.type_condition(types)
        if audience is not None:
            type_condition += f" AND {sql.visible(audience)}"
        if self.dialect == "sqlite":
            match, table = sql.bind(sql.fts5(parsed, "name_text")), fts_table(types)
            source = (
                f"(SELECT rowid AS fts_id FROM {table} WHERE {table} MATCH "
                f"{match}) m CROSS JOIN search_documents d ON d.id = m.fts_id"
            )
            condition = type_condition
        else:
            source = "search_documents d"
            match = sql.bind(sql.tsquery(parsed))
            condition = f"{type_condition} AND {PG_NAME_VECTOR} @@ to_tsquery('simple', {match})"
        statement = (
            f"SELECT d.name, d.type, d.dataset_id, d.namespace, d.kind, 2 AS tier FROM {source} "
            f"WHERE {condition} ORDER BY length(d.name), d.name_key LIMIT {sql.bind(limit + len(seen))}"
        )
        return [r for r in conn.execute(sql.statement(statement)).all() if r[0] not in seen][:limit]


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
                    for table in ("fts_search_documents", "fts_search_datasets"):
                        conn.execute(text(f"INSERT INTO {table}({table}) VALUES ('optimize')"))
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
