"""The search UI for people (not built yet)."""
