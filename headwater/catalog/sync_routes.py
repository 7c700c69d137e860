"""REST routes of federation sync under ``/api/v1/sources/{name}``: start a sync, read its reports.

A sync commits page by page in its own transactions (see ``catalog.sync``), so the sync route uses the
app's session factory instead of the request-scoped session.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from headwater.api.deps import SessionDep, SettingsDep
from headwater.api.pagination import Cursor, Limit, Page, page_of
from headwater.api.params import MAX_ID
from headwater.api.responses import json_response
from headwater.catalog import sync
from headwater.catalog.access import SOURCES
from headwater.catalog.sync_models import SyncMode, SyncTrigger
from headwater.catalog.sync_schemas import SyncRunOut

__all__ = ["sync_router"]

SourceName = Annotated[str, Path(max_length=128, description="The source's name.")]
sync_router = APIRouter(prefix="/api/v1/sources", tags=["sources"])


@sync_router.post(
    "/{name}/sync",
    response_model=SyncRunOut,
    responses={202: {"description": "Started (wait=false); poll the report"}, 409: {"description": "Running"}},
    dependencies=SOURCES.writes,
)
def sync_source(
    name: SourceName,
    request: Request,
    settings: SettingsDep,
    mode: SyncMode = SyncMode.INCREMENTAL,
    wait: Annotated[bool, Query(description="Answer when the sync ends (else 202 once it started).")] = True,
) -> Response:
    """Sync a source now and return its report (409 when a sync of it is already running)."""
    factory, lease = request.app.state.sessionmaker, settings.sync_lease_seconds
    handle = sync.start_sync(
        factory,
        source_name=name,
        mode=mode,
        trigger=SyncTrigger.API,
        lease_seconds=lease,
        vault=request.app.state.secret_vault,
        egress=request.app.state.egress,
    )
    if not wait:
        started = json_response(
            SyncRunOut.of(handle.run, name),
            status_code=202,
            headers={"Location": f"/api/v1/sources/{name}/syncs/{handle.run.id}"},
        )
        threading.Thread(target=sync.execute_sync, args=(factory, handle), name=f"sync-{name}", daemon=True).start()
        return started
    return json_response(SyncRunOut.of(sync.execute_sync(factory, handle), name))


@sync_router.get("/{name}/syncs", response_model=Page[SyncRunOut], dependencies=SOURCES.reads)
def list_syncs(name: SourceName, session: SessionDep, cursor: Cursor = None, limit: Limit = 50) -> Response:
    """A source's sync reports, newest first."""
    page = sync.list_sync_runs(session, source_name=name, cursor=cursor, limit=limit)
    return json_response(page_of(SyncRunOut, page, lambda run: SyncRunOut.of(run, name)))


@sync_router.get("/{name}/syncs/{run_id}", response_model=SyncRunOut, dependencies=SOURCES.reads)
def get_sync(name: SourceName, run_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep) -> Response:
    """One sync report."""
    return json_response(SyncRunOut.of(sync.get_sync_run(session, source_name=name, run_id=run_id), name))
