"""Column-level lineage: OpenLineage ingestion, SQL lineage and impact queries (issue 4; not built yet)."""
