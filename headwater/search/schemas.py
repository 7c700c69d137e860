"""Pydantic response models of the search API (a hit, a facet count and a suggestion are defined once, in
:mod:`headwater.search.base`; these are their REST names)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from headwater.search.base import FacetCount, SearchHit, Suggestion

__all__ = ["FacetCountOut", "SearchHitOut", "SearchResponse", "SearchStatusOut", "SuggestResponse", "SuggestionOut"]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class SearchHitOut(SearchHit):
    """One hit: a dataset or a column, why it matched (``match``) and what matched (``highlights``)."""


class FacetCountOut(FacetCount):
    """How many hits carry one facet value."""


class SearchResponse(_Out):
    """A page of hits; ``corrections`` lists the typos the query was widened for. When every word together finds
    nothing, the page holds the best partial matches (``partial``, ``dropped``, ``searched``, ``suggestions``);
    when no word finds anything, no hits and the query spelled with the catalog's words in ``suggestions``.

    ``total_approximate`` / ``facets_approximate`` are true when a broad query was ranked over a capped
    candidate set: ``total`` and the facet counts then count that set (a lower bound), not every match.
    """

    items: list[SearchHitOut]
    next_cursor: str | None
    total: int
    facets: dict[str, list[FacetCountOut]]
    corrections: dict[str, list[str]]
    total_approximate: bool = False
    facets_approximate: bool = False
    partial: bool = Field(False, description="True when no hit matches every word: these match the most words.")
    dropped: list[str] = Field(default_factory=list, description="The words a partial answer left out.")
    searched: str | None = Field(None, description="The words searched instead of the typed ones, if any.")
    suggestions: list[str] = Field(default_factory=list, description="Queries that find something, best first.")


class SuggestionOut(Suggestion):
    """One autocomplete answer."""


class SuggestResponse(_Out):
    """Autocomplete answers, best first."""

    items: list[SuggestionOut]


class SearchStatusOut(_Out):
    """Whether the index is in step with the catalog."""

    backend: str
    index: str
    available: bool
    position: int
    latest_event: int
    lag: int
    documents: dict[str, int] | None
    catalog: dict[str, int]
    in_sync: bool
    indexes_columns: bool
    last_success_at: dt.datetime | None
    last_error: str | None
    last_error_at: dt.datetime | None
    lease_owner: str | None
