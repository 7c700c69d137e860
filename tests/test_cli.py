"""The ``headwater`` command line, against both databases, and ``serve`` as a real process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from live_http import headwater_serve
from typer.testing import CliRunner

from headwater.cli import app
from headwater.settings import get_settings

MakeDatabase = Callable[..., str]
runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Iterator[Callable[[str | None], None]]:
    """Point the CLI at a database (None = the embedded default in a temporary data dir)."""

    def use(url: str | None) -> None:
        monkeypatch.setenv("HEADWATER_DATA_DIR", str(data_dir))
        if url:
            monkeypatch.setenv("HEADWATER_DATABASE_URL", url)
        else:
            monkeypatch.delenv("HEADWATER_DATABASE_URL", raising=False)
        get_settings.cache_clear()

    yield use
    get_settings.cache_clear()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_db_current_then_upgrade(
    backend: str, fresh_database: MakeDatabase, cli_env: Callable[[str | None], None]
) -> None:
    cli_env(fresh_database(backend, "cli"))
    behind = runner.invoke(app, ["db", "current"])
    assert behind.exit_code == 1
    assert "never migrated" in behind.output and "headwater db upgrade" in behind.output
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    current = runner.invoke(app, ["db", "current"])
    assert current.exit_code == 0 and "up to date" in current.output


def test_commands_on_an_unmigrated_server_database_say_what_to_run(
    fresh_database: MakeDatabase, cli_env: Callable[[str | None], None]
) -> None:
    cli_env(fresh_database("postgres", "cli"))
    result = runner.invoke(app, ["datasets", "list"])
    assert result.exit_code == 1
    assert "headwater db upgrade" in result.output
    assert "Traceback" not in result.output


def test_datasets_list_and_show_on_the_embedded_database(cli_env: Callable[[str | None], None]) -> None:
    cli_env(None)
    from headwater.catalog import service
    from headwater.catalog.schemas import DatasetCreate, FieldIn
    from headwater.database import prepare_database
    from headwater.db import create_db_engine, make_sessionmaker, session_scope

    settings = get_settings()
    prepare_database(settings)
    engine = create_db_engine(settings.resolved_database_url)
    with session_scope(make_sessionmaker(engine)) as session:
        for name in ("analytics.title_daily_views", "raw.playback_events"):
            service.register_dataset(
                session,
                data=DatasetCreate(
                    namespace="hive://meta:9083",
                    name=name,
                    fields=[FieldIn(name="title_id", type="bigint")],
                    tags=["tier-1"],
                ),
            )
    engine.dispose()

    listed = runner.invoke(app, ["datasets", "list", "--json", "--prefix", "raw."])
    assert listed.exit_code == 0, listed.output
    document = json.loads(listed.output)
    assert [d["name"] for d in document["items"]] == ["raw.playback_events"] and document["total"] == 1

    table = runner.invoke(app, ["datasets", "list", "--tag", "tier-1"])
    assert table.exit_code == 0 and "2 dataset(s)" in table.output
    tagged = json.loads(runner.invoke(app, ["datasets", "list", "--tag", "tier-1", "--json"]).output)
    assert [d["name"] for d in tagged["items"]] == ["analytics.title_daily_views", "raw.playback_events"]

    shown = runner.invoke(
        app, ["datasets", "show", "--namespace", "hive://meta:9083", "--name", "raw.playback_events", "--json"]
    )
    assert shown.exit_code == 0
    assert json.loads(shown.output)["fields"][0]["path"] == "title_id"

    missing = runner.invoke(app, ["datasets", "show", "4242"])
    assert missing.exit_code == 1 and "no dataset with id 4242" in missing.output

    nothing = runner.invoke(app, ["datasets", "show"])
    assert nothing.exit_code == 1 and "--namespace and --name" in nothing.output


@pytest.mark.integration
def test_serve_runs_the_real_server_on_the_embedded_database(data_dir: Path) -> None:
    with headwater_serve(data_dir) as base:
        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["database"] == "sqlite"
        created = httpx.post(f"{base}/api/v1/datasets", json={"name": "db.t"}, timeout=5)
        assert created.status_code == 201
        assert (data_dir / "headwater.db").exists()


@pytest.mark.integration
@pytest.mark.parametrize("chosen_by", ["--port", "HEADWATER_PORT"])
def test_serve_on_a_busy_port_names_the_flag_and_setting_that_choose_another(data_dir: Path, chosen_by: str) -> None:
    env = {**os.environ, "HEADWATER_DATA_DIR": str(data_dir)}
    env.pop("HEADWATER_DATABASE_URL", None)
    command = [sys.executable, "-m", "headwater.cli", "serve", "--host", "127.0.0.1"]
    with socket.create_server(("127.0.0.1", 0)) as holder:  # another program listening on the port
        port = holder.getsockname()[1]
        if chosen_by == "--port":
            command += ["--port", str(port)]
        else:
            env["HEADWATER_PORT"] = str(port)
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"port {port} on 127.0.0.1 is in use: choose another with --port or HEADWATER_PORT" in result.stderr
    assert "Traceback" not in result.stderr and "Errno" not in result.stderr + result.stdout
