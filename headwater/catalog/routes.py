"""The catalog's REST routes under ``/api/v1``: sources, datasets, schema history, the change feed.

Routes validate, call one service function and shape the answer; the session dependency owns the
transaction. Answers are serialised once by pydantic-core (``model_dump_json``) and returned as bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from headwater.api.auth import allow, principal_of
from headwater.api.deps import SessionDep, db_slot
from headwater.api.pagination import CountParam, Cursor, Limit, Page, Sort, page_of
from headwater.api.params import MAX_ID, IfMatch, parse_if_match
from headwater.api.responses import json_response
from headwater.auth.actions import Action
from headwater.auth.policy import Audience, audience_of
from headwater.catalog import answers, events, restrictions, service, sources
from headwater.catalog.access import CATALOG, SOURCES, dataset_owners
from headwater.catalog.cache import CacheKey, DatasetCache, list_cache_key
from headwater.catalog.list_pages import ListSpan, span_of
from headwater.catalog.models import ChangeKind, DatasetKind, SourceKind
from headwater.catalog.schemas import (
    ChangeEventOut,
    ChangeFeed,
    DatasetCreate,
    DatasetOut,
    DatasetSummary,
    DatasetUpdate,
    SchemaUpdate,
    SchemaVersionOut,
    SourceCreate,
    SourceOut,
    SourceUpdate,
)
from headwater.db import session_scope

__all__ = ["changes_router", "datasets_router", "sources_router"]

DatasetId = Annotated[int, Path(ge=1, le=MAX_ID, description="The dataset's id.")]

sources_router = APIRouter(prefix="/api/v1/sources", tags=["sources"])
datasets_router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])
changes_router = APIRouter(prefix="/api/v1/change-events", tags=["change events"])


def audience(request: Request) -> Audience:
    """The audience the request's principal sees restricted datasets as (None: all of them)."""
    return audience_of(principal_of(request))


Loaded = tuple[str, bytes, frozenset[str], ListSpan | None]  # etag, body, audience, a list page's span


async def cached_read(
    request: Request,
    key: CacheKey | None,
    load: Callable[[Session], Loaded],
    quick: Callable[[], Loaded | None] | None = None,
) -> tuple[str, bytes]:
    """A cached ``(etag, body)``, or ``load`` run in a worker thread in its own transaction and cached (with the
    audience of the dataset it shows, when it shows a restricted one, or the span of the list page it is).
    ``quick``, when given, is tried first in that thread, without a session: a cheaper read that answers most misses
    (None: it could not).

    Hits never leave the event loop (no thread hop, no session); that is most reads of a catalog.
    """
    cache: DatasetCache = request.app.state.dataset_cache
    if key is not None:
        cached = cache.get(key, audience(request))
        if cached is not None:
            return cached

    def miss() -> tuple[str, bytes]:
        generation = cache.generation()
        found = quick() if quick is not None else None
        if found is None:
            with session_scope(request.app.state.sessionmaker) as session:
                found = load(session)
        etag, body, members, span = found
        return cache.put(key, generation, etag, body, members, span) if key is not None else (etag, body)

    async with db_slot(request):
        return await run_in_threadpool(miss)


def _dataset_response(
    dataset: service.Dataset, *, status_code: int = 200, location: bool = False, session: Session | None = None
) -> Response:
    """The answer of a dataset; given the write's ``session``, also stored as its answer in the same transaction."""
    headers = {"ETag": service.etag_of(dataset)}
    if location:
        headers["Location"] = f"/api/v1/datasets/{dataset.id}"
    body = DatasetOut.of(dataset).model_dump_json().encode()
    if session is not None and dataset.deleted_at is None:
        answers.store_answer(session, dataset_id=dataset.id, revision=dataset.revision, body=body)
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


# ------------------------------------------------------------------------------------- sources


@sources_router.post("", status_code=status.HTTP_201_CREATED, response_model=SourceOut, dependencies=SOURCES.writes)
def create_source(body: SourceCreate, request: Request, session: SessionDep) -> Response:
    """Register a source to federate (or a manual source)."""
    source = sources.create_source(
        session, data=body, vault=request.app.state.secret_vault, egress=request.app.state.egress
    )
    return json_response(
        SourceOut.model_validate(source), status_code=201, headers={"Location": f"/api/v1/sources/{source.name}"}
    )


@sources_router.get("", response_model=Page[SourceOut], dependencies=SOURCES.reads)
def list_sources(
    session: SessionDep,
    kind: SourceKind | None = None,
    sort: Sort = "name",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """Sources, one page at a time."""
    return json_response(
        page_of(SourceOut, sources.list_sources(session, kind=kind, sort=sort, cursor=cursor, limit=limit))
    )


@sources_router.get("/{name}", response_model=SourceOut, dependencies=SOURCES.reads)
def get_source(name: Annotated[str, Path(max_length=128)], session: SessionDep) -> Response:
    """One source by name."""
    return json_response(SourceOut.model_validate(sources.get_source(session, name=name)))


@sources_router.patch("/{name}", response_model=SourceOut, dependencies=SOURCES.writes)
def update_source(
    name: Annotated[str, Path(max_length=128)], body: SourceUpdate, request: Request, session: SessionDep
) -> Response:
    """Change a source's description, config or secrets (a new endpoint needs the secrets again)."""
    vault, egress = request.app.state.secret_vault, request.app.state.egress
    updated = sources.update_source(session, name=name, data=body, vault=vault, egress=egress)
    return json_response(SourceOut.model_validate(updated))


@sources_router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, dependencies=SOURCES.writes)
def delete_source(name: Annotated[str, Path(max_length=128)], session: SessionDep) -> Response:
    """Remove a source that has no live datasets."""
    sources.delete_source(session, name=name)
    return Response(status_code=204)


# ------------------------------------------------------------------------------------ datasets


@datasets_router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetOut, dependencies=CATALOG.writes)
def register_dataset(body: DatasetCreate, request: Request, session: SessionDep) -> Response:
    """Register a dataset by hand in a manual source."""
    dataset = service.register_dataset(session, data=body, audience=audience(request))
    return _dataset_response(dataset, status_code=201, location=True, session=session)


@datasets_router.get("", response_model=Page[DatasetSummary], dependencies=CATALOG.reads)
async def list_datasets(
    request: Request,
    source: Annotated[str | None, Query(max_length=128, description="Source name.")] = None,
    namespace: Annotated[str | None, Query(max_length=512)] = None,
    kind: DatasetKind | None = None,
    tag: Annotated[str | None, Query(max_length=128)] = None,
    owner: Annotated[str | None, Query(max_length=256)] = None,
    name_prefix: Annotated[str | None, Query(max_length=1024)] = None,
    include_deleted: bool = False,
    sort: Annotated[str, Query(max_length=32, description="name, updated_at, created_at or id; '-' = desc.")] = "name",
    cursor: Cursor = None,
    limit: Limit = 50,
    count: CountParam = "estimate",
) -> Response:
    """Datasets matching every filter given, one page at a time (served from the cache while nothing changed).

    ``total`` is counted as ``count`` says; ``total_exact`` tells whether it is exact (see the ``count`` parameter).
    """
    # The query parameters are DatasetFilters' fields, in its order.
    filters = service.DatasetFilters(source, namespace, kind, tag, owner, name_prefix, include_deleted)
    # Keyed by the raw query string, so the read-through middleware can answer the same request unparsed.
    # Keyed by the reader's audience too: which datasets a page holds depends on who reads it.
    seen_by = audience(request)
    key = list_cache_key(request.scope.get("query_string", b"").decode("latin-1"), seen_by)

    def load(session: Session) -> Loaded:
        page = service.list_datasets(
            session, filters=filters, sort=sort, cursor=cursor, limit=limit, audience=seen_by, count=count
        )
        body = page_of(DatasetSummary, page, DatasetSummary.summary_of).model_dump_json().encode()
        return "", body, frozenset(), span_of(page, sort)

    _, body = await cached_read(request, key, load)
    return Response(body, media_type="application/json")


@datasets_router.get("/by-name", response_model=DatasetOut, dependencies=CATALOG.reads)
def get_dataset_by_name(
    request: Request,
    session: SessionDep,
    namespace: Annotated[str, Query(min_length=1, max_length=512)],
    name: Annotated[str, Query(min_length=1, max_length=1024)],
    include_deleted: bool = False,
) -> Response:
    """One dataset by its OpenLineage identity (namespace and name)."""
    dataset = service.get_dataset_by_name(
        session, namespace=namespace, name=name, include_deleted=include_deleted, audience=audience(request)
    )
    return _dataset_response(dataset)


@datasets_router.get("/{dataset_id}", response_model=DatasetOut, dependencies=CATALOG.reads)
async def get_dataset(dataset_id: DatasetId, request: Request, include_deleted: bool = False) -> Response:
    """One dataset with its fields; answers 304 when If-None-Match still matches."""

    seen_by = audience(request)

    def answered(stored: answers.StoredAnswer) -> Loaded:
        # One indexed read; the audience comes with it and is checked as read_dataset would.
        if stored.members and seen_by is not None and not stored.members & seen_by:
            raise service.NotFound(f"no dataset with id {dataset_id}")
        return f'"{dataset_id}.{stored.revision}"', stored.body, stored.members, None

    def quick() -> Loaded | None:
        stored = answers.read_answer_at_once(request.app.state.engine, dataset_id)
        return answered(stored) if stored is not None else None

    def load(session: Session) -> Loaded:
        if not include_deleted and (stored := answers.read_answer(session, dataset_id)) is not None:
            return answered(stored)
        dataset, field_rows = service.read_dataset(
            session, dataset_id=dataset_id, include_deleted=include_deleted, audience=seen_by
        )
        members = frozenset(restrictions.audience_members(session, [dataset_id]).get(dataset_id, ()))
        body = DatasetOut.of(dataset, field_rows).model_dump_json().encode()
        if dataset.deleted_at is None:
            answers.store_answer(session, dataset_id=dataset_id, revision=dataset.revision, body=body)
        return service.etag_of(dataset), body, members, None

    # Deleted datasets are rare reads and must not be cached under the live dataset's key.
    etag, body = await cached_read(
        request, dataset_id if not include_deleted else None, load, quick if not include_deleted else None
    )
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag})


@datasets_router.patch(
    "/{dataset_id}",
    response_model=DatasetOut,
    dependencies=[allow(Action.CATALOG_EDIT, owned_by=dataset_owners)],  # its owners may, without the role
)
def update_dataset(
    dataset_id: DatasetId, body: DatasetUpdate, request: Request, session: SessionDep, if_match: IfMatch = None
) -> Response:
    """Change user metadata (description, tags, owners, properties, field descriptions and tags).

    Requires If-Match with the ETag of the version you read: 412 when someone changed it since.
    """
    revision = parse_if_match(if_match, required=True, resource=f"/api/v1/datasets/{dataset_id}")
    dataset = service.update_dataset_metadata(
        session, dataset_id=dataset_id, data=body, expected_revision=revision, principal=principal_of(request)
    )
    return _dataset_response(dataset, session=session)


@datasets_router.put("/{dataset_id}/schema", response_model=DatasetOut, dependencies=CATALOG.writes)
def replace_schema(
    dataset_id: DatasetId, body: SchemaUpdate, request: Request, session: SessionDep, if_match: IfMatch = None
) -> Response:
    """Declare a new schema for a manual dataset; a real change adds a schema version with its diff."""
    revision = parse_if_match(if_match, required=False, resource=f"/api/v1/datasets/{dataset_id}")
    dataset, _ = service.replace_manual_schema(
        session, dataset_id=dataset_id, fields=body.fields, expected_revision=revision, audience=audience(request)
    )
    return _dataset_response(dataset, session=session)


@datasets_router.delete("/{dataset_id}", response_model=DatasetOut, dependencies=CATALOG.writes)
def delete_dataset(
    dataset_id: DatasetId,
    request: Request,
    session: SessionDep,
    reason: Annotated[str, Query(min_length=1, max_length=2000, description="Why it is deleted.")],
    if_match: IfMatch = None,
) -> Response:
    """Soft-delete a dataset, saying why; it stays readable with include_deleted=true."""
    revision = parse_if_match(if_match, required=False, resource=f"/api/v1/datasets/{dataset_id}")
    dataset = service.delete_dataset(
        session, dataset_id=dataset_id, reason=reason, expected_revision=revision, audience=audience(request)
    )
    return _dataset_response(dataset)


@datasets_router.get("/{dataset_id}/schema-versions", response_model=Page[SchemaVersionOut], dependencies=CATALOG.reads)
def list_schema_versions(
    dataset_id: DatasetId,
    request: Request,
    session: SessionDep,
    order: Annotated[str, Query(pattern="^(newest|oldest)$")] = "newest",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """The dataset's schema history, each version with its diff from the one before."""
    page = service.list_schema_versions(
        session,
        dataset_id=dataset_id,
        cursor=cursor,
        limit=limit,
        newest_first=order == "newest",
        audience=audience(request),
    )
    return json_response(page_of(SchemaVersionOut, page))


@datasets_router.get(
    "/{dataset_id}/schema-versions/{version}", response_model=SchemaVersionOut, dependencies=CATALOG.reads
)
def get_schema_version(
    dataset_id: DatasetId, version: Annotated[int, Path(ge=1, le=2**31 - 1)], request: Request, session: SessionDep
) -> Response:
    """One schema version."""
    row = service.get_schema_version(session, dataset_id=dataset_id, version=version, audience=audience(request))
    return json_response(SchemaVersionOut.model_validate(row))


# ------------------------------------------------------------------------------- change events


@changes_router.get("", response_model=ChangeFeed, dependencies=CATALOG.reads)
def list_change_events(
    request: Request,
    session: SessionDep,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="Return events with a larger id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    entity_type: Annotated[str | None, Query(max_length=32)] = None,
    kind: Annotated[list[ChangeKind] | None, Query()] = None,
) -> Response:
    """The change feed: events after a position, oldest first; pass ``next_after`` back as ``after``."""
    rows = events.list_changes(
        session, after=after, limit=limit, entity_type=entity_type, kinds=kind, audience=audience(request)
    )
    return json_response(
        ChangeFeed(
            items=[ChangeEventOut.model_validate(r) for r in rows],
            next_after=rows[-1].id if rows else after,
        )
    )
