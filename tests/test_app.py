"""Settings, start-up checks and the dataset cache's view of other processes' writes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from headwater import migrations
from headwater.app import create_app
from headwater.catalog import service
from headwater.catalog.cache import DatasetCache, OutboxPoller
from headwater.catalog.schemas import DatasetCreate, DatasetUpdate
from headwater.database import prepare_database
from headwater.db import create_db_engine, make_sessionmaker, session_scope
from headwater.errors import DatabaseNotReady
from headwater.settings import Settings

MakeDatabase = Callable[..., str]


def test_default_database_is_a_sqlite_file_in_the_data_dir(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir)
    assert settings.resolved_database_url == f"sqlite:///{(data_dir / 'headwater.db').resolve()}"
    assert settings.should_auto_migrate


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_DATABASE_URL", "postgresql://u@db:5432/hw")
    monkeypatch.setenv("HEADWATER_PORT", "9000")
    monkeypatch.setenv("HEADWATER_LOG_LEVEL", "WARNING")
    settings = Settings()
    assert settings.resolved_database_url == "postgresql+psycopg://u@db:5432/hw"
    assert settings.port == 9000 and settings.log_level == "warning"
    assert not settings.should_auto_migrate


def test_production_refuses_the_embedded_database() -> None:
    with pytest.raises(ValidationError, match="HEADWATER_DATABASE_URL"):
        Settings(env="production")
    with pytest.raises(ValidationError, match="AUTO_MIGRATE"):
        Settings(env="production", database_url="postgresql://db/hw", auto_migrate=True)


def test_invalid_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_PORT", "eighty")
    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_a_refused_setting_is_named_but_its_value_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_ELASTICSEARCH_TIMEOUT", "s3cret-value")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "elasticsearch_timeout" in str(refused.value)
    assert "s3cret" not in str(refused.value)
    monkeypatch.delenv("HEADWATER_ELASTICSEARCH_TIMEOUT")
    with pytest.raises(ValidationError) as refused:
        Settings(env="production", database_url="postgresql://hw:s3cret@db/hw", auto_migrate=True)
    assert "AUTO_MIGRATE" in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_embedded_database_is_migrated_on_start(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir)
    prepare_database(settings)
    engine = create_db_engine(settings.resolved_database_url)
    try:
        assert migrations.is_up_to_date(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_server_refuses_an_unmigrated_database_naming_the_command(
    backend: str, fresh_database: MakeDatabase, data_dir: Path
) -> None:
    url = fresh_database(backend, "unmigrated")
    with pytest.raises(DatabaseNotReady, match="headwater db upgrade"):
        create_app(Settings(database_url=url, data_dir=data_dir))


def test_unreachable_database_is_reported_not_raised_raw(data_dir: Path) -> None:
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none", data_dir=data_dir)
    with pytest.raises(DatabaseNotReady, match="cannot reach the database"):
        prepare_database(settings)


@pytest.mark.anyio
async def test_readyz_is_503_when_the_database_falls_behind(fresh_database: MakeDatabase, data_dir: Path) -> None:
    url = fresh_database("sqlite", "behind")
    migrations.upgrade(url)
    app = create_app(Settings(database_url=url, data_dir=data_dir))
    migrations.downgrade(url, "base")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://headwater.test") as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert "headwater db upgrade" in response.json()["error"]["message"]


def test_poller_invalidates_what_another_process_changed(engine: Engine, session: Session) -> None:
    """(``session`` empties the tables afterwards.)"""
    factory = make_sessionmaker(engine)
    with session_scope(factory) as session:
        dataset_id = service.register_dataset(session, data=DatasetCreate(name="t")).id
    cache = DatasetCache(max_bytes=1 << 20)
    poller = OutboxPoller(engine=engine, cache=cache, interval=0.05)
    poller.start()
    try:
        cache.put(dataset_id, cache.generation(), '"1.1"', b"{}")
        assert cache.get(dataset_id) is not None
        other = create_db_engine(engine.url.render_as_string(hide_password=False))  # "another process"
        try:
            with session_scope(make_sessionmaker(other)) as session:
                service.update_dataset_metadata(
                    session, dataset_id=dataset_id, data=DatasetUpdate(description="x"), expected_revision=None
                )
        finally:
            other.dispose()
        deadline = time.monotonic() + 5
        while cache.get(dataset_id) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cache.get(dataset_id) is None
    finally:
        poller.stop()


def test_poller_that_cannot_read_the_outbox_disables_the_cache() -> None:
    cache = DatasetCache(max_bytes=1 << 20)
    cache.put(1, cache.generation(), '"1.1"', b"{}")
    unreachable = create_db_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        OutboxPoller(engine=unreachable, cache=cache, interval=1).poll_once()
    finally:
        unreachable.dispose()
    assert cache.get(1) is None


def test_cache_refuses_an_entry_read_before_an_invalidation() -> None:
    cache = DatasetCache(max_bytes=1 << 20)
    generation = cache.generation()
    cache.invalidate({7})  # a write committed while the entry was being read
    cache.put(7, generation, '"7.1"', b"old")
    assert cache.get(7) is None
    cache.put(7, cache.generation(), '"7.2"', b"new")
    assert cache.get(7) == ('"7.2"', b"new")


def test_any_dataset_change_drops_every_cached_list_page() -> None:
    cache = DatasetCache(max_bytes=1 << 20)
    cache.put("list?limit=100&sort=name", cache.generation(), "", b"[page]")
    cache.put(3, cache.generation(), '"3.1"', b"{three}")
    cache.invalidate({9})
    assert cache.get("list?limit=100&sort=name") is None
    assert cache.get(3) == ('"3.1"', b"{three}")


def test_cache_stays_within_its_byte_bound() -> None:
    cache = DatasetCache(max_bytes=1000)
    for i in range(20):
        cache.put(i, cache.generation(), f'"{i}.1"', b"x" * 200)
    assert len(cache) == 5
    assert cache.get(19) is not None and cache.get(0) is None


def test_unhealthy_cache_serves_nothing() -> None:
    cache = DatasetCache(max_bytes=1 << 20)
    cache.put(1, cache.generation(), '"1.1"', b"{}")
    cache.set_healthy(False)
    assert cache.get(1) is None
    cache.put(1, cache.generation(), '"1.1"', b"{}")
    assert cache.get(1) is None
