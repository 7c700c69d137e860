"""`headwater demo` end to end on both databases: the live warehouse lands under the data directory, and a
second run syncs nothing new."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from headwater.cli import app
from headwater.settings import get_settings

runner = CliRunner()


@pytest.fixture
def cli_settings(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Iterator[None]:
    """The CLI on a temporary data directory."""
    monkeypatch.setenv("HEADWATER_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_demo_builds_syncs_and_is_idempotent(
    backend: str,
    fresh_database: Callable[..., str],
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli_settings: None,
) -> None:
    monkeypatch.setenv("HEADWATER_DATABASE_URL", fresh_database(backend, "demo"))
    get_settings.cache_clear()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0

    first = runner.invoke(app, ["demo", "--no-jobs"])  # the real Spark job is tested in test_demo_jobs.py
    assert first.exit_code == 0, first.output
    assert "Iceberg lake: live warehouse" in first.output and "6 table(s) built" in first.output
    assert "sync succeeded: 6 added, 0 changed, 0 unchanged" in first.output
    assert "Kafka topics and Hive tables: registered by hand" in first.output
    assert (data_dir / "demo-warehouse" / "catalog.db").is_file()
    assert list((data_dir / "demo-warehouse" / "warehouse" / "raw" / "playback_events" / "data").rglob("*.parquet"))

    second = runner.invoke(app, ["demo", "--no-jobs"])
    assert second.exit_code == 0, second.output
    assert "0 source(s) and 0 dataset(s) created" in second.output
    assert "0 table(s) built); sync succeeded: 0 added, 0 changed, 6 unchanged" in second.output
