"""Where the shared background services run: in the app when it is the only process, never in a serving process
of several (``serving_app``), and which of them the settings turn on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from headwater import migrations
from headwater.app import create_app
from headwater.services import enabled_services
from headwater.settings import Settings

pytestmark = pytest.mark.anyio
MakeDatabase = Callable[..., str]
SHARED = {"headwater-sync", "headwater-search-indexer", "headwater-job-worker", "headwater-job-reaper"}


def _settings(fresh_database: MakeDatabase, **values: object) -> Settings:
    url = fresh_database("sqlite", "services")
    migrations.upgrade(url)
    return Settings(database_url=url, jobs_worker_enabled=True, **values)  # type: ignore[arg-type]


def _running(app: object) -> set[str]:
    state = app.state  # type: ignore[attr-defined]
    loops = {
        "headwater-sync": state.sync_scheduler,
        "headwater-search-indexer": state.search_indexer_thread,
        "headwater-job-reaper": state.job_reaper,
        "headwater-cache-poller": state.cache_poller,
    }
    return {name for name, loop in loops.items() if loop._thread.is_alive()}  # noqa: SLF001


async def test_one_process_runs_the_shared_services_and_a_worker_of_several_does_not(
    fresh_database: MakeDatabase,
) -> None:
    settings = _settings(fresh_database)
    alone = create_app(settings, prepare=False)
    async with alone.router.lifespan_context(alone):
        assert _running(alone) == {
            "headwater-sync",
            "headwater-search-indexer",
            "headwater-job-reaper",
            "headwater-cache-poller",
        }
    several = create_app(settings, prepare=False, services=False)
    async with several.router.lifespan_context(several):
        assert _running(several) == {"headwater-cache-poller"}
    api_only = create_app(settings.model_copy(update={"serve_services": False}), prepare=False)
    async with api_only.router.lifespan_context(api_only):
        assert _running(api_only) == {"headwater-cache-poller"}


def test_enabled_services_follow_their_settings(fresh_database: MakeDatabase) -> None:
    settings = _settings(fresh_database)
    assert set(enabled_services(settings)) >= SHARED
    off = settings.model_copy(
        update={"sync_scheduler_enabled": False, "jobs_reaper_interval": 0, "retention_enabled": False}
    )
    assert enabled_services(off) == ["headwater-search-indexer", "headwater-job-worker"]
    assert "headwater-job-worker" not in enabled_services(settings.model_copy(update={"jobs_worker_enabled": False}))
