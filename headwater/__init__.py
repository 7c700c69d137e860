"""Headwater: one metadata service for data platforms (catalog, lineage, jobs, search)."""

__version__ = "0.1.0"
