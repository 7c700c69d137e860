"""The catalog: sources, datasets, fields, schema history and the change-event outbox."""
