"""Discovery search over the catalog: one :class:`SearchBackend` interface, an embedded ``sql`` backend
(SQLite FTS5 / PostgreSQL tsvector) and an ``elasticsearch`` backend, fed from the change outbox by
:class:`SearchIndexer`. ``HEADWATER_SEARCH_BACKEND`` picks the backend."""

from __future__ import annotations

from sqlalchemy import Engine

from headwater.search.base import (
    DocumentType,
    MatchTier,
    SearchBackend,
    SearchDocument,
    SearchHit,
    SearchPage,
    SearchQuery,
    SearchUnavailable,
    Suggestion,
)
from headwater.search.indexer import IndexerThread, SearchIndexer
from headwater.settings import Settings

__all__ = [
    "DocumentType",
    "IndexerThread",
    "MatchTier",
    "SearchBackend",
    "SearchDocument",
    "SearchHit",
    "SearchIndexer",
    "SearchPage",
    "SearchQuery",
    "SearchUnavailable",
    "Suggestion",
    "make_backend",
    "make_indexer",
]


def make_backend(settings: Settings, engine: Engine) -> SearchBackend:
    """The backend ``settings`` select (the ``sql`` one shares the catalog's engine), running at most
    ``search_concurrency`` searches at once."""
    backend = _backend(settings, engine)
    backend.limit_concurrency(settings.search_concurrency)
    return backend


def _backend(settings: Settings, engine: Engine) -> SearchBackend:
    if settings.search_backend == "elasticsearch":
        from headwater.search.elasticsearch import ElasticsearchBackend

        auth = None
        if settings.elasticsearch_username:
            password = settings.elasticsearch_password.get_secret_value() if settings.elasticsearch_password else ""
            auth = (settings.elasticsearch_username, password)
        return ElasticsearchBackend(
            settings.elasticsearch_url,
            alias=settings.elasticsearch_index,
            api_key=settings.elasticsearch_api_key.get_secret_value() if settings.elasticsearch_api_key else None,
            basic_auth=auth,
            timeout=settings.elasticsearch_timeout,
        )
    from headwater.search.sql import SqlSearchBackend

    return SqlSearchBackend(engine, candidate_cap=settings.search_candidate_cap)


def make_indexer(settings: Settings, engine: Engine, backend: SearchBackend) -> SearchIndexer:
    """The indexer feeding ``backend`` from the catalog at ``engine``."""
    from headwater.db import make_sessionmaker

    return SearchIndexer(
        factory=make_sessionmaker(engine),
        backend=backend,
        include_columns=settings.search_index_columns,
        batch_size=settings.search_batch_size,
    )
