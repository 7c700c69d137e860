"""The demo platform's lineage: Kafka -> Flink -> raw/curated Iceberg -> Spark -> Hive analytics, loaded idempotently."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from headwater.demo import load_demo
from headwater.demo.lineage import DEMO_LINEAGE_EVENTS
from headwater.demo.names import HIVE_NAMESPACE, ICEBERG_NAMESPACE, KAFKA_NAMESPACE
from headwater.lineage.graph import graph_around, impact, resolve_node
from headwater.lineage.models import ColumnEdge, LineageEvent


def test_demo_lineage_spans_the_platform_and_loads_once(session: Session) -> None:
    load_demo(session)
    warnings = session.scalars(select(LineageEvent.warnings)).all()
    assert len(warnings) == len(DEMO_LINEAGE_EVENTS) and all(w == [] for w in warnings)
    edges = session.scalar(select(func.count()).select_from(ColumnEdge))

    result = impact(
        session, node=resolve_node(session, namespace=KAFKA_NAMESPACE, name="playback.stop", field_path="watched_ms")
    )
    reached = {(c.name, c.field): c.distance for c in result.columns}
    assert reached[("raw.playback_events", "watched_ms")] == 1
    assert reached[("curated.viewing_sessions", "watched_ms")] == 2
    assert reached[("analytics.title_daily_views", "hours_viewed")] == 3  # found by parsing the job's Spark SQL
    assert {"team:content-analytics", "team:experimentation-platform"} <= {o.owner for o in result.owners}
    assert "daily_analytics.title_daily_views" in {j.name for j in result.jobs}

    # The SQL-derived edges say so.
    upstream = graph_around(
        session,
        node=resolve_node(
            session,
            namespace=HIVE_NAMESPACE,
            name="analytics.content_completion_rates",
            field_path="median_watched_pct",
        ),
        direction="upstream",
        depth=1,
    )
    direct = {(e.source.rsplit("/", 1)[1], e.origin) for e in upstream.edges if e.transformation_type == "DIRECT"}
    assert direct == {
        ("curated.viewing_sessions#watched_ms", "sql"),
        ("curated.title_catalog#runtime_ms", "sql"),
    }
    indirect = {(e.source.rsplit("#", 1)[1], e.subtype) for e in upstream.edges if e.transformation_type == "INDIRECT"}
    assert {("title_id", "JOIN"), ("device_type", "GROUP_BY")} <= indirect
    # bitrate was renamed bitrate_kbps in raw.playback_events' schema history; lineage follows the current name.
    sessions = graph_around(
        session,
        node=resolve_node(
            session, namespace=ICEBERG_NAMESPACE, name="curated.viewing_sessions", field_path="avg_bitrate_kbps"
        ),
        direction="upstream",
    )
    assert f"{ICEBERG_NAMESPACE}/raw.playback_events#bitrate_kbps" in {n.path[-1] for n in sessions.nodes if n.path}

    load_demo(session)
    assert session.scalar(select(func.count()).select_from(LineageEvent)) == len(DEMO_LINEAGE_EVENTS)
    assert session.scalar(select(func.count()).select_from(ColumnEdge)) == edges
