"""The demo's job engines and its real Spark job: ``headwater demo`` registers local Spark and Flink clusters and
runs the daily aggregation through the job queue; without Spark it says so and carries on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from headwater.app import create_app
from headwater.cli import app as cli
from headwater.db import make_sessionmaker
from headwater.demo.jobs import DEMO_JOB_ID, DemoEngines, run_demo_jobs
from headwater.jobs.models import Cluster, Command, Job
from headwater.settings import Settings, get_settings

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Iterator[None]:
    """The CLI on a temporary data directory."""
    monkeypatch.setenv("HEADWATER_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.anyio
@pytest.mark.integration
async def test_demo_runs_the_daily_aggregation_as_a_real_spark_job(
    fresh_database: Callable[..., str], data_dir: Path, monkeypatch: pytest.MonkeyPatch, cli_env: None
) -> None:
    import pyarrow.parquet as pq

    url = fresh_database("sqlite", "demo-jobs")  # the engine path is database-blind; test_demo_cli covers both
    monkeypatch.setenv("HEADWATER_DATABASE_URL", url)
    get_settings.cache_clear()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0

    first = runner.invoke(cli, ["demo"])
    assert first.exit_code == 0, first.output
    assert "spark cluster demo-spark-local registered" in first.output
    assert f"Job {DEMO_JOB_ID}: SUCCEEDED in" in first.output, first.output
    if list(REPO.glob(".venv-flink/lib/python3*/site-packages/pyflink/bin/flink")):
        assert "flink cluster demo-flink-local registered" in first.output
    rows = pq.read_table(str(data_dir / "demo-jobs" / "title_daily_views")).to_pylist()
    assert {(r["ds"], r["country"]) for r in rows} == {("2026-03-01", "US"), ("2026-03-01", "BR"), ("2026-03-01", "DE")}
    assert all(r["unique_profiles"] == 1 and r["hours_viewed"] > 0 for r in rows)

    app = create_app(Settings(database_url=url, data_dir=data_dir), prepare=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://headwater.test") as client:
        job = (await client.get(f"/api/v1/jobs/{DEMO_JOB_ID}")).json()
        assert job["status"] == "SUCCEEDED" and job["status_message"] == "exit code 0", job
        graph = (
            await client.get(
                "/api/v1/lineage/graph",
                params={
                    "namespace": "hive://metastore.internal:9083",
                    "name": "analytics.title_daily_views",
                    "field": "hours_viewed",
                    "direction": "upstream",
                    "origin": "sql",
                },
            )
        ).json()
    # The job's SQL, resolved against the catalog: the Iceberg table in, the Hive table out, on the job's run.
    ours = [e for e in graph["edges"] if e["last_run_id"] == job["run_id"]]
    assert {(e["source"], e["subtype"]) for e in ours} >= {
        ("iceberg://warehouse/curated.viewing_sessions#watched_ms", "AGGREGATION"),
        ("iceberg://warehouse/curated.viewing_sessions#session_start", "FILTER"),
    }
    assert {e["job"] for e in ours} == {"headwater/demo-title-daily-views"}

    second = runner.invoke(cli, ["demo"])
    assert second.exit_code == 0, second.output
    assert "spark cluster demo-spark-local already registered" in second.output
    assert "ran in an earlier demo (SUCCEEDED); not run again" in second.output


def test_without_spark_the_demo_says_so_and_runs_nothing(engine: Engine, session: Session, tmp_path: Path) -> None:
    settings = Settings(database_url=str(engine.url), data_dir=tmp_path)
    said: list[str] = []
    absent = DemoEngines(spark=False, spark_note="pyspark is not installed", flink_home=None, flink_note="no Flink")
    report = run_demo_jobs(
        make_sessionmaker(engine), settings, warehouse_root=tmp_path / "warehouse", say=said.append, engines=absent
    )
    assert report.clusters == [] and report.job_id is None and said == []
    assert report.notes == [
        "no Spark cluster: pyspark is not installed",
        "no Flink cluster: no Flink",
        "the daily Spark aggregation was not run (no Spark)",
    ]
    assert session.scalar(select(Cluster.id)) is None and session.scalar(select(Job.pk)) is None


def test_without_a_live_warehouse_spark_is_registered_but_no_job_runs(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    settings = Settings(database_url=str(engine.url), data_dir=tmp_path)
    present = DemoEngines(spark=True, spark_note=None, flink_home=None, flink_note="no Flink")
    factory = make_sessionmaker(engine)
    for _ in range(2):  # registering is idempotent
        report = run_demo_jobs(factory, settings, warehouse_root=None, say=lambda _m: None, engines=present)
    assert report.clusters == ["demo-spark-local"] and report.job_id is None
    assert "the lake is not a live warehouse" in report.notes[-1]
    assert sorted(session.scalars(select(Command.name))) == ["demo-spark-sql", "demo-spark-submit"]
    assert session.scalar(select(Job.pk)) is None
