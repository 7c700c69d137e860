"""The demo's job engines and its one real job.

``headwater demo`` registers a local Spark cluster (with ``spark-submit`` and ``spark-sql`` commands) when
pyspark is installed, and a local Flink cluster (``flink`` and ``flink-sql`` commands, its configuration bound to
127.0.0.1) when a Flink installation is found (``$FLINK_HOME``, else the ``.venv-flink`` that ``make flink``
builds). With Spark and the live Iceberg warehouse, it then runs the demo's daily Spark aggregation,
``analytics.title_daily_views`` from ``curated.viewing_sessions``, as a real ``spark-sql`` job through the
job queue: the SQL (the same statement the demo's lineage shows) travels as an attachment, reads the
warehouse's Parquet data files, writes Parquet under the data directory, and its column lineage lands on the
job's run. The job has a fixed id, so loading the demo again reports the earlier run instead of running it again.

Nothing here may make the demo fail: a missing engine, or a job that fails or runs out of time, is reported
with the reason and the demo carries on.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from headwater.db import session_scope
from headwater.demo.lineage import TITLE_DAILY_VIEWS_SQL
from headwater.errors import Conflict, NotFound
from headwater.jobs import access, service
from headwater.jobs.engines import EngineError, find_flink_home, find_spark_submit, write_local_flink_conf
from headwater.jobs.models import FINAL_STATUSES, ClusterType
from headwater.jobs.schemas import ClusterCreate, ClusterUpdate, CommandCreate, JobSubmit
from headwater.settings import Settings

__all__ = [
    "DEMO_JOB_ID",
    "DemoEngines",
    "DemoJobsReport",
    "find_demo_engines",
    "register_demo_engines",
    "run_demo_jobs",
]

SPARK_CLUSTER = "demo-spark-local"
FLINK_CLUSTER = "demo-flink-local"
DEMO_JOB_ID = "demo-title-daily-views-2026-03-01"
SQL_FILE = "title_daily_views.sql"
_REPO = Path(__file__).resolve().parents[2]
_COMMANDS = {
    ClusterType.SPARK: (("demo-spark-submit", "spark-submit"), ("demo-spark-sql", "spark-sql")),
    ClusterType.FLINK: (("demo-flink", "flink"), ("demo-flink-sql", "flink-sql")),
}


@dataclass(frozen=True)
class DemoEngines:
    """The engines this machine can run, or why not."""

    spark: bool
    spark_note: str | None
    flink_home: Path | None
    flink_note: str | None


@dataclass
class DemoJobsReport:
    """What the demo did with engines and its job."""

    clusters: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    job_id: str | None = None
    job_status: str | None = None
    job_message: str | None = None
    seconds: float | None = None
    output: Path | None = None


def find_demo_engines() -> DemoEngines:
    """Spark when pyspark (and Java) are installed; Flink from ``$FLINK_HOME`` or a ``.venv-flink`` nearby."""
    spark, spark_note = False, None
    if importlib.util.find_spec("pyspark") is None:
        spark_note = "pyspark is not installed (pip install pyspark)"
    elif shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        spark_note = "no java on PATH and no JAVA_HOME (Spark needs Java 17)"
    else:
        try:
            find_spark_submit({}, "spark-sql")
            spark = True
        except EngineError as exc:
            spark_note = str(exc)
    flink_home, flink_note = None, None
    try:
        flink_home = find_flink_home()
    except EngineError:
        for root in dict.fromkeys((Path.cwd(), _REPO)):
            homes = sorted(root.glob(".venv-flink/lib/python3*/site-packages/pyflink"), reverse=True)
            flink_home = next((home for home in homes if (home / "bin" / "flink").is_file()), None)
            if flink_home is not None:
                break
        if flink_home is None:
            flink_note = "no Flink installation: set FLINK_HOME, or run `make flink` to build .venv-flink"
    return DemoEngines(spark=spark, spark_note=spark_note, flink_home=flink_home, flink_note=flink_note)


def _ensure_cluster(session: Session, name: str, kind: ClusterType, config: dict[str, Any]) -> bool:
    """Create the cluster, or keep the one an earlier demo made (following a moved installation); True if created."""
    try:
        cluster = service.get_cluster(session, name=name)
    except NotFound:
        tags = ["demo", f"engine:{kind.value}", "sched:local"]
        data = ClusterCreate(name=name, type=kind, tags=tags, config=config, max_concurrent_jobs=2)
        service.create_cluster(session, data=data)
        return True
    if cluster.type != kind.value:
        raise Conflict(
            f"cluster {name!r} exists as a {cluster.type} cluster; the demo needs a {kind.value} cluster by that name. "
            "Delete or rename it, then load the demo again",
            detail={"field": "name", "cluster": name},
        )
    if dict(cluster.config or {}) != config:  # the data directory or the installation moved
        service.update_cluster(session, name=name, data=ClusterUpdate(config=config))
    return False


def _ensure_command(session: Session, name: str, program: str, kind: ClusterType) -> None:
    try:
        service.get_command(session, name=name)
    except NotFound:
        data = CommandCreate(
            name=name,
            executable=[program],
            tags=[f"type:{program}", "demo"],
            cluster_criteria=[[f"engine:{kind.value}"]],
        )
        service.create_command(session, data=data)


def register_demo_engines(
    session: Session, *, engines: DemoEngines, data_dir: Path, report: DemoJobsReport, say: Callable[[str], None]
) -> None:
    """Register the local clusters and commands of the engines found; flushes only."""
    clusters: list[tuple[str, ClusterType, dict[str, Any]]] = []
    if engines.spark:
        conf = {
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.shuffle.partitions": "2",
            # The demo's tables live in the job's script: no Hive metastore (Derby) to start for each run.
            "spark.sql.catalogImplementation": "in-memory",
        }
        clusters.append((SPARK_CLUSTER, ClusterType.SPARK, {"master": "local[2]", "conf": conf}))
    else:
        report.notes.append(f"no Spark cluster: {engines.spark_note}")
    if engines.flink_home is not None:
        conf_dir = write_local_flink_conf(engines.flink_home, data_dir / "flink-conf")
        config = {"flink_home": str(engines.flink_home), "conf_dir": str(conf_dir)}
        clusters.append((FLINK_CLUSTER, ClusterType.FLINK, config))
    else:
        report.notes.append(f"no Flink cluster: {engines.flink_note}")
    for name, kind, config in clusters:
        created = _ensure_cluster(session, name, kind, config)
        for command, program in _COMMANDS[kind]:
            _ensure_command(session, command, program, kind)
        report.clusters.append(name)
        say(f"{kind.value} cluster {name} {'registered' if created else 'already registered'}")
    session.flush()


def _sql_literal(value: Path) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def demo_job_sql(warehouse_root: Path, output: Path) -> str:
    """The job's script: Spark tables over the warehouse's Parquet files and the output, then the aggregation."""
    sessions = warehouse_root / "warehouse" / "curated" / "viewing_sessions" / "data"
    return (
        "CREATE DATABASE IF NOT EXISTS curated;\n"
        "CREATE DATABASE IF NOT EXISTS analytics;\n"
        # The Iceberg table's data files, read as plain Parquet: Iceberg's Spark runtime is not installed here.
        f"CREATE TABLE IF NOT EXISTS curated.viewing_sessions USING parquet\n"
        f"  OPTIONS (path {_sql_literal(sessions)}, recursiveFileLookup 'true');\n"
        "CREATE TABLE IF NOT EXISTS analytics.title_daily_views\n"
        "  (ds STRING, title_id BIGINT, country STRING, views BIGINT, unique_profiles BIGINT, hours_viewed DOUBLE)\n"
        f"  USING parquet LOCATION {_sql_literal(output)};\n"
        f"{TITLE_DAILY_VIEWS_SQL.strip()};\n"
    )


def _submit(session: Session, sql: str) -> tuple[str, str | None]:
    """Submit the demo job, or find the one an earlier demo submitted: (status, message)."""
    data = JobSubmit(
        id=DEMO_JOB_ID,
        name="demo-title-daily-views",
        user="demo",
        description="The demo's daily Spark aggregation: analytics.title_daily_views from curated.viewing_sessions.",
        tags=["demo", "daily"],
        command_args=["-f", SQL_FILE],
        cluster_criteria=[["engine:spark", "sched:local"]],
        command_criteria=["type:spark-sql"],
        timeout=600,
    )
    try:
        submitter = access.trusted_submitter("demo")
        job = service.submit_job(session, data=data, submitter=submitter, attachments=[(SQL_FILE, sql.encode())])
    except Conflict:
        job = service.get_job(session, job_id=DEMO_JOB_ID)
    return job.status, job.status_message


def run_demo_jobs(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    warehouse_root: Path | None,
    say: Callable[[str], None],
    engines: DemoEngines | None = None,
    timeout: float = 300.0,
) -> DemoJobsReport:
    """Register the demo's engines and run its Spark job (when Spark and the live warehouse are there)."""
    from headwater.jobs.worker import JobWorker

    engines = engines or find_demo_engines()
    report = DemoJobsReport()
    with session_scope(factory) as session:
        register_demo_engines(session, engines=engines, data_dir=settings.data_dir, report=report, say=say)
    if not engines.spark:
        report.notes.append("the daily Spark aggregation was not run (no Spark)")
        return report
    if warehouse_root is None:
        report.notes.append("the daily Spark aggregation was not run: the lake is not a live warehouse")
        return report
    report.job_id = DEMO_JOB_ID
    report.output = settings.data_dir / "demo-jobs" / "title_daily_views"
    with session_scope(factory) as session:
        status, message = _submit(session, demo_job_sql(warehouse_root, report.output))
    if status in {s.value for s in FINAL_STATUSES}:
        report.job_status, report.job_message = status, message
        report.notes.append(f"job {DEMO_JOB_ID} ran in an earlier demo ({status}); not run again")
        return report
    say(f"running job {DEMO_JOB_ID} (spark-sql on {SPARK_CLUSTER}; takes about 20 s)")
    worker = JobWorker.from_settings(factory, settings, slots=1)
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            worker.run_once()
            with session_scope(factory) as session:
                job = service.get_job(session, job_id=DEMO_JOB_ID)
                status, message = job.status, job.status_message
            if status in {s.value for s in FINAL_STATUSES}:
                break
            time.sleep(0.2)
    finally:
        worker.shutdown(reason=f"the demo stopped waiting after {timeout:.0f} s")  # no-op when it ended
    with session_scope(factory) as session:
        job = service.get_job(session, job_id=DEMO_JOB_ID)
        report.job_status, report.job_message = job.status, job.status_message
    report.seconds = time.monotonic() - started
    return report


def run_demo_jobs_cli(settings: Settings, *, warehouse_root: Path | None, say: Callable[[str], None]) -> None:
    """``headwater demo``'s engines and job on the configured database, and the lines it prints about them."""
    from headwater.db import create_db_engine, make_sessionmaker

    engine = create_db_engine(settings.resolved_database_url, prepared_statements=settings.db_prepared_statements)
    try:
        report = run_demo_jobs(make_sessionmaker(engine), settings, warehouse_root=warehouse_root, say=say)
    finally:
        engine.dispose()
    if report.clusters:
        say(f"Job engines: local cluster(s) {', '.join(report.clusters)}.")
    for note in report.notes:
        say(f"Jobs: {note}.")
    if report.job_id and report.seconds is not None:
        say(
            f"Job {report.job_id}: {report.job_status} in {report.seconds:.0f} s ({report.job_message}); "
            f"output in {report.output}; status, logs and lineage at /api/v1/jobs/{report.job_id}."
        )
