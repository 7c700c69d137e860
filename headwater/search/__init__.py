"""Discovery search over the catalog: embedded full-text and Elasticsearch (issue 6; not built yet)."""
