"""Search routes: ``GET /api/v1/search``, ``/search/suggest`` and ``/search/status`` (thin: validate, hand off)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from headwater.api.auth import allow, principal_of
from headwater.api.deps import SessionDep
from headwater.auth.actions import Action
from headwater.auth.policy import audience_of
from headwater.catalog.models import DatasetKind
from headwater.search.base import DocumentType, SearchBackend, SearchQuery, check_prefix
from headwater.search.indexer import SearchIndexer
from headwater.search.schemas import SearchResponse, SearchStatusOut, SuggestionOut, SuggestResponse

__all__ = ["search_router"]

# Every search route reads: the router declares it once for each.
search_router = APIRouter(prefix="/api/v1/search", tags=["search"])
READ = [allow(Action.SEARCH_READ)]

Values = Annotated[list[str] | None, Query(max_length=20)]


def _backend(request: Request) -> SearchBackend:
    backend: SearchBackend = request.app.state.search_backend
    return backend


@search_router.get("", response_model=SearchResponse, dependencies=READ)
def search(
    request: Request,
    q: Annotated[
        str | None,
        Query(
            max_length=512,
            description="Free text: words, '\"exact phrase\"', '-word' to exclude, and filters typed inline: "
            "tag:pii owner:alice kind:topic source:x namespace:y format:avro (unknown 'key:' is plain words).",
        ),
    ] = None,
    type: Annotated[list[DocumentType] | None, Query(description="dataset (default) and/or column.")] = None,
    source: Values = None,
    kind: Annotated[list[DatasetKind] | None, Query()] = None,
    namespace: Values = None,
    tag: Values = None,
    owner: Values = None,
    format: Values = None,
    sort: Annotated[str, Query(description="relevance, name, updated_at; '-' for descending.")] = "relevance",
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    facets: bool = True,
    highlight: bool = True,
) -> SearchResponse:
    """Free-text search with filters, facet counts, highlighting, sorting and cursor pages."""
    filters = {"source": source, "kind": kind, "namespace": namespace, "tag": tag, "owner": owner, "format": format}
    query = SearchQuery.of(
        q=q,
        types=type,
        filters=filters,
        sort=sort,
        cursor=cursor,
        limit=limit,
        facets=facets,
        highlight=highlight,
        audience=audience_of(principal_of(request)),
    )
    return SearchResponse.model_validate(_backend(request).search(query), from_attributes=True)


@search_router.get("/suggest", response_model=SuggestResponse, dependencies=READ)
def suggest(
    request: Request,
    prefix: Annotated[str, Query(min_length=1, max_length=256, description="What has been typed so far.")],
    type: Annotated[list[DocumentType] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> SuggestResponse:
    """Names completing ``prefix``: whole-name prefixes first, then last-segment and word prefixes."""
    found = _backend(request).suggest(
        check_prefix(prefix),
        limit=limit,
        types=type or [DocumentType.DATASET],
        audience=audience_of(principal_of(request)),
    )
    return SuggestResponse(items=[SuggestionOut.model_validate(s, from_attributes=True) for s in found])


@search_router.get("/status", response_model=SearchStatusOut, dependencies=READ)
def status(request: Request, session: SessionDep) -> SearchStatusOut:
    """How far the index is behind the change outbox, and its document counts beside the catalog's."""
    indexer: SearchIndexer = request.app.state.search_indexer
    return SearchStatusOut.model_validate(indexer.status(session))
