"""GraphQL over search: free-text search with facets, and autocomplete. A hit, a facet count and a suggestion are
the search backends' own answer models (:mod:`headwater.search.base`), which REST answers too."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlalchemy.orm import Session

from headwater.auth.actions import Action
from headwater.auth.policy import audience_of
from headwater.catalog.models import DatasetKind
from headwater.graphql.arguments import page_size
from headwater.graphql.catalog import Dataset, datasets_by_id
from headwater.graphql.context import Info, Siblings
from headwater.graphql.derive import from_model, to_graphql
from headwater.graphql.errors import answers_errors, result
from headwater.search.base import (
    FACETS,
    DocumentType,
    FacetCount,
    MatchTier,
    SearchHit,
    SearchPage,
    SearchQuery,
    Suggestion,
    check_prefix,
)

__all__ = ["SearchQueryFields"]

for _enum in (DocumentType, MatchTier):
    strawberry.enum(_enum)


@from_model(FacetCount, name="FacetValue")
class FacetValue:
    """How many hits carry one value of a facet."""


@strawberry.type
class Facet:
    """The counts of one facet (source, kind, namespace, tag, owner, format) over every hit."""

    name: str
    values: list[FacetValue]


@strawberry.type
class Correction:
    """A query word the search widened for typos, and what it also matched."""

    word: str
    suggestions: list[str]


@from_model(SearchHit, name="SearchHitResult", ids=("dataset_id",))
class SearchHitResult:
    """One hit, and the catalog dataset it is of."""

    siblings: strawberry.Private[Siblings[int]]

    @strawberry.field(description="The catalog dataset of the hit (loaded for every hit of the page at once).")
    def dataset(self) -> Dataset | None:
        """The hit's dataset, or null when it was deleted since it was indexed."""
        return self.siblings.load("datasets", int(self.dataset_id), datasets_by_id)  # type: ignore[attr-defined]


@strawberry.type(name="SearchPage")
class SearchResults:
    """A page of hits with facet counts; ``totalApproximate`` when a broad query was ranked over a capped set."""

    items: list[SearchHitResult]
    next_cursor: str | None
    total: int
    total_approximate: bool
    facets: list[Facet]
    facets_approximate: bool
    corrections: list[Correction]
    partial: bool = strawberry.field(description="True when no hit matches every word: these match the most words.")
    dropped: list[str] = strawberry.field(description="The words a partial answer left out.")
    searched: str | None = strawberry.field(description="The words searched instead of the typed ones, if any.")
    suggestions: list[str] = strawberry.field(description="Queries that find something, best first.")

    @classmethod
    def of(cls, session: Session, page: SearchPage) -> SearchResults:
        """The GraphQL page of a search backend's answer."""
        siblings = Siblings(session, [hit.dataset_id for hit in page.items])
        return cls(
            items=[SearchHitResult(**dict(hit), siblings=siblings) for hit in page.items],
            next_cursor=page.next_cursor,
            total=page.total,
            total_approximate=page.total_approximate,
            facets=[Facet(name=name, values=to_graphql(counts)) for name, counts in page.facets.items()],
            facets_approximate=page.facets_approximate,
            corrections=[Correction(word=w, suggestions=list(s)) for w, s in page.corrections.items()],
            partial=page.partial,
            dropped=list(page.dropped),
            searched=page.searched,
            suggestions=list(page.suggestions),
        )


@from_model(Suggestion, name="Suggestion", ids=("dataset_id",))
class SuggestionType:
    """One autocomplete answer."""


@strawberry.type
class Suggestions:
    """Autocomplete answers, best first."""

    items: list[SuggestionType]


SearchResult: Any = result("SearchResult", SearchResults)
SuggestResult: Any = result("SuggestResult", Suggestions)


@strawberry.input(description="Search filters: OR within one, AND across them.")
class SearchFilter:
    source: list[str] | None = None
    kind: list[DatasetKind] | None = None
    namespace: list[str] | None = None
    tag: list[str] | None = None
    owner: list[str] | None = None
    format: list[str] | None = None


@strawberry.type
class SearchQueryFields:
    """What tools search."""

    @strawberry.field(
        description="Free-text search over datasets and columns, with filters and facet counts. The query text "
        'takes tag:pii owner:alice kind:topic source:x namespace:y format:avro "exact phrase" -word.'
    )
    @answers_errors(Action.SEARCH_READ)
    def search(
        self,
        info: Info,
        query: str | None = None,
        types: list[DocumentType] | None = None,
        filter: SearchFilter | None = None,
        sort: str = "relevance",
        first: int = 20,
        after: str | None = None,
        facets: bool = True,
        highlight: bool = True,
    ) -> SearchResult:
        given = filter or SearchFilter()
        search_query = SearchQuery.of(
            q=query,
            types=types,
            filters={name: getattr(given, name) for name in FACETS},
            sort=sort,
            cursor=after,
            limit=first,
            facets=facets,
            highlight=highlight,
            audience=audience_of(info.context.principal),
        )
        return SearchResults.of(info.context.session, info.context.search_backend.search(search_query))

    @strawberry.field(description="Names completing what has been typed so far.")
    @answers_errors(Action.SEARCH_READ)
    def suggest(
        self, info: Info, prefix: str, types: list[DocumentType] | None = None, first: int = 10
    ) -> SuggestResult:
        found = info.context.search_backend.suggest(
            check_prefix(prefix),
            limit=page_size(first, 50),
            types=types or [DocumentType.DATASET],
            audience=audience_of(info.context.principal),
        )
        return Suggestions(items=to_graphql(found))
