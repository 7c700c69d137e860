"""The query syntax people type into the search box, parsed once for every backend.

``tag:pii owner:alice kind:topic source:x namespace:y format:avro "exact phrase" -word email`` reads as:

* ``key:value`` for a facet (source, kind, namespace, tag, owner, format) becomes that facet's filter, the
  same as the ``tag=`` parameter (values of one facet are OR-ed, facets AND-ed); ``key:"a value"`` quotes a
  value with spaces. An unknown ``key:`` (``kafka://broker:9092``, ``who:me``) is plain words.
* ``"exact phrase"``: those words next to each other, in that order, in one field.
* ``-word`` excludes documents holding the word.
* everything else: words, every one of which must match (see :mod:`headwater.search.base` for ranking).

:func:`parse_syntax` splits the text; :meth:`headwater.search.base.SearchQuery.validate` applies it, so REST,
GraphQL and the UI all hand the backends a query whose ``q`` is plain words and ``-word`` s only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from headwater.search.text import split_words

__all__ = ["SYNTAX_HELP", "FIELD_KEYS", "QuerySyntax", "parse_syntax"]

# Typed keys and the facet each filters on (``type`` is not one: the type is chosen apart).
FIELD_KEYS = {
    "tag": "tag",
    "tags": "tag",
    "owner": "owner",
    "owners": "owner",
    "kind": "kind",
    "source": "source",
    "namespace": "namespace",
    "ns": "namespace",
    "format": "format",
}
SYNTAX_HELP = 'tag:pii  owner:alice  kind:topic  source:x  namespace:y  format:avro  "exact phrase"  -word'
MAX_PHRASES = 4

# One token: an optional '-', an optional 'key:', then a quoted string or a run of non-space characters.
_TOKEN_RE = re.compile(r'(?P<neg>-)?(?:(?P<key>[A-Za-z_]+):)?(?:"(?P<quoted>[^"]*)"?|(?P<bare>\S+))?')


@dataclass
class QuerySyntax:
    """What a typed query says: free words, excluded words, phrases and facet filters."""

    words: list[str] = field(default_factory=list)  # free text chunks, as typed
    excluded: list[str] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)  # each the space-joined words of one quoted phrase
    filters: dict[str, list[str]] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The free text backends parse (words, phrase words and ``-word`` s), without the filters."""
        return " ".join([*self.words, *(f"-{w}" for w in self.excluded)])


def parse_syntax(raw: str | None) -> QuerySyntax:
    """Split a typed query into words, ``-word`` s, quoted phrases and ``key:value`` facet filters."""
    syntax = QuerySyntax()
    text = (raw or "").strip()
    position = 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        match = _TOKEN_RE.match(text, position)
        if match is None or match.end() == position:  # pragma: no cover - the pattern matches any non-space
            position += 1
            continue
        position = max(match.end(), position + 1)
        _take(syntax, match, text[match.start() : match.end()])
    return syntax


def _take(syntax: QuerySyntax, match: re.Match[str], chunk: str) -> None:
    negated, key = bool(match["neg"]), (match["key"] or "").lower()
    quoted, bare = match["quoted"], match["bare"]
    value = quoted if quoted is not None else bare
    facet = FIELD_KEYS.get(key)
    if facet and value and value.strip() and not negated:
        values = syntax.filters.setdefault(facet, [])
        cleaned = value.strip().lower() if facet == "kind" else value.strip()
        if cleaned not in values:
            values.append(cleaned)
        return
    if quoted is not None and not key:
        words = split_words(quoted)
        if negated:
            _add(syntax.excluded, words)
            return
        if len(words) > 1 and len(syntax.phrases) < MAX_PHRASES:
            syntax.phrases.append(" ".join(words))
        _add(syntax.words, [quoted.strip()] if words else [])
        return
    # Plain text, an unknown key or a filter with nothing after it: kept as typed (the exact-name tier
    # compares the whole text with names, so ``analytics.title_daily_views`` must stay one chunk).
    if negated:
        _add(syntax.excluded, split_words(chunk[1:]))
    elif chunk.strip():
        _add(syntax.words, [chunk.strip()])


def _add(target: list[str], items: list[str]) -> None:
    for item in items:
        if item not in target:
            target.append(item)
