"""Column-level lineage of the demo platform, sent through the same OpenLineage ingestion as real producers.

Kafka playback, UI and telemetry topics are landed by Flink jobs into raw Iceberg tables; a Flink job
sessionises playback into ``curated.viewing_sessions``; a Spark application (one parent run, one child run
per table) builds the daily Hive analytics tables. The Flink jobs state their column lineage in
``columnLineage`` facets; two Spark jobs carry only their SQL (``sql`` job facet), which Headwater parses
against the catalog; the experiment job states its lineage explicitly (it explodes an array, which the
SQL analysis does not follow). Run ids and event times are fixed, so loading again adds nothing: every
event is recognised as a duplicate.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from headwater.demo.names import HIVE_NAMESPACE, ICEBERG_NAMESPACE, KAFKA_NAMESPACE
from headwater.lineage.ingest import IngestResult, ingest_events

__all__ = ["DEMO_LINEAGE_EVENTS", "TITLE_DAILY_VIEWS_SQL", "demo_lineage_events", "load_demo_lineage"]

FLINK_PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.30.0/integration/flink"
SPARK_PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.30.0/integration/spark"
_IDS = uuid.UUID("6d1c9a52-53a4-4d57-9a1e-0c1a3cf4de11")  # namespace of the demo's deterministic run ids
_DAY = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)

Column = tuple[str, str, str]  # namespace, dataset, field
Inputs = Sequence[tuple[Column, str, str]]  # input column, type, subtype

_ENVELOPE = [
    "event_id",
    "event_ts",
    "member_id",
    "profile_id",
    "session_id",
    "title_id",
    "device",
    "device.type",
    "device.os.version",
    "geo",
    "geo.country",
    "ip_address",
    "experiments",
]
_PLAYBACK = ("playback.play", "playback.pause", "playback.stop", "playback.seek")


def _time(hours: float) -> str:
    return (_DAY + dt.timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def _run_id(name: str) -> str:
    return str(uuid.uuid5(_IDS, name))


def _facet(fields: dict[str, Inputs], dataset_wide: Inputs = ()) -> dict[str, Any]:
    def field(column: Column, kind: str, subtype: str) -> dict[str, Any]:
        return {
            "namespace": column[0],
            "name": column[1],
            "field": column[2],
            "transformations": [{"type": kind, "subtype": subtype}],
        }

    return {
        "_producer": FLINK_PRODUCER,
        "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json",
        "fields": {out: {"inputFields": [field(*i) for i in inputs]} for out, inputs in fields.items()},
        "dataset": [field(*i) for i in dataset_wide],
    }


def _ds(namespace: str, name: str, **facets: Any) -> dict[str, Any]:
    return {"namespace": namespace, "name": name, "facets": facets}


def _run(
    job: str,
    namespace: str,
    *,
    start: float,
    minutes: float,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    producer: str,
    sql: str | None = None,
    parent: tuple[str, str] | None = None,
    processing: str = "BATCH",
) -> list[dict[str, Any]]:
    """START and COMPLETE events of one run."""
    run_facets: dict[str, Any] = {}
    if parent:
        run_facets["parent"] = {
            "_producer": producer,
            "_schemaURL": "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json",
            "run": {"runId": _run_id(parent[0])},
            "job": {"namespace": parent[1], "name": parent[0]},
        }
    job_facets: dict[str, Any] = {
        "jobType": {
            "_producer": producer,
            "_schemaURL": "https://openlineage.io/spec/facets/2-0-3/JobTypeJobFacet.json",
            "processingType": processing,
            "integration": "FLINK" if "flink" in producer else "SPARK",
            "jobType": "JOB",
        }
    }
    if sql:
        job_facets["sql"] = {
            "_producer": producer,
            "_schemaURL": "https://openlineage.io/spec/facets/1-1-0/SQLJobFacet.json",
            "query": sql,
            "dialect": "flink" if "flink" in producer else "spark",
        }
    events = []
    for event_type, hours in (("START", start), ("COMPLETE", start + minutes / 60)):
        events.append(
            {
                "eventType": event_type,
                "eventTime": _time(hours),
                "producer": producer,
                "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                "run": {"runId": _run_id(job), "facets": run_facets},
                "job": {"namespace": namespace, "name": job, "facets": job_facets},
                "inputs": inputs,
                "outputs": outputs if event_type == "COMPLETE" else [],
            }
        )
    return events


def _identity(source_ns: str, sources: Sequence[str], columns: Sequence[str]) -> dict[str, Inputs]:
    return {c: [((source_ns, s, c), "DIRECT", "IDENTITY") for s in sources] for c in columns}


def _flink_landing() -> list[dict[str, Any]]:
    playback = _identity(KAFKA_NAMESPACE, _PLAYBACK, _ENVELOPE)
    playback["position_ms"] = [((KAFKA_NAMESPACE, t, "position_ms"), "DIRECT", "IDENTITY") for t in _PLAYBACK[:3]]
    playback["bitrate_kbps"] = [((KAFKA_NAMESPACE, "playback.play", "bitrate_kbps"), "DIRECT", "IDENTITY")]
    playback["watched_ms"] = [((KAFKA_NAMESPACE, "playback.stop", "watched_ms"), "DIRECT", "IDENTITY")]
    playback["reason"] = [((KAFKA_NAMESPACE, t, "reason"), "DIRECT", "IDENTITY") for t in _PLAYBACK[1:3]]
    playback["network"] = [((KAFKA_NAMESPACE, t, "network"), "DIRECT", "IDENTITY") for t in _PLAYBACK[:2]]
    ui_columns = ["event_id", "event_ts", "member_id", "profile_id", "page", "action", "target", "search_query"]
    ui_columns += ["device", "geo", "experiments", "context"]
    telemetry = ["event_id", "event_ts", "member_id", "device", "network", "metrics", "errors", "attributes"]
    landing = [
        ("land_playback_events", list(_PLAYBACK), "raw.playback_events", playback),
        (
            "land_ui_interactions",
            ["ui.interactions"],
            "raw.ui_interactions",
            _identity(KAFKA_NAMESPACE, ["ui.interactions"], ui_columns),
        ),
        (
            "land_device_telemetry",
            ["device.telemetry"],
            "raw.device_telemetry",
            _identity(KAFKA_NAMESPACE, ["device.telemetry"], telemetry),
        ),
    ]
    events: list[dict[str, Any]] = []
    for index, (job, topics, table, fields) in enumerate(landing):
        events += _run(
            job,
            "flink://streaming",
            start=index * 0.1,
            minutes=5,
            inputs=[_ds(KAFKA_NAMESPACE, t) for t in topics],
            outputs=[_ds(ICEBERG_NAMESPACE, table, columnLineage=_facet(fields))],
            producer=FLINK_PRODUCER,
            processing="STREAMING",
        )
    return events


_SESSIONISE_SQL = """
INSERT INTO curated.viewing_sessions
SELECT session_id, member_id, profile_id, title_id,
       SESSION_START(event_ts, INTERVAL '30' MINUTE) AS session_start,
       SESSION_END(event_ts, INTERVAL '30' MINUTE) AS session_end,
       SUM(watched_ms) AS watched_ms, MAX(position_ms) AS max_position_ms,
       MAX(position_ms) >= 0.95 * MAX(position_ms) AS completed,
       CAST(AVG(bitrate_kbps) AS INT) AS avg_bitrate_kbps,
       COUNT(CASE WHEN reason = 'buffering' THEN 1 END) AS rebuffer_count,
       COUNT(CASE WHEN event_type = 'seek' THEN 1 END) AS seek_count,
       device.type AS device_type, geo.country AS country, experiments
FROM raw.playback_events
GROUP BY session_id, member_id, profile_id, title_id, device.type, geo.country, experiments,
         SESSION(event_ts, INTERVAL '30' MINUTE)
"""


def _flink_sessionisation() -> list[dict[str, Any]]:
    raw = (ICEBERG_NAMESPACE, "raw.playback_events")

    def col(name: str, subtype: str = "IDENTITY", kind: str = "DIRECT") -> tuple[Column, str, str]:
        return (raw[0], raw[1], name), kind, subtype

    fields: dict[str, Inputs] = {
        "session_id": [col("session_id")],
        "member_id": [col("member_id")],
        "profile_id": [col("profile_id")],
        "title_id": [col("title_id")],
        "session_start": [col("event_ts", "AGGREGATION")],
        "session_end": [col("event_ts", "AGGREGATION")],
        "watched_ms": [col("watched_ms", "AGGREGATION")],
        "max_position_ms": [col("position_ms", "AGGREGATION")],
        "completed": [col("position_ms", "TRANSFORMATION")],
        "avg_bitrate_kbps": [col("bitrate_kbps", "AGGREGATION")],
        "rebuffer_count": [col("reason", "CONDITIONAL", "INDIRECT")],
        "seek_count": [col("event_type", "CONDITIONAL", "INDIRECT")],
        "device_type": [col("device.type")],
        "country": [col("geo.country")],
        "experiments": [col("experiments")],
    }
    dataset_wide = [col("session_id", "GROUP_BY", "INDIRECT"), col("event_ts", "WINDOW", "INDIRECT")]
    return _run(
        "sessionise_viewing",
        "flink://streaming",
        start=1,
        minutes=10,
        inputs=[_ds(*raw)],
        outputs=[_ds(ICEBERG_NAMESPACE, "curated.viewing_sessions", columnLineage=_facet(fields, dataset_wide))],
        producer=FLINK_PRODUCER,
        sql=_SESSIONISE_SQL.strip(),
        processing="STREAMING",
    )


# The Spark job the demo registers runs this same statement (headwater/demo/jobs.py).
TITLE_DAILY_VIEWS_SQL = """
INSERT OVERWRITE TABLE analytics.title_daily_views
SELECT date_format(session_start, 'yyyy-MM-dd') AS ds, title_id, country,
       COUNT(CASE WHEN watched_ms >= 120000 THEN 1 END) AS views,
       COUNT(DISTINCT profile_id) AS unique_profiles,
       SUM(watched_ms) / 3600000.0 AS hours_viewed
FROM curated.viewing_sessions
WHERE session_start >= '2026-03-01' AND session_start < '2026-03-02'
GROUP BY date_format(session_start, 'yyyy-MM-dd'), title_id, country
"""

_COMPLETION_RATES_SQL = """
INSERT OVERWRITE TABLE analytics.content_completion_rates
SELECT date_format(s.session_start, 'yyyy-MM-dd') AS ds, s.title_id, s.device_type,
       COUNT(*) AS starts,
       SUM(CASE WHEN s.completed THEN 1 ELSE 0 END) AS completions,
       SUM(CASE WHEN s.completed THEN 1 ELSE 0 END) / COUNT(*) AS completion_rate,
       percentile_approx(s.watched_ms / t.runtime_ms, 0.5) AS median_watched_pct
FROM curated.viewing_sessions s JOIN curated.title_catalog t ON s.title_id = t.title_id
GROUP BY date_format(s.session_start, 'yyyy-MM-dd'), s.title_id, s.device_type
"""


def _spark_daily() -> list[dict[str, Any]]:
    app, namespace = "daily_analytics", "spark://analytics"
    sessions = _ds(ICEBERG_NAMESPACE, "curated.viewing_sessions")
    events = _run(app, namespace, start=3, minutes=40, inputs=[], outputs=[], producer=SPARK_PRODUCER)
    start, complete = events
    children: list[dict[str, Any]] = []
    children += _run(
        f"{app}.title_daily_views",
        namespace,
        start=3.05,
        minutes=10,
        inputs=[sessions],
        outputs=[_ds(HIVE_NAMESPACE, "analytics.title_daily_views")],
        producer=SPARK_PRODUCER,
        sql=TITLE_DAILY_VIEWS_SQL.strip(),
        parent=(app, namespace),
    )
    children += _run(
        f"{app}.content_completion_rates",
        namespace,
        start=3.25,
        minutes=10,
        inputs=[sessions, _ds(ICEBERG_NAMESPACE, "curated.title_catalog")],
        outputs=[_ds(HIVE_NAMESPACE, "analytics.content_completion_rates")],
        producer=SPARK_PRODUCER,
        sql=_COMPLETION_RATES_SQL.strip(),
        parent=(app, namespace),
    )
    vs, ui = (ICEBERG_NAMESPACE, "curated.viewing_sessions"), (ICEBERG_NAMESPACE, "raw.ui_interactions")
    experiment_fields: dict[str, Inputs] = {
        "ds": [((*vs, "session_start"), "DIRECT", "TRANSFORMATION")],
        "test_id": [((*vs, "experiments.element.test_id"), "DIRECT", "IDENTITY")],
        "cell": [((*vs, "experiments.element.cell"), "DIRECT", "IDENTITY")],
        "allocated_profiles": [((*vs, "profile_id"), "DIRECT", "AGGREGATION")],
        "metrics": [((*vs, "watched_ms"), "DIRECT", "AGGREGATION"), ((*ui, "action"), "DIRECT", "AGGREGATION")],
        "vs_control": [((*vs, "watched_ms"), "DIRECT", "AGGREGATION")],
    }
    children += _run(
        f"{app}.ab_experiment_metrics",
        namespace,
        start=3.45,
        minutes=10,
        inputs=[sessions, _ds(*ui)],
        outputs=[
            _ds(
                HIVE_NAMESPACE,
                "analytics.ab_experiment_metrics",
                columnLineage=_facet(experiment_fields, [((*ui, "profile_id"), "INDIRECT", "JOIN")]),
            )
        ],
        producer=SPARK_PRODUCER,
        parent=(app, namespace),
    )
    return [start, *children, complete]


def demo_lineage_events() -> list[dict[str, Any]]:
    """Every OpenLineage event of the demo platform, oldest first."""
    return [*_flink_landing(), *_flink_sessionisation(), *_spark_daily()]


DEMO_LINEAGE_EVENTS = demo_lineage_events()


def load_demo_lineage(session: Session, *, progress: Callable[[str], None] | None = None) -> IngestResult:
    """Ingest the demo's lineage events (idempotent: a second load finds them all already logged)."""
    result = ingest_events(session, documents=DEMO_LINEAGE_EVENTS)
    if progress:
        progress(f"lineage: {result.applied} event(s) applied, {result.duplicates} already known")
    return result
