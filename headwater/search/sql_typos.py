"""Typo tolerance for the ``sql`` backend: words of a query that no indexed name, column or tag contains
are corrected to near words of the vocabulary (``search_terms``), found through its trigram table
(``search_term_trigrams``) and confirmed with a Damerau-Levenshtein check.

Works the same on SQLite and PostgreSQL without extensions (``pg_trgm`` is not assumed to be installed).
"""

from __future__ import annotations

from sqlalchemy import Connection, select, text

from headwater.search.models import SearchTerm, SearchTermTrigram
from headwater.search.sql_query import like_prefix
from headwater.search.text import ParsedQuery, allowed_typos, edit_distance, trigrams

__all__ = ["corrections"]

# How many vocabulary words sharing the most trigrams with a typo are checked by edit distance.
_NEAREST = 50


def corrections(conn: Connection, parsed: ParsedQuery) -> dict[str, list[str]]:
    """Up to three vocabulary words for each query word that looks like a typo."""
    candidates = [t for t in parsed.terms if allowed_typos(t) > 0]
    if not candidates:
        return {}
    known = set(conn.scalars(select(SearchTerm.term).where(SearchTerm.term.in_(candidates))))
    found: dict[str, list[str]] = {}
    for i, term in enumerate(candidates):
        if term in known:
            continue
        is_last = term == parsed.terms[-1] and i == len(candidates) - 1
        if is_last and conn.scalar(
            select(SearchTerm.term).where(SearchTerm.term.like(like_prefix(term), escape="\\")).limit(1)
        ):
            continue  # a word being typed, not a typo
        shared = conn.execute(
            select(SearchTermTrigram.term)
            .where(SearchTermTrigram.trigram.in_(sorted(trigrams(term))))
            .group_by(SearchTermTrigram.term)
            .order_by(text("count(*) DESC"), SearchTermTrigram.term)
            .limit(_NEAREST)
        ).scalars()
        limit = allowed_typos(term)
        scored = sorted((edit_distance(term, word, limit), word) for word in shared)
        near = [word for distance, word in scored if distance <= limit][:3]
        if near:
            found[term] = near
    return found
