"""The FastAPI application: wiring of settings, database, cache, routers and error handling.

The server never runs on an un-migrated database: the embedded SQLite default is migrated on start;
any other database must already be at the code's revision, or start-up stops with a message naming
``headwater db upgrade``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from headwater import __version__, migrations
from headwater.api.audit import AuditWrites
from headwater.api.auth import AnonymousGate, Authenticate, allow, public, route_action
from headwater.api.crosssite import CLIENT_HEADER, CrossSiteWrites, HostCheck, SecurityHeaders
from headwater.api.identity import identity_router
from headwater.api.limits import RateLimit, TokenBuckets
from headwater.api.middleware import BodySizeLimit
from headwater.api.responses import error_body, install_error_handlers
from headwater.api.session import Sessions, SessionSigner, session_key
from headwater.apidocs import install_api_docs
from headwater.auth import audit
from headwater.auth.actions import Action
from headwater.auth.authenticate import Authenticator
from headwater.auth.epoch import RevocationPoller
from headwater.auth.oidc import OidcVerifier
from headwater.catalog.alias_routes import aliases_router
from headwater.catalog.cache import CachedReads, DatasetCache, OutboxPoller
from headwater.catalog.list_pages import row_keys
from headwater.catalog.restriction_routes import restricting_tags_router, restriction_router
from headwater.catalog.routes import changes_router, datasets_router, sources_router
from headwater.catalog.sync_routes import sync_router
from headwater.database import prepare_database
from headwater.db import create_db_engine, make_sessionmaker
from headwater.egress import EgressPolicy
from headwater.graphql import graphql_router
from headwater.graphql.answers import CachedAnswers
from headwater.jobs.routes import applications_router, clusters_router, commands_router, jobs_router
from headwater.lineage.merge_routes import merges_router
from headwater.lineage.routes import lineage_router
from headwater.loops import LoopService
from headwater.openapi import install_openapi
from headwater.search import make_backend, make_indexer
from headwater.search.routes import search_router
from headwater.secrets import SecretVault
from headwater.services import SharedServices, die_with_parent
from headwater.settings import Settings, get_settings
from headwater.ui import UI_STATIC, install_error_pages, ui_router

__all__ = ["create_app", "install_edge", "serving_app"]

log = logging.getLogger("headwater")
# Health probes: never rate limited.
PROBE_PATHS = ("/healthz", "/readyz")


def install_edge(
    app: FastAPI,
    settings: Settings,
    cache: DatasetCache,
    authenticator: Authenticator,
    signer: SessionSigner | None = None,
) -> None:
    """The middlewares every request passes, outermost first: security headers on every answer, forwarded
    addresses from trusted proxies, the Host check, CORS (when configured), the rate limit, the refusal of
    cross-site writes, the UI's session (and its CSRF check), authentication, the refusal of anonymous requests,
    the dataset cache's hits, the
    body-size guard and GraphQL's cached answers (docs/security/crosssite.md, docs/security/identity.md)."""
    # Each add_middleware wraps what was added before it: added last, run first.
    app.add_middleware(CachedAnswers, cache=cache)  # GraphQL's cached catalog reads, inside the size guard
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(CachedReads, cache=cache)  # cache hits never reach routing
    app.add_middleware(AnonymousGate, routes=lambda: app.routes)  # anonymous: 401 (or sign in) unless public
    app.add_middleware(Authenticate, authenticator=authenticator)  # the cache serves only who may read
    app.add_middleware(AuditWrites)  # outside authentication: refused writes are recorded too
    if signer is not None:  # before Authenticate: a signed-in session is the principal of a request without a token
        app.add_middleware(Sessions, signer=signer, authenticator=authenticator, max_body=settings.max_body_bytes)
    app.add_middleware(
        CrossSiteWrites,
        trusted_origins=settings.cors_origins,
        multipart_paths=["/api/v1/jobs"],
        form_prefixes=["/ui/"] if signer is not None else [],
    )
    if settings.rate_limit_per_second > 0 and settings.rate_limit_burst > 0:
        buckets = TokenBuckets(
            rate=settings.rate_limit_per_second,
            burst=settings.rate_limit_burst,
            max_clients=settings.rate_limit_max_clients,
        )
        app.add_middleware(RateLimit, buckets=buckets, exempt_paths=list(PROBE_PATHS))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "If-None-Match", CLIENT_HEADER],
            expose_headers=["ETag", "Location", "Retry-After"],
        )
    app.add_middleware(HostCheck, allowed_hosts=settings.allowed_hosts)
    if settings.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    app.add_middleware(SecurityHeaders)


def _session_key(settings: Settings, vault: SecretVault) -> bytes:
    secret = settings.session_secret.get_secret_value() if settings.session_secret else None
    derive_from = vault.key_ring.keys()[0] if vault.key_ring is not None and secret is None else None
    return session_key(secret, derive_from)


def serving_app(settings: Settings | None = None) -> FastAPI:
    """The app of one of several serving processes under a process manager (``headwater serve --workers``, uvicorn
    ``--factory --workers``, gunicorn): the API and the pollers keeping its memory coherent, never the shared
    background services (``headwater services`` runs them once); it ends when its manager ends. The database must
    be migrated already (docs/operate/processes.md)."""
    die_with_parent()
    return create_app(settings, prepare=False, services=False)


def create_app(settings: Settings | None = None, *, prepare: bool = True, services: bool | None = None) -> FastAPI:
    """Build the application for ``settings`` (default: from the environment); ``services`` runs the shared
    background services in it too (default: ``HEADWATER_SERVE_SERVICES``; false in each of several workers)."""
    settings = settings or get_settings()
    vault = SecretVault.from_settings(settings)
    egress = EgressPolicy.from_settings(settings)
    vault.check_keys()  # a missing or malformed key stops the server here, not at the first sync
    if prepare:
        prepare_database(settings)
    engine = create_db_engine(
        settings.resolved_database_url,
        pool_size=settings.db_pool_size,
        echo=settings.db_echo,
        prepared_statements=settings.db_prepared_statements,
    )
    factory = make_sessionmaker(engine)
    oidc = OidcVerifier.from_settings(settings, egress) if settings.oidc_issuer and settings.auth_configured else None
    authenticator = Authenticator(settings, factory, jwt_verifier=oidc)
    signer = SessionSigner(_session_key(settings, vault), max_age=settings.session_max_age)
    audit.install(factory)  # a write request's first transaction carries its audit entry
    # Requests holding a session at once: fewer than the db_pool_size connections the pool keeps open, so a burst of
    # requests never opens and closes overflow connections (each a PostgreSQL backend forked and torn down: a tenth
    # of a cold read's time at 32 clients in a py-spy profile); the background threads' few sessions may overflow.
    db_slots = anyio.Semaphore(max(1, min(settings.db_pool_size - 2, 32)))
    cache = DatasetCache(max_bytes=settings.cache_max_bytes, enabled=settings.cache_enabled)

    @event.listens_for(factory, "before_commit")
    def _keys_of_changed(session: Session) -> None:
        # The changed datasets' sort keys as this transaction commits them: which cached list pages they can alter.
        changed = session.info.get("changed_entities")
        if changed and cache.enabled and not session.in_nested_transaction():  # a savepoint's release: not yet
            ids = {entity_id for entity_type, entity_id in changed if entity_type == "dataset"}
            session.flush()  # the keys as committed, not as last flushed
            session.info["changed_keys"] = row_keys(session, ids) if ids else {}

    @event.listens_for(factory, "after_commit")
    def _invalidate_committed(session: Session) -> None:
        changed = session.info.pop("changed_entities", None)
        keys = session.info.pop("changed_keys", None)
        if changed:
            cache.invalidate({entity_id for entity_type, entity_id in changed if entity_type == "dataset"}, keys)

    @event.listens_for(factory, "after_rollback")
    def _forget_rolled_back(session: Session) -> None:
        session.info.pop("changed_entities", None)
        session.info.pop("changed_keys", None)

    poller = OutboxPoller(engine=engine, cache=cache, interval=settings.cache_poll_interval)
    revocations = RevocationPoller(
        factory=factory, authenticator=authenticator, interval=settings.auth_revocation_poll_seconds
    )
    search_backend = make_backend(settings, engine)
    search_indexer = make_indexer(settings, engine, search_backend)
    run_shared = settings.serve_services if services is None else services
    shared = SharedServices.build(settings, factory, search_indexer, vault=vault, egress=egress, run=run_shared)

    # The background loops this process runs, in the order they start; they stop in the reverse order. The pollers
    # keep this process's memory coherent; the shared services run here only when this process is the only one.
    loops: list[LoopService[Any]] = [
        loop
        for loop, enabled in (
            (revocations, authenticator.mode == "on"),
            (poller, settings.cache_enabled),
        )
        if enabled
    ]
    loops.extend(shared.loops)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        authenticator.announce()
        for loop in loops:
            loop.start()
        try:
            yield
        finally:
            for loop in reversed(loops):
                loop.stop()
            search_backend.close()
            if oidc is not None:
                oidc.provider.close()
            engine.dispose()

    app = FastAPI(
        title="Headwater",
        version=__version__,
        description="A federated catalog, column-level lineage, job execution and search for data platforms.",
        lifespan=lifespan,
        docs_url=None,  # served by install_api_docs from local files, not from a CDN
        redoc_url=None,
        openapi_url=None,  # served by install_openapi, declaring its permission as every route does
    )
    app.openapi_url = "/openapi.json"
    app.state.settings = settings
    app.state.secret_vault = vault
    app.state.egress = egress
    app.state.engine = engine
    app.state.sessionmaker = factory
    app.state.db_slots = db_slots
    app.state.dataset_cache = cache
    app.state.cache_poller = poller
    app.state.sync_scheduler = shared.scheduler
    app.state.search_backend = search_backend
    app.state.search_indexer = search_indexer
    app.state.search_indexer_thread = shared.indexer_thread
    app.state.job_worker = shared.job_worker
    app.state.job_reaper = shared.job_reaper
    app.state.authenticator = authenticator
    app.state.revocations = revocations
    app.state.oidc = oidc
    app.state.session_signer = signer
    install_edge(app, settings, cache, authenticator, signer)
    install_error_handlers(app)
    install_error_pages(app)  # a UI form refused by its permission answers a page, not JSON
    for router in (sources_router, sync_router, restriction_router, aliases_router, datasets_router, changes_router):
        app.include_router(router)
    app.include_router(restricting_tags_router)
    app.include_router(lineage_router)
    app.include_router(merges_router)
    app.include_router(search_router)
    app.include_router(identity_router)
    app.include_router(graphql_router)
    app.include_router(ui_router)
    app.mount("/ui/static", public(StaticFiles(directory=UI_STATIC)), name="ui-static")
    install_api_docs(app)
    for router in (applications_router, clusters_router, commands_router, jobs_router):
        app.include_router(router)

    @app.get("/healthz", tags=["health"], dependencies=[allow(Action.PUBLIC)])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok", "version": __version__}

    @app.get(
        "/readyz",
        tags=["health"],
        responses={503: {"description": "Database unreachable or not migrated"}},
        dependencies=[allow(Action.PUBLIC)],
    )
    def readyz(request: Request) -> Any:
        """The database is reachable and at the code's migration head."""
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            current = migrations.current_revision(engine)
        except SQLAlchemyError as exc:
            return JSONResponse(
                error_body("database_unavailable", f"the database is unreachable: {getattr(exc, 'orig', exc)}"),
                status_code=503,
            )
        head = migrations.head_revision()
        if current != head:
            return JSONResponse(
                error_body(
                    "database_not_migrated",
                    f"the database is at migration {current or 'none'}, expected {head}; run `headwater db upgrade`",
                ),
                status_code=503,
            )
        return {"status": "ready", "database": engine.dialect.name, "migration": current}

    install_openapi(app, rate_limit_exempt=PROBE_PATHS, permission_of=route_action, dependencies=[allow(Action.PUBLIC)])
    return app
