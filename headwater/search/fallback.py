"""What search answers when every word together finds nothing, the same on every backend.

A query like ``who cancelled subscriptions`` or ``sign ups`` holds a word no document has. Rather than zero
hits, :func:`search_with_fallback` answers, in this order:

1. words typed apart that the catalog writes as one (``sign ups`` -> ``signups``): that query's hits, with
   ``searched`` saying what was searched and the joined query among ``suggestions``;
2. the best partial matches: the documents matching the most words (words that match nothing alone are
   dropped first, then the largest subset of the rest that finds something; among equally large subsets the
   one with the longest words, then the most hits), marked ``partial: true`` with
   the ``dropped`` words and the other word subsets that find something as ``suggestions``.

Every retry is the reader's own query with other words (filters, phrases and the audience kept), so nothing
a restricted dataset holds can surface through a suggestion. The number of retries is bounded.
"""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING

from headwater.search.text import MARK_END, MARK_START, parse_query, split_words

if TYPE_CHECKING:
    from headwater.search.base import SearchBackend, SearchPage, SearchQuery

__all__ = ["MAX_RETRIES", "search_with_fallback"]

# At most this many extra searches for one zero-hit query (each a one-hit probe without facets).
MAX_RETRIES = 24
_MAX_WORDS = 8
_MAX_SUGGESTIONS = 4


class _Prober:
    """Counts the hits of the query with other words, at most :data:`MAX_RETRIES` times."""

    def __init__(self, backend: SearchBackend, query: SearchQuery, excluded: list[str]) -> None:
        self.backend = backend
        self.query = query
        self.excluded = excluded
        self.tries = 0
        self.known: dict[tuple[str, ...], int] = {}

    def text(self, words: tuple[str, ...]) -> str:
        return " ".join([*words, *(f"-{w}" for w in self.excluded)])

    def hits(self, words: tuple[str, ...]) -> int:
        if words in self.known:
            return self.known[words]
        if self.tries >= MAX_RETRIES:
            return 0
        self.tries += 1
        probe = self.query.with_text(self.text(words), limit=1, cursor=None, facets=False, highlight=False)
        found = self.backend.run(probe).total
        self.known[words] = found
        return found


def search_with_fallback(backend: SearchBackend, query: SearchQuery) -> SearchPage:
    """The query's own answer; when it finds nothing, a joined-words or best partial answer (module docstring)."""
    page = backend.run(query)
    if page.total == 0 and query.q:
        parsed = parse_query(query.q)
        if parsed.terms:
            page = _fallback(backend, query, tuple(parsed.terms[:_MAX_WORDS]), parsed.excluded) or page
    if query.audience is not None:
        page.corrections = _seen_corrections(page)
    return page


def _fallback(
    backend: SearchBackend, query: SearchQuery, terms: tuple[str, ...], excluded: list[str]
) -> SearchPage | None:
    prober = _Prober(backend, query, excluded)
    joined = [(*terms[:i], terms[i] + terms[i + 1], *terms[i + 2 :]) for i in range(len(terms) - 1)]
    found = [words for words in joined if prober.hits(words)]
    if found:
        page = backend.run(query.with_text(prober.text(found[0])))
        page.searched = prober.text(found[0])
        page.suggestions = [prober.text(words) for words in found][:_MAX_SUGGESTIONS]
        return page
    if len(terms) < 2:
        return None
    useful = tuple(t for t in terms if prober.hits((t,)))
    subsets: list[tuple[str, ...]] = []
    for size in range(min(len(useful), len(terms) - 1), 0, -1):
        subsets = [words for words in combinations(useful, size) if prober.hits(words)]
        if subsets:
            break
    if not subsets:
        return None
    # Longer words say more than short ones ("who", "the" match much and mean little); then more hits.
    best = max(subsets, key=lambda words: (sum(map(len, words)), prober.hits(words), -subsets.index(words)))
    page = backend.run(query.with_text(prober.text(best)))
    page.partial = True
    page.searched = prober.text(best)
    page.dropped = [t for t in terms if t not in best]
    others = [prober.text(words) for words in subsets if words != best]
    page.suggestions = [page.searched, *others][:_MAX_SUGGESTIONS]
    return page


def _seen_corrections(page: SearchPage) -> dict[str, list[str]]:
    """Corrections a restricted reader may see: words found in the hits shown (the vocabulary they come
    from holds every dataset's words, restricted ones too)."""
    if not page.corrections:
        return {}
    seen: set[str] = set()
    for hit in page.items:
        seen.update(split_words(hit.name))
        seen.update(split_words(hit.description))
        seen.update(split_words(" ".join(hit.tags)))
        for marked in hit.highlights.values():
            seen.update(split_words(" ".join(marked).replace(MARK_START, " ").replace(MARK_END, " ")))
    kept = {word: [w for w in options if w in seen] for word, options in page.corrections.items()}
    return {word: options for word, options in kept.items() if options}
