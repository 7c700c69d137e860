"""Typo tolerance for the ``sql`` backend: words of a query that no indexed name, column or tag contains
are corrected to near words of the vocabulary (``search_terms``), found through its trigram table
(``search_term_trigrams``) and confirmed with a Damerau-Levenshtein check. :func:`spelling` finds the same way,
with one edit more, the words a zero-hit query may have meant (see :mod:`headwater.search.fallback`).

Works the same on SQLite and PostgreSQL without extensions (``pg_trgm`` is not assumed to be installed).
:class:`Vocabulary` remembers answers so most queries cost no vocabulary round trip: a known word stays
known (words are only ever added), a correction is remembered for :data:`CORRECTION_TTL` seconds (a word
indexed meanwhile may make a "typo" a real word).
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import Connection, select, text

from headwater.search.models import SearchTerm, SearchTermTrigram
from headwater.search.sql_query import like_prefix
from headwater.search.text import (
    ParsedQuery,
    allowed_typos,
    edit_distance,
    near_spellings,
    spelling_edits,
    trigrams,
)

__all__ = ["CORRECTION_TTL", "Vocabulary", "spelling"]

CORRECTION_TTL = 60.0
# How many vocabulary words sharing the most trigrams with a typo are checked by edit distance.
_NEAREST = 50
_REMEMBERED = 50_000


class Vocabulary:
    """Corrects query words against ``search_terms``, remembering the answers (bounded, thread-safe)."""

    def __init__(self, *, ttl: float = CORRECTION_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._known: set[str] = set()  # words in the vocabulary
        self._prefixes: set[str] = set()  # prefixes of words in it (the last word may be half typed)
        self._corrected: dict[str, tuple[float, list[str]]] = {}

    def corrections(self, conn: Connection, parsed: ParsedQuery) -> dict[str, list[str]]:
        """Up to three vocabulary words for each query word that looks like a typo."""
        now = time.monotonic()
        found: dict[str, list[str]] = {}
        unsure: list[str] = []
        last = parsed.terms[-1]
        for term in (t for t in parsed.terms if allowed_typos(t) > 0):
            remembered = self._corrected.get(term)
            if term in self._known or (term == last and term in self._prefixes):
                continue
            if remembered and remembered[0] > now:
                if remembered[1]:
                    found[term] = remembered[1]
                continue
            unsure.append(term)
        if not unsure:
            return found
        known = set(conn.scalars(select(SearchTerm.term).where(SearchTerm.term.in_(unsure))))
        self._remember(self._known, known)
        for term in unsure:
            if term in known:
                continue
            if term == last and conn.scalar(
                select(SearchTerm.term).where(SearchTerm.term.like(like_prefix(term), escape="\\")).limit(1)
            ):
                self._remember(self._prefixes, {term})  # a word being typed, not a typo
                continue
            near = _nearest(conn, term)
            with self._lock:
                if len(self._corrected) >= _REMEMBERED:
                    self._corrected.clear()
                self._corrected[term] = (now + self.ttl, near)
            if near:
                found[term] = near
        return found

    def _remember(self, remembered: set[str], words: set[str]) -> None:
        with self._lock:
            if len(remembered) + len(words) > _REMEMBERED:
                remembered.clear()
            remembered.update(words)


def spelling(conn: Connection, words: list[str]) -> dict[str, list[str]]:
    """Up to three vocabulary words near each word (:func:`headwater.search.text.near_spellings`: one edit beyond
    typo tolerance, ``custmr`` -> ``customer``); every dataset's words, restricted ones too: the caller confirms
    each."""
    found = {word: near_spellings(word, _sharing_trigrams(conn, word)) for word in words if spelling_edits(word)}
    return {word: near for word, near in found.items() if near}


def _sharing_trigrams(conn: Connection, term: str) -> list[str]:
    """The vocabulary words sharing the most trigrams with ``term`` (at most :data:`_NEAREST`)."""
    return list(
        conn.execute(
            select(SearchTermTrigram.term)
            .where(SearchTermTrigram.trigram.in_(sorted(trigrams(term))))
            .group_by(SearchTermTrigram.term)
            .order_by(text("count(*) DESC"), SearchTermTrigram.term)
            .limit(_NEAREST)
        ).scalars()
    )


def _nearest(conn: Connection, term: str) -> list[str]:
    limit = allowed_typos(term)
    scored = sorted((edit_distance(term, word, limit), word) for word in _sharing_trigrams(conn, term))
    return [word for distance, word in scored if distance <= limit][:3]
