"""Text handling shared by every search backend: splitting names into words, parsing queries, edit
distance and trigrams for typo tolerance, and highlighting.

Names are split the same way for documents and queries, so ``analytics.title_daily_views``,
``TitleDailyViews`` and ``title-daily-views`` all become the words ``title daily views``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "MARK_END",
    "MARK_START",
    "near_spellings",
    "ParsedQuery",
    "edit_distance",
    "highlight",
    "highlights_for",
    "join_words",
    "parse_query",
    "short_name",
    "similarity",
    "spelling_edits",
    "split_words",
    "trigrams",
]

MARK_START = "<mark>"
MARK_END = "</mark>"
MAX_QUERY_TERMS = 12

_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)
# A lower-to-upper or letter-to-digit change inside a word starts a new word: titleDaily, v2events stay readable.
_CAMEL_RE = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def split_words(text: str | None) -> list[str]:
    """Lower-case words of ``text``: split on punctuation, underscores and camelCase."""
    if not text:
        return []
    words: list[str] = []
    for raw in _WORD_RE.findall(text):
        words.extend(part.lower() for part in _CAMEL_RE.split(raw) if part)
    return words


def join_words(*texts: str | None) -> str:
    """The words of every text, space-separated: the form full-text columns are stored in."""
    return " ".join(word for text in texts for word in split_words(text))


def short_name(name: str) -> str:
    """The last segment of a dotted or slashed name: ``analytics.title_daily_views`` -> ``title_daily_views``."""
    return re.split(r"[./:]", name.rstrip("./:"))[-1] or name


@dataclass
class ParsedQuery:
    """A free-text query as every backend sees it."""

    raw: str
    exact: str  # the whole query, lower-cased and trimmed: compared with names for the exact-match tier
    terms: list[str] = field(default_factory=list)  # words that must match (the last one also as a prefix)
    excluded: list[str] = field(default_factory=list)  # words after a leading '-'
    corrections: dict[str, list[str]] = field(default_factory=dict)  # typo -> words from the index

    @property
    def empty(self) -> bool:
        """True when there is nothing to match (browse mode)."""
        return not self.terms

    @property
    def corrected_exact(self) -> str | None:
        """The whole query with each corrected word replaced by its best correction (``subscriptons`` ->
        ``subscriptions``), compared with names for the exact tier too; None when nothing was corrected."""
        if not self.corrections:
            return None
        corrected = self.exact
        for typo, words in self.corrections.items():
            if words:
                corrected = re.sub(rf"(?<![^\W_]){re.escape(typo)}(?![^\W_])", words[0], corrected)
        return corrected if corrected != self.exact else None

    @property
    def exact_forms(self) -> list[str]:
        """Every text a name must equal for the exact tier: the query, its corrected form, and its words joined
        the way names usually join them (``title daily views`` -> ``title_daily_views``)."""
        forms = [self.exact, self.corrected_exact]
        if len(self.terms) > 1 and not self.excluded:
            forms.append("_".join(self.terms))
            forms.append("_".join(self.corrections[t][0] if self.corrections.get(t) else t for t in self.terms))
        return [form for form in dict.fromkeys(forms) if form]

    def alternatives(self, term: str) -> list[str]:
        """The word itself and the corrections found for it."""
        return [term, *self.corrections.get(term, [])]


def parse_query(raw: str | None) -> ParsedQuery:
    """Parse free text: words (split like names), ``-word`` to exclude; quotes and OR are read as plain words."""
    text = (raw or "").strip()
    terms: list[str] = []
    excluded: list[str] = []
    for chunk in text.split():
        target = excluded if chunk.startswith("-") and len(chunk) > 1 else terms
        for word in split_words(chunk):
            if word not in target:
                target.append(word)
    return ParsedQuery(raw=text, exact=text.lower(), terms=terms[:MAX_QUERY_TERMS], excluded=excluded[:4])


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance with adjacent transpositions, or ``limit + 1`` once it is surely above ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def allowed_typos(term: str) -> int:
    """How many edits a word of this length may carry and still be corrected (Elasticsearch's AUTO)."""
    return 0 if len(term) < 4 else 1 if len(term) < 8 else 2


def spelling_edits(term: str) -> int:
    """How many edits a spelling suggestion may be from a word: one more than typo tolerance allows, none for
    words under four letters or of digits only (``2024`` is no misspelling of ``2025``)."""
    allowed = allowed_typos(term)
    return allowed + 1 if allowed and not term.isdigit() else 0


def near_spellings(term: str, words: Iterable[str]) -> list[str]:
    """Up to three of ``words`` a misspelt ``term`` may have meant, nearest first: within
    :func:`spelling_edits` of the shorter of the two (``chirm`` is two edits from ``crm`` but means ``churn``),
    fewest edits first, then the most trigrams shared (pg_trgm's similarity), then alphabetically."""
    scored = []
    for word in set(words) - {term}:
        limit = spelling_edits(term if len(term) <= len(word) else word)
        distance = edit_distance(term, word, limit)
        if limit and distance <= limit:
            scored.append((distance, -similarity(term, word), word))
    return [word for *_, word in sorted(scored)][:3]


def similarity(a: str, b: str) -> float:
    """The share of trigrams two words have in common, as pg_trgm's ``similarity()`` computes it."""
    ta, tb = trigrams(a), trigrams(b)
    return len(ta & tb) / len(ta | tb) if ta or tb else 0.0


def trigrams(term: str) -> set[str]:
    """Character trigrams of a word padded with spaces, as pg_trgm makes them."""
    padded = f"  {term} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def highlight(text: str | None, words: Iterable[str], prefix: str | None = None) -> str | None:
    """``text`` with every word that matches (or starts with ``prefix``) wrapped in <mark>; None if none does."""
    if not text:
        return None
    wanted = set(words)
    marked = False
    pieces: list[str] = []
    last = 0
    for match in _WORD_RE.finditer(text):
        raw = match.group(0)
        offset = match.start()
        for part in (p for p in _CAMEL_RE.split(raw) if p):
            start = text.index(part, offset)
            offset = start + len(part)
            lowered = part.lower()
            if lowered in wanted or (prefix and lowered.startswith(prefix)):
                pieces.append(_escape(text[last:start]))
                pieces.append(f"{MARK_START}{_escape(part)}{MARK_END}")
                last = offset
                marked = True
    if not marked:
        return None
    pieces.append(_escape(text[last:]))
    return "".join(pieces)


def highlights_for(
    parsed: ParsedQuery, *, name: str, description: str | None, columns: list[str], tags: list[str]
) -> dict[str, list[str]]:
    """What matched, with <mark> around the matching words (the last query word also as a prefix)."""
    words = {w for term in parsed.terms for w in parsed.alternatives(term)}
    prefix = parsed.terms[-1] if parsed.terms else None
    found: dict[str, list[str]] = {}
    needles = [*words, prefix] if prefix else list(words)
    for label, values in (("name", [name]), ("description", [description]), ("columns", columns), ("tags", tags)):
        # A cheap substring test first: most of a wide table's column names match nothing.
        candidates = (v for v in values if v and any(n in v.lower() for n in needles))
        marked = [m for m in (highlight(v, words, prefix) for v in candidates) if m]
        if marked:
            found[label] = marked[:5]
    return found


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
