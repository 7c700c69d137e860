"""Capped relevance ranking for the ``sql`` backend: rank a bounded candidate set, not every match.

A one-word query such as ``title`` matches a large share of a big catalog. Scoring and tiering every
match before taking the top 20 is what made such queries slow, so relevance search runs in two steps:

1. **Candidates** (one statement): exact and prefix name matches found through the name indexes
   (``name_key``, ``short_key``), the best :data:`CANDIDATE_CAP` name-only full-text matches, and the
   best :data:`CANDIDATE_CAP` full-text matches overall (bm25 on SQLite, ``ts_rank`` on PostgreSQL).
2. **Ranking** of those candidates alone: filters, the match tier (computed from the stored word columns
   with ``LIKE``, no second full-text pass), closeness, keyset pagination, and facet counts.

When any full-text step hit its cap, ``total`` and the facet counts describe the candidate set rather than
every match, and the page says so (``total_approximate`` / ``facets_approximate``). An exact name match is
always a candidate (it comes from an index), so it still ranks first.
"""

from __future__ import annotations

from typing import Any

from headwater.search.text import ParsedQuery

__all__ = ["CANDIDATE_CAP", "candidate_sql", "excluded_condition", "ranked_tier_sql", "terms_condition"]

# How many full-text matches each candidate step keeps (by the engine's own relevance score).
CANDIDATE_CAP = 1000

_BM25 = "bm25(fts_search_documents, 10.0, 4.0, 1.0, 2.0)"


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


def terms_condition(parsed: ParsedQuery, bind: Any, columns: tuple[str, ...]) -> str:
    """A condition: every query word is among the words of ``columns`` (stored, space-separated)."""
    padded = "(' ' || " + " || ' ' || ".join(f"d.{c}" for c in columns) + " || ' ')"
    return _like_words(parsed, padded, bind)


def excluded_condition(words: list[str], bind: Any) -> str:
    """A condition: none of ``words`` is among the document's words (the full-text step excludes them too)."""
    padded = "(' ' || d.name_text || ' ' || d.description_text || ' ' || d.columns_text || ' ' || d.other_text || ' ')"
    return " AND ".join(f"{padded} NOT LIKE {bind(f'% {word} %')}" for word in words)


def ranked_tier_sql(parsed: ParsedQuery, bind: Any, exact: str, prefix_range: str) -> tuple[str, str]:
    """The tier expression and the phrase (query words in order in the name) expression over ``d``."""
    name = terms_condition(parsed, bind, ("name_text",))
    described = terms_condition(parsed, bind, ("name_text", "description_text"))
    columns = terms_condition(parsed, bind, ("name_text", "description_text", "columns_text"))
    tier = (
        f"CASE WHEN d.name_key = {exact} OR d.short_key = {exact} THEN 0 WHEN {prefix_range} THEN 1 "
        f"WHEN {name} THEN 2 WHEN {described} THEN 3 WHEN {columns} THEN 4 ELSE 5 END"
    )
    if len(parsed.terms) < 2:
        return tier, "1"
    words = [parsed.corrections[t][0] if t in parsed.corrections else t for t in parsed.terms]
    phrase = f"CASE WHEN (' ' || d.name_text || ' ') LIKE {bind('% ' + ' '.join(words) + '%')} THEN 1 ELSE 0 END"
    return tier, phrase


def candidate_sql(
    dialect: str,
    *,
    types: str,
    exact: str,
    prefix_bounds: tuple[str, str],
    like_prefix: str,
    all_match: str,
    name_match: str,
    cap: str,
) -> str:
    """The candidates statement: ``(id, score, capped)`` rows, one per candidate document.

    ``capped`` is 1 on rows of a full-text step that returned ``cap`` rows (there may be more matches).
    """
    low, high = prefix_bounds
    if dialect == "sqlite":
        # SQLite's LIKE cannot use a BINARY index (it ignores case), so prefixes are index ranges.
        prefix_name = f"name_key >= {low} AND name_key < {high}"
        prefix_short = f"short_key >= {low} AND short_key < {high}"
        fts_all = (
            f"SELECT rowid AS id, -{_BM25} AS score FROM fts_search_documents "
            f"WHERE fts_search_documents MATCH {all_match} ORDER BY {_BM25} LIMIT {cap}"
        )
        fts_name = (
            f"SELECT rowid AS id, CAST(NULL AS DOUBLE PRECISION) AS score FROM fts_search_documents "
            f"WHERE fts_search_documents MATCH {name_match} ORDER BY {_BM25} LIMIT {cap}"
        )
    else:
        # text_pattern_ops indexes (migration 0004) serve LIKE 'prefix%'.
        prefix_name = f"name_key LIKE {like_prefix} ESCAPE '\\'"
        prefix_short = f"short_key LIKE {like_prefix} ESCAPE '\\'"
        # Enumerating every match is itself too slow on PostgreSQL (each GIN hit is re-checked on the heap),
        # so the first CANDIDATE_CAP matches are taken unordered and only those are ranked (flagged capped).
        rank = f"ts_rank('{{0.1, 0.2, 0.4, 1.0}}', fts_vector, to_tsquery('simple', {all_match}))::float8"
        fts_all = (
            f"SELECT id, {rank} AS score FROM (SELECT id, fts_vector FROM search_documents "
            f"WHERE fts_vector @@ to_tsquery('simple', {all_match}) LIMIT {cap}) s"
        )
        fts_name = (
            f"SELECT id, CAST(NULL AS DOUBLE PRECISION) AS score FROM search_documents "
            f"WHERE fts_vector @@ to_tsquery('simple', {name_match}) LIMIT {cap}"
        )
    flag = f"CASE WHEN count(*) OVER () >= {cap} THEN 1 ELSE 0 END"
    steps = [
        f"SELECT id, CAST(NULL AS DOUBLE PRECISION) AS score, 0 AS capped FROM search_documents WHERE type IN {types} AND name_key = {exact}",
        f"SELECT id, CAST(NULL AS DOUBLE PRECISION) AS score, 0 AS capped FROM search_documents WHERE short_key = {exact}",
        # The shortest prefix matches first: inside the prefix tier the shorter name ranks higher.
        f"SELECT id, CAST(NULL AS DOUBLE PRECISION) AS score, {flag} AS capped FROM (SELECT id FROM search_documents WHERE type IN {types} "
        f"AND {prefix_name} ORDER BY length(name_key), name_key LIMIT {cap}) p1",
        f"SELECT id, CAST(NULL AS DOUBLE PRECISION) AS score, {flag} AS capped FROM (SELECT id FROM search_documents WHERE {prefix_short} "
        f"ORDER BY length(short_key), short_key LIMIT {cap}) p2",
        f"SELECT id, score, {flag} AS capped FROM ({fts_all}) f1",
        f"SELECT id, score, {flag} AS capped FROM ({fts_name}) f2",
    ]
    union = " UNION ALL ".join(steps)
    return f"SELECT id, max(score) AS score, max(capped) AS capped FROM ({union}) c GROUP BY id"
