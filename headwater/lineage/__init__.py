"""Column-level lineage: OpenLineage ingestion (``ingest``), catalog dataset matching (``datasets``), SQL
lineage with sqlglot (``sql``), bounded graph queries (``graph``), reads (``service``) and REST routes."""

from __future__ import annotations

from headwater.lineage.graph import graph_around, impact, path_between, resolve_node
from headwater.lineage.ingest import ingest_events
from headwater.lineage.sql import lineage_of_sql

__all__ = ["graph_around", "impact", "ingest_events", "lineage_of_sql", "path_between", "resolve_node"]
