"""Column-level lineage: OpenLineage ingestion (``ingest``, a package read stage by stage), SQL lineage with sqlglot
(``sql``) and recorded (``analyse``), edges declared by hand (``manual``), bounded graph queries (``graph``), reads
of runs and the event log (``runs``) and REST routes."""

from __future__ import annotations

from headwater.lineage.analyse import analyse_sql
from headwater.lineage.graph import graph_around, impact, path_between, resolve_node
from headwater.lineage.ingest import ingest_events
from headwater.lineage.runs import get_run, list_events, runs_by_uuid
from headwater.lineage.sql import lineage_of_sql

__all__ = [
    "analyse_sql",
    "get_run",
    "graph_around",
    "impact",
    "ingest_events",
    "lineage_of_sql",
    "list_events",
    "path_between",
    "resolve_node",
    "runs_by_uuid",
]
