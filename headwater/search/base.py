"""The search backend interface and the document model every backend indexes.

A backend stores :class:`SearchDocument` objects and answers :class:`SearchQuery` objects with a
:class:`SearchPage`. Writes are per dataset: :meth:`SearchBackend.replace` swaps every document of the
given datasets (the dataset and its columns) for new ones, so replaying a change is harmless. Ranking is
the same contract on every backend, in tiers:

0. exact name: the query (or its typo-corrected form, or its words joined by ``_``) is the dataset's full name
   or its last segment;
1. name prefix: the full name or its last segment starts with the query;
2. every query word is among the name's words (``analytics.title_daily_views`` -> analytics/title/daily/views);
3. ... among the name and descriptions;
4. ... among the name, descriptions and columns;
5. anything else that matched (tags, owners, namespace, source, format).

Inside a tier every backend orders hits the same way: by name, then by dataset id (then by document), so the
first hit never depends on the database or the engine. A typo corrected to a dataset's name earns the exact
tier. The typed syntax (``tag:pii "a phrase" -word``) is :mod:`headwater.search.query_syntax`; what happens
when all words together find nothing is :mod:`headwater.search.fallback`.
Why two backends, the sql one by default, with the figures: docs/adr/0005-sql-vs-elasticsearch-search.md.
"""

from __future__ import annotations

import datetime as dt
import enum
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from headwater.errors import HeadwaterError, InvalidInput
from headwater.search.text import join_words, short_name

__all__ = [
    "FACETS",
    "DocumentType",
    "FacetCount",
    "MatchTier",
    "SearchBackend",
    "SearchDocument",
    "SearchHit",
    "SearchPage",
    "SearchQuery",
    "SearchUnavailable",
    "Suggestion",
]

# Facets every backend counts and filters on; tag and owner are multi-valued.
FACETS = ("source", "kind", "namespace", "tag", "owner", "format")
SORTS = ("relevance", "name", "-name", "updated_at", "-updated_at")


class SearchUnavailable(HeadwaterError):
    """The search backend cannot be reached; the catalog itself is unaffected."""

    status_code = 503
    code = "search_unavailable"


class DocumentType(enum.StrEnum):
    """What a search document describes."""

    DATASET = "dataset"
    COLUMN = "column"


class MatchTier(enum.IntEnum):
    """Why a hit matched, best first (see the module docstring)."""

    EXACT = 0
    PREFIX = 1
    NAME = 2
    DESCRIPTION = 3
    COLUMNS = 4
    OTHER = 5


@dataclass
class ColumnEntry:
    """One field of a dataset as its dataset document carries it."""

    path: str
    description: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class SearchDocument:
    """One searchable thing: a dataset, or one column of a dataset."""

    key: str  # "dataset:<id>" or "column:<field row id>"
    type: DocumentType
    dataset_id: int
    name: str  # the dataset's name, or the column's dotted path
    dataset_name: str
    namespace: str
    source: str
    kind: str
    updated_at: dt.datetime
    format: str | None = None
    description: str | None = None  # what people wrote, else what the source says
    source_description: str | None = None
    tags: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    columns: list[ColumnEntry] = field(default_factory=list)  # dataset documents only
    field_type: str | None = None  # column documents only
    # Filled by the lineage and jobs domains once they exist (see documents.ENRICHERS); 0 until then.
    lineage_degree: int = 0
    job_usage: int = 0
    # Who may find a restricted dataset (and its columns): its audience (catalog.restrictions); empty: anyone.
    audience: list[str] = field(default_factory=list)
    # The dataset's other names (``namespace/name``: a storage path filed under its table), found as its own.
    aliases: list[str] = field(default_factory=list)

    @property
    def short_key(self) -> str:
        """The last segment of the name, lower-cased (exact and prefix tiers compare with it too)."""
        return short_name(self.name).lower()

    @property
    def name_text(self) -> str:
        """The words of the name (and, for a column, of its dataset's short name after them)."""
        return join_words(self.name)

    @property
    def description_text(self) -> str:
        """The words of both descriptions."""
        own = self.description
        source = self.source_description if self.source_description != own else None
        return join_words(own, source)

    @property
    def columns_text(self) -> str:
        """The words of field paths, field descriptions and field tags (or, for a column, its dataset's name)."""
        if self.type is DocumentType.COLUMN:
            return join_words(self.dataset_name, self.field_type)
        return " ".join(join_words(c.path, c.description, " ".join(c.tags)) for c in self.columns)

    @property
    def other_text(self) -> str:
        """The words of tags, owners, namespace, source, kind, format and the dataset's other names."""
        return join_words(
            " ".join(self.tags),
            " ".join(self.owners),
            self.namespace,
            self.source,
            self.kind,
            self.format,
            " ".join(self.aliases),
        )

    def facet_values(self) -> dict[str, list[str]]:
        """The value(s) of every facet."""
        return {
            "source": [self.source],
            "kind": [self.kind],
            "namespace": [self.namespace],
            "format": [self.format] if self.format else [],
            "tag": sorted(set(self.tags)),
            "owner": sorted(set(self.owners)),
        }


@dataclass
class SearchQuery:
    """A search request, already validated by :meth:`validate`."""

    q: str | None = None
    types: list[DocumentType] = field(default_factory=lambda: [DocumentType.DATASET])
    filters: dict[str, list[str]] = field(default_factory=dict)  # facet -> values (OR within, AND across)
    sort: str = "relevance"
    cursor: str | None = None
    limit: int = 20
    facets: bool = True
    highlight: bool = True
    # The reader's audience (auth.policy.audience_of): restricted datasets outside it are filtered out in the
    # query itself, so pages stay full and counts and facets never count them. None: the reader sees all.
    audience: frozenset[str] | None = None
    # Quoted phrases of the typed query (query_syntax): each must appear, words in order, in one field.
    phrases: list[str] = field(default_factory=list)
    _syntax_applied: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def of(
        cls,
        *,
        q: str | None,
        types: Sequence[DocumentType] | None,
        filters: Mapping[str, Sequence[str] | None],
        sort: str = "relevance",
        cursor: str | None = None,
        limit: int = 20,
        facets: bool = True,
        highlight: bool = True,
        audience: frozenset[str] | None = None,
    ) -> SearchQuery:
        """A validated query from what an API received: types default to datasets, empty filters are dropped and
        enum values (a kind) taken as their strings."""
        return cls(
            q=q,
            types=list(dict.fromkeys(types or [DocumentType.DATASET])),
            filters={name: [str(v) for v in values] for name, values in filters.items() if values},
            sort=sort,
            cursor=cursor,
            limit=limit,
            facets=facets,
            highlight=highlight,
            audience=audience,
        ).validate()

    def validate(self) -> SearchQuery:
        """Raise InvalidInput naming the field and value at fault."""
        if self.q is not None and len(self.q) > 512:
            raise InvalidInput(f"q is {len(self.q)} characters long; at most 512 are allowed", detail={"field": "q"})
        if self.q is not None and "\x00" in self.q:
            raise InvalidInput("q holds a NUL character (\\u0000); remove it", detail={"field": "q"})
        self._apply_syntax()
        if self.sort not in SORTS:
            raise InvalidInput(
                f"sort {self.sort!r} is not supported; use one of {', '.join(SORTS)}", detail={"field": "sort"}
            )
        if not 1 <= self.limit <= 100:
            raise InvalidInput(f"limit must be between 1 and 100, got {self.limit}", detail={"field": "limit"})
        for facet, values in self.filters.items():
            if facet not in FACETS:
                raise InvalidInput(
                    f"{facet!r} is not a filter; use one of {', '.join(FACETS)}", detail={"field": facet}
                )
            if len(values) > 20 or any(not v or len(v) > 1024 or "\x00" in v for v in values):
                raise InvalidInput(
                    f"filter {facet} has an empty, too long (over 1024), NUL-holding or too many (over 20) values",
                    detail={"field": facet},
                )
        if not self.types:
            raise InvalidInput("type needs at least one of dataset, column", detail={"field": "type"})
        return self

    def _apply_syntax(self) -> None:
        """Read ``tag:pii owner:x "phrase" -word`` out of ``q`` once: facet keys join the filters, ``q`` keeps
        the free words and ``-word`` s (see :mod:`headwater.search.query_syntax`)."""
        if self._syntax_applied or not self.q:
            return
        from headwater.search.query_syntax import parse_syntax

        syntax = parse_syntax(self.q)
        self._syntax_applied = True
        self.q = syntax.text or None
        self.phrases = list(dict.fromkeys([*self.phrases, *syntax.phrases]))
        for facet, values in syntax.filters.items():
            merged = self.filters.setdefault(facet, [])
            merged.extend(v for v in values if v not in merged)

    def with_text(self, q: str | None, **changes: Any) -> SearchQuery:
        """This query (filters, phrases, audience) with other free text: for the partial-match retries."""
        import dataclasses

        return dataclasses.replace(self, q=q, filters=dict(self.filters), _syntax_applied=True, **changes)

    @property
    def effective_sort(self) -> str:
        """Relevance needs words to rank by; without a query the order is by name."""
        if self.sort == "relevance" and not (self.q or "").strip():
            return "name"
        return self.sort


class _Answer(BaseModel):
    # Defaults (a hit's match, score, highlights) are filled in when a backend leaves them out, so every answer
    # carries them: required in the response schema, as REST has always documented.
    model_config = ConfigDict(from_attributes=True, json_schema_serialization_defaults_required=True)


class SearchHit(_Answer):
    """One hit: a dataset or a column, why it matched (``match``) and what matched (``highlights``).

    The one definition of a hit: backends build it, REST answers it (``SearchHitOut``), GraphQL derives its
    ``SearchHitResult`` from it.
    """

    key: str
    type: DocumentType
    dataset_id: int
    name: str
    dataset_name: str
    namespace: str
    source: str
    kind: str
    format: str | None
    description: str | None
    tags: list[str]
    owners: list[str]
    updated_at: dt.datetime
    match: MatchTier | None = None
    score: float | None = None
    highlights: dict[str, list[str]] = Field(default_factory=dict)


class FacetCount(_Answer):
    """How many hits carry one facet value."""

    value: str
    count: int


@dataclass
class SearchPage:
    """One page of hits, the cursor to the next page, the total and facet counts over every hit."""

    items: list[SearchHit]
    next_cursor: str | None
    total: int
    facets: dict[str, list[FacetCount]] = field(default_factory=dict)
    corrections: dict[str, list[str]] = field(default_factory=dict)
    # True when ``total`` / the facet counts cover a capped candidate set, not every match (sql backend).
    total_approximate: bool = False
    facets_approximate: bool = False
    # When every word together found nothing (fallback): the hits match only some words (``partial``), the
    # words left out (``dropped``), the words searched instead (``searched``) and queries worth trying.
    partial: bool = False
    dropped: list[str] = field(default_factory=list)
    searched: str | None = None
    suggestions: list[str] = field(default_factory=list)


class Suggestion(_Answer):
    """One autocomplete answer."""

    text: str
    type: DocumentType
    dataset_id: int
    namespace: str
    kind: str


FACET_LIMIT = 20


class SearchBackend(ABC):
    """A place search documents live. Implementations: ``sql`` (default) and ``elasticsearch``."""

    name: str = "abstract"
    # At most this many searches run at once in a process (None: no bound); see :meth:`limit_concurrency`.
    _slots: threading.BoundedSemaphore | None = None

    def limit_concurrency(self, searches: int) -> None:
        """Run at most ``searches`` searches at once (0: no bound); later ones wait their turn, in arrival order.
        Why: docs/adr/0014-search-admission.md."""
        self._slots = threading.BoundedSemaphore(searches) if searches > 0 else None

    @property
    def position_key(self) -> str:
        """The name the indexer stores its outbox position under (one per index)."""
        return self.name

    @abstractmethod
    def ensure_ready(self) -> None:
        """Create whatever the backend needs (templates, indices, aliases); raise SearchUnavailable if down."""

    @abstractmethod
    def replace(self, dataset_ids: Sequence[int], documents: Sequence[SearchDocument]) -> None:
        """Make the documents of ``dataset_ids`` exactly ``documents`` (idempotent)."""

    def search(self, query: SearchQuery) -> SearchPage:
        """Answer a validated query; when all its words together find nothing, the best partial matches."""
        from headwater.search.fallback import search_with_fallback

        slots = self._slots
        if slots is None:
            return search_with_fallback(self, query)
        with slots:
            return search_with_fallback(self, query)

    @abstractmethod
    def run(self, query: SearchQuery) -> SearchPage:
        """Answer a validated query exactly as asked (every word must match)."""

    def spelling(self, words: Sequence[str]) -> dict[str, list[str]]:
        """Up to three words of the index's vocabulary (names, columns, tags) near each of ``words``, nearest
        first, the way a spelling suggester finds them. They come from every dataset, restricted ones too:
        :mod:`headwater.search.fallback` offers one only once a probe as the reader finds it. None by default."""
        return {}

    @abstractmethod
    def suggest(
        self, prefix: str, *, limit: int, types: Sequence[DocumentType], audience: frozenset[str] | None = None
    ) -> list[Suggestion]:
        """Names that complete ``prefix``, best first, of datasets ``audience`` may see (None: all)."""

    @abstractmethod
    def count_documents(self) -> dict[str, int]:
        """How many documents of each type the index holds."""

    @abstractmethod
    def begin_rebuild(self) -> Rebuild:
        """Start a rebuild from scratch that readers do not see until :meth:`Rebuild.finish`."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release connections."""


class Rebuild(ABC):
    """A full rebuild in progress: documents are added in batches, then swapped in at once."""

    @abstractmethod
    def add(self, dataset_ids: Sequence[int], documents: Sequence[SearchDocument]) -> None:
        """Add the documents of one batch of datasets."""

    @abstractmethod
    def finish(self) -> None:
        """Make the rebuilt index the one searches read (zero downtime)."""

    @abstractmethod
    def abort(self) -> None:
        """Throw the partial rebuild away; the live index is untouched."""


def check_prefix(prefix: str) -> str:
    """An autocomplete prefix, or InvalidInput naming what is wrong with it."""
    if not prefix.strip() or len(prefix) > 256:
        raise InvalidInput("prefix must hold 1 to 256 characters, not only spaces", detail={"field": "prefix"})
    if "\x00" in prefix:
        raise InvalidInput("prefix holds a NUL character (\\u0000); remove it", detail={"field": "prefix"})
    return prefix


def facet_list(counts: dict[str, dict[str, int]]) -> dict[str, list[FacetCount]]:
    """Counts per facet value, biggest first, at most FACET_LIMIT values per facet."""
    return {
        facet: [
            FacetCount(value=value, count=n)
            for value, n in sorted(counts.get(facet, {}).items(), key=lambda kv: (-kv[1], kv[0]))[:FACET_LIMIT]
        ]
        for facet in FACETS
    }


def describe(obj: Any) -> str:
    """A short description of an exception for logs and status."""
    return f"{type(obj).__name__}: {obj}"[:500]
