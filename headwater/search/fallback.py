"""What search answers when every word together finds nothing, the same on every backend.

A query like ``who cancelled subscriptions`` or ``sign ups`` holds a word no document has. Rather than zero
hits, :func:`search_with_fallback` answers, in this order:

1. words typed apart that the catalog writes as one (``sign ups`` -> ``signups``): that query's hits, with
   ``searched`` saying what was searched and the joined query among ``suggestions``;
2. the best partial matches: the documents matching the most words (words that match nothing alone are
   dropped first, then the largest subset of the rest that finds something; among equally large subsets the
   one with the longest words, then the most hits), marked ``partial: true`` with
   the ``dropped`` words and the other word subsets that find something as ``suggestions``;
3. spelling suggestions ("did you mean"): a word that finds nothing on its own is replaced by near words of the
   index's vocabulary (names, columns, tags; :meth:`SearchBackend.spelling`, one edit beyond typo tolerance:
   ``custmr`` -> ``customer``). Queries so spelled that find something join a partial answer's ``suggestions``
   after the words it searched; when no word finds anything the page keeps zero hits and they are its only
   ``suggestions``.

Every retry is the reader's own query with other words (filters, phrases and the audience kept), so nothing
a restricted dataset holds can surface through a suggestion. A spelled word is probed as a quoted phrase too, so
it counts only when a document the reader sees holds that very word (typo tolerance could otherwise let a
restricted dataset's word through on a visible near one). The number of retries is bounded.
"""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING

from headwater.search.text import MARK_END, MARK_START, parse_query, spelling_edits, split_words

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
        self.known: dict[tuple[tuple[str, ...], tuple[str, ...]], int] = {}

    def text(self, words: tuple[str, ...]) -> str:
        return " ".join([*words, *(f"-{w}" for w in self.excluded)])

    def hits(self, words: tuple[str, ...], exact: tuple[str, ...] = ()) -> int:
        """Hits of the query with ``words`` instead of its own, each of ``exact`` also as a quoted phrase."""
        key = (words, exact)
        if key in self.known:
            return self.known[key]
        if self.tries >= MAX_RETRIES:
            return 0
        self.tries += 1
        probe = self.query.with_text(
            self.text(words),
            limit=1,
            cursor=None,
            facets=False,
            highlight=False,
            phrases=list(dict.fromkeys([*self.query.phrases, *exact])),
        )
        found = self.backend.run(probe).total
        self.known[key] = found
        return found


def search_with_fallback(backend: SearchBackend, query: SearchQuery) -> SearchPage:
    """The query's own answer; when it finds nothing, a joined-words or best partial answer, or spelling
    suggestions (module docstring)."""
    page = backend.run(query)
    if page.total == 0 and query.q:
        parsed = parse_query(query.q)
        if parsed.terms:
            page = _fallback(backend, query, page, tuple(parsed.terms[:_MAX_WORDS]), parsed.excluded)
    if query.audience is not None:
        page.corrections = _seen_corrections(page)
    return page


def _fallback(
    backend: SearchBackend, query: SearchQuery, empty: SearchPage, terms: tuple[str, ...], excluded: list[str]
) -> SearchPage:
    prober = _Prober(backend, query, excluded)
    joined = [(*terms[:i], terms[i] + terms[i + 1], *terms[i + 2 :]) for i in range(len(terms) - 1)]
    found = [words for words in joined if prober.hits(words)]
    if found:
        page = backend.run(query.with_text(prober.text(found[0])))
        page.searched = prober.text(found[0])
        page.suggestions = [prober.text(words) for words in found][:_MAX_SUGGESTIONS]
        return page
    # A lone word found nothing already (the query itself); of several, those finding nothing alone are dead.
    useful = tuple(t for t in terms if prober.hits((t,))) if len(terms) > 1 else ()
    subsets: list[tuple[str, ...]] = []
    for size in range(min(len(useful), len(terms) - 1), 0, -1):
        subsets = [words for words in combinations(useful, size) if prober.hits(words)]
        if subsets:
            break
    dead = [t for t in terms if t not in useful]
    spelled = [prober.text(words) for words in _spelled(backend, prober, terms, dead, alone=not subsets)]
    if not subsets:
        empty.suggestions = spelled
        return empty
    # Longer words say more than short ones ("who", "the" match much and mean little); then more hits.
    best = max(subsets, key=lambda words: (sum(map(len, words)), prober.hits(words), -subsets.index(words)))
    page = backend.run(query.with_text(prober.text(best)))
    page.partial = True
    page.searched = prober.text(best)
    page.dropped = [t for t in terms if t not in best]
    others = [prober.text(words) for words in subsets if words != best]
    page.suggestions = list(dict.fromkeys([page.searched, *spelled, *others]))[:_MAX_SUGGESTIONS]
    return page


def _spelled(
    backend: SearchBackend, prober: _Prober, terms: tuple[str, ...], dead: list[str], *, alone: bool
) -> list[tuple[str, ...]]:
    """The query with each dead word replaced by a near vocabulary word, in the ways that find something as the
    reader: every dead word by its nearest first, then one by its next nearest; when none does and ``alone`` (no
    typed word finds anything), each near word on its own."""
    near = backend.spelling([t for t in dead if spelling_edits(t)])
    if not near:
        return []
    # A dead word without near words is left out: with it, nothing could be found.
    slots = [near.get(t, []) if t in dead else [t] for t in terms]
    slots = [options for options in slots if options]
    best = tuple(options[0] for options in slots)
    candidates = [best, *(best[:i] + (alt,) + best[i + 1 :] for i, options in enumerate(slots) for alt in options[1:])]
    spelled = {word for options in near.values() for word in options}
    found = _probed(prober, candidates, spelled)
    if not found and alone and len(best) > 1:
        found = _probed(prober, [(word,) for options in slots for word in options], spelled)
    return found


def _probed(prober: _Prober, candidates: list[tuple[str, ...]], spelled: set[str]) -> list[tuple[str, ...]]:
    """The candidates that find something as the reader, each spelled word also as an exact phrase."""
    found: list[tuple[str, ...]] = []
    for words in dict.fromkeys(tuple(dict.fromkeys(c)) for c in candidates):
        exact = tuple(w for w in words if w in spelled)
        if exact and prober.hits(words, exact):
            found.append(words)
            if len(found) == _MAX_SUGGESTIONS:
                break
    return found


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
