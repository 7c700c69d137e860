"""Relevance ranking for the ``sql`` backend: tier by tier, over a bounded candidate set.

A one-word query such as ``title`` matches most of a big catalog; scoring and tiering every match before
taking the top 20 is what made such queries slow (ordering 60,000 FTS5 matches by bm25 alone costs
~70 ms). The tiers of :mod:`headwater.search.base` are instead gathered best tier first, each step
through an index that yields that tier directly and reads at most :data:`CANDIDATE_CAP` documents:

1. **exact** names (``name_key`` / ``short_key`` equality) and **name prefixes** (index ranges, shortest
   names first);
2. **name words**: the name-only full-text index (SQLite: the FTS5 ``name_text`` column; PostgreSQL: the
   GIN index on ``to_tsvector('simple', name_text)`` of migration 0006);
3. **name + description words** (SQLite: FTS5 column filter; PostgreSQL: the GIN index on name and
   description words of migration 0006), only when step 2 found fewer than the cap;
4. **any field**, only when step 3 found fewer than the cap; the column tier is told from the rest by
   ``LIKE`` on the returned rows alone.

Exact means the typed text or, when a word was a typo, the corrected text. Candidates are ordered by tier,
then name, then dataset id (:attr:`Candidate.sort_key`), as every backend orders them; the engine's score
(bm25 / ts_rank) is reported but never orders, since SQLite and PostgreSQL score the same match differently.

Filters are applied inside every step, so a capped step still returns a full set of matching documents.
Each step returns the columns ranking and facet counting need, so the candidates are ranked, paged and
counted in Python, and only the page's rows are read in full afterwards.

When a step hits the cap, later (worse) tiers are not read: the first pages are still exact (they come
from the best tiers), but ``total`` and the facet counts describe the candidates, not every match, and the
page says so (``total_approximate`` / ``facets_approximate``); relevance pages end with the candidates.
Inside the broad "any field" step the cap takes the first matches in index order: ordering every broad
match is exactly the cost avoided here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from headwater.errors import InvalidInput
from headwater.search.base import SearchQuery
from headwater.search.sql_query import (
    PG_DESCRIBED_VECTOR,
    PG_NAME_VECTOR,
    TS_WEIGHTS,
    SqlBuilder,
    bm25,
    fts_table,
    json_list,
    like_prefix,
)
from headwater.search.text import ParsedQuery

__all__ = ["CANDIDATE_CAP", "Candidate", "Candidates", "find_candidates", "like_tier", "terms_condition"]

# How many documents a relevance query ranks at most (``HEADWATER_SEARCH_CANDIDATE_CAP``): the sample
# facets and totals are counted over when a query is broad, and how deep its relevance pages go.
CANDIDATE_CAP = 500

_STEP_COLUMNS = "d.id, d.name_key, d.source, d.kind, d.namespace, d.format, d.tags, d.owners, d.dataset_id"
_SELECTED = ("id", "name_key", "source", "kind", "namespace", "format", "tags", "owners", "dataset_id", "tier", "score")


@dataclass(slots=True)
class Candidate:
    """One candidate document: what ranking and facet counting need."""

    id: int
    name_key: str
    dataset_id: int
    tier: int
    score: float | None  # the engine's (bm25 / ts_rank): reported, never used to order (engines differ)
    # source, kind, namespace, format, then tags and owners as the driver returns JSON (parsed when counted).
    facets: tuple[Any, ...] = ()

    @property
    def sort_key(self) -> tuple[int, str, int, int]:
        """The order every backend shares: tier, then name, then dataset id (then the document)."""
        return (self.tier, self.name_key, self.dataset_id, self.id)

    def cursor_values(self) -> list[Any]:
        """What a cursor after this candidate stores."""
        return list(self.sort_key)


@dataclass
class Candidates:
    """The ranked candidates of a query, and whether a step hit the cap (more matches exist)."""

    items: list[Candidate]
    capped: bool

    def after(self, values: list[Any]) -> list[Candidate]:
        """The candidates after a relevance cursor's position."""
        if len(values) != 4:
            raise InvalidInput("cursor is malformed", detail={"field": "cursor"})
        try:
            if not isinstance(values[1], str):
                raise TypeError(values[1])
            key = (int(values[0]), values[1], int(values[2]), int(values[3]))
        except (TypeError, ValueError) as exc:
            raise InvalidInput("cursor holds a value of the wrong type", detail={"field": "cursor"}) from exc
        return [c for c in self.items if c.sort_key > key]

    def facet_counts(self) -> dict[str, dict[str, int]]:
        """Counts per facet value over every candidate."""
        counts: dict[str, dict[str, int]] = {}
        for i, facet in enumerate(("source", "kind", "namespace", "format")):
            found = Counter(c.facets[i] for c in self.items)
            found.pop(None, None)
            counts[facet] = dict(found)
        for i, facet in ((4, "tag"), (5, "owner")):
            # Most documents share a handful of tag lists: each distinct list is parsed once.
            lists = Counter(_hashable(c.facets[i]) for c in self.items)
            bucket: Counter[str] = Counter()
            for raw, n in lists.items():
                for value in set(json_list(raw if isinstance(raw, str) else list(raw))):
                    bucket[value] += n
            counts[facet] = dict(bucket)
        return counts


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str) or value is None else tuple(value)


def _like_words(parsed: ParsedQuery, column: str, bind: Any) -> str:
    """Every query word (or one of its corrections) among the words of ``column``; the last word as a prefix."""
    groups = []
    for i, term in enumerate(parsed.terms):
        last = i == len(parsed.terms) - 1
        options = []
        for j, word in enumerate(parsed.alternatives(term)):
            pattern = f"% {word}%" if last and j == 0 else f"% {word} %"
            options.append(f"{column} LIKE {bind(pattern)}")
        groups.append("(" + " OR ".join(options) + ")")
    return " AND ".join(groups)


def like_tier(parsed: ParsedQuery, bind: Any) -> str:
    """The match tier of ``d`` from its stored words alone (for a page's rows: no full-text pass)."""
    exact, prefix = bind(parsed.exact_forms, expanding=True), bind(like_prefix(parsed.exact))
    tiers = [
        terms_condition(parsed, bind, columns)
        for columns in (
            ("name_text",),
            ("name_text", "description_text"),
            ("name_text", "description_text", "columns_text"),
        )
    ]
    return (
        f"CASE WHEN d.name_key IN {exact} OR d.short_key IN {exact} THEN 0 "
        f"WHEN d.name_key LIKE {prefix} ESCAPE '\\' OR d.short_key LIKE {prefix} ESCAPE '\\' THEN 1 "
        f"WHEN {tiers[0]} THEN 2 WHEN {tiers[1]} THEN 3 WHEN {tiers[2]} THEN 4 ELSE 5 END"
    )


def terms_condition(parsed: ParsedQuery, bind: Any, columns: tuple[str, ...]) -> str:
    """A condition: every query word is among the words of ``columns`` (stored, space-separated)."""
    padded = "(' ' || " + " || ' ' || ".join(f"d.{c}" for c in columns) + " || ' ')"
    return _like_words(parsed, padded, bind)


class _Steps:
    """The statements of the candidate steps of one query; ``limit`` is a bind placeholder per call."""

    def __init__(self, dialect: str, query: SearchQuery, parsed: ParsedQuery) -> None:
        self.sql = SqlBuilder(dialect)
        self.dialect = dialect
        self.parsed = parsed
        sql = self.sql
        self.fts = fts_table(query.types)
        self.facet_filters = bool(query.filters)
        self.where = sql.filters(query)
        self.where_unindexed = sql.filters(query, type_index=False)
        # A typo corrected to a name (``subscriptons`` -> ``subscriptions``) earns the exact tier too.
        self.exact_keys = sql.bind(parsed.exact_forms, expanding=True)
        if dialect == "sqlite":
            # SQLite's LIKE ignores case and so cannot use a BINARY index: prefixes are index ranges.
            low, high = sql.bind(parsed.exact), sql.bind(parsed.exact + "\U0010ffff")
            self.prefix_name = f"d.name_key >= {low} AND d.name_key < {high}"
            self.prefix_short = f"d.short_key >= {low} AND d.short_key < {high}"
        else:
            like = sql.bind(like_prefix(parsed.exact))  # text_pattern_ops indexes (migration 0004)
            self.prefix_name = f"d.name_key LIKE {like} ESCAPE '\\'"
            self.prefix_short = f"d.short_key LIKE {like} ESCAPE '\\'"
        self.all_query = self.excluded = ""
        if dialect == "postgresql":
            self.all_query = sql.bind(sql.tsquery(parsed))
            if parsed.excluded:
                words = sql.bind(" | ".join(parsed.excluded))
                self.excluded = f" AND NOT d.fts_vector @@ to_tsquery('simple', {words})"

    def _tier(self, otherwise: str) -> str:
        return (
            f"CASE WHEN d.name_key IN {self.exact_keys} OR d.short_key IN {self.exact_keys} THEN 0 "
            f"WHEN {self.prefix_name} OR {self.prefix_short} THEN 1 ELSE {otherwise} END"
        )

    def _columns(self, tier: str, score: str) -> str:
        return f"{_STEP_COLUMNS}, {self._tier(tier)} AS tier, {score} AS score"

    def names(self, limit: str) -> str:
        """Exact names and name prefixes, from the name indexes (shortest prefix matches first)."""
        columns = self._columns("2", "CAST(NULL AS DOUBLE PRECISION)")
        steps = [
            f"SELECT {columns} FROM search_documents d WHERE d.name_key IN {self.exact_keys} AND {self.where}",
            f"SELECT {columns} FROM search_documents d WHERE d.short_key IN {self.exact_keys} "
            f"AND {self.where_unindexed}",
        ]
        # Without statistics SQLite's planner prefers the (type, updated_at) index here: name the right one.
        short_index = " INDEXED BY fts_search_documents_type_short_key" if self.dialect == "sqlite" else ""
        for prefix, key, hint in (
            (self.prefix_name, "d.name_key", ""),
            (self.prefix_short, "d.short_key", short_index),
        ):
            order = f"ORDER BY length({key}), {key} LIMIT {limit}"
            if self.facet_filters:
                steps.append(f"SELECT {columns} FROM search_documents d WHERE {prefix} AND {self.where} {order}")
            else:
                # The shortest prefix matches are chosen from the index alone (type, key); only the chosen
                # rows are read (a common word is the prefix of thousands of names).
                steps.append(
                    f"SELECT {columns} FROM (SELECT d.id FROM search_documents d{hint} WHERE {prefix} "
                    f"AND {self.where} {order}) p JOIN search_documents d ON d.id = p.id"
                )
        # Wrapped so that each step's ORDER BY / LIMIT stays its own inside the UNION ALL.
        return " UNION ALL ".join(f"SELECT {i} AS part, s.* FROM ({step}) s" for i, step in enumerate(steps))

    def words(self, limit: str) -> str:
        """Name words (tier 2 unless exact or prefix)."""
        if self.dialect == "sqlite":
            return self._fts5_step("name_text", "2", limit)
        query = self.sql.bind(self.sql.tsquery(self.parsed, with_excluded=False))
        return self._pg_step(f"{PG_NAME_VECTOR} @@ to_tsquery('simple', {query})", "2", limit)

    def described(self, limit: str) -> str:
        """Name and description words (tier 3 for documents the name steps did not return)."""
        if self.dialect == "sqlite":
            return self._fts5_step("name_text description_text", "3", limit)
        query = self.sql.bind(self.sql.tsquery(self.parsed, with_excluded=False))
        return self._pg_step(f"{PG_DESCRIBED_VECTOR} @@ to_tsquery('simple', {query})", "3", limit)

    def anywhere(self, limit: str) -> str:
        """Any field: tier 4 when every word is among name, description and column words, else 5."""
        columns = terms_condition(self.parsed, self.sql.bind, ("name_text", "description_text", "columns_text"))
        tier = f"CASE WHEN {columns} THEN 4 ELSE 5 END"
        if self.dialect == "sqlite":
            return self._fts5_step(None, tier, limit)
        return self._pg_step(f"d.fts_vector @@ to_tsquery('simple', {self.all_query})", tier, limit)

    def _fts5_step(self, columns: str | None, tier: str, limit: str) -> str:
        match = self.sql.bind(self.sql.fts5(self.parsed, columns))
        # No ORDER BY: FTS5 streams matches in rowid order and stops at the limit, and bm25 is computed for
        # the rows returned only. CROSS JOIN keeps the FTS5 scan outside (else it is probed once per row).
        return (
            f"SELECT {self._columns(tier, '-' + bm25(self.fts))} FROM {self.fts} "
            f"CROSS JOIN search_documents d ON d.id = {self.fts}.rowid "
            f"WHERE {self.fts} MATCH {match} AND {self.where_unindexed} LIMIT {limit}"
        )

    def _pg_step(self, condition: str, tier: str, limit: str) -> str:
        # ts_rank reads the whole stored vector: computed on the step's (at most limit) rows only, outside.
        inner = (
            f"SELECT {self._columns(tier, 'CAST(NULL AS DOUBLE PRECISION)')}, d.fts_vector FROM search_documents d "
            f"WHERE {condition}{self.excluded} AND {self.where} LIMIT {limit}"
        )
        selected = ", ".join(f"r.{c}" for c in _SELECTED if c != "score")
        rank = f"ts_rank({TS_WEIGHTS}, r.fts_vector, to_tsquery('simple', {self.all_query}))::float8"
        return f"SELECT {selected}, {rank} AS score FROM ({inner}) r"


def _merge(found: dict[int, Candidate], rows: Iterable[Any]) -> None:
    """Add a step's rows: the best tier wins; the first step that scored a document gives its score."""
    for row in rows:
        # Columns: id, name_key, source, kind, namespace, format, tags, owners, dataset_id, tier, score.
        known = found.get(row[0])
        if known is None:
            score = None if row[10] is None else float(row[10])
            found[row[0]] = Candidate(row[0], row[1], int(row[8]), int(row[9]), score, tuple(row[2:8]))
            continue
        known.tier = min(known.tier, int(row[9]))
        if known.score is None and row[10] is not None:
            known.score = float(row[10])


def find_candidates(
    conn: Connection, dialect: str, query: SearchQuery, parsed: ParsedQuery, *, cap: int = CANDIDATE_CAP
) -> Candidates:
    """The ranked candidates of a relevance query with words (see the module docstring)."""
    steps = _Steps(dialect, query, parsed)
    found: dict[int, Candidate] = {}
    capped = False
    for step in (steps.names, steps.words, steps.described, steps.anywhere):
        limit = cap - len(found)
        if limit <= 0:
            capped = True  # worse tiers were not read: there may be more matches
            break
        rows: list[Any] = list(conn.execute(steps.sql.statement(step(steps.sql.bind(limit)))).all())
        parts = Counter(row[0] for row in rows) if step == steps.names else Counter({0: len(rows)})
        if step == steps.names:
            rows = [row[1:] for row in rows]  # the leading column says which part of the step
        _merge(found, rows)
        # A step (or one part of the name step) that returned its limit may have left matches unread.
        if any(n >= limit for n in parts.values()):
            capped = True
            break
    return Candidates(sorted(found.values(), key=lambda c: c.sort_key), capped)
