"""Imports every domain's ORM models so that ``Base.metadata`` holds the whole schema (for Alembic)."""

from __future__ import annotations

from headwater.catalog import models as catalog_models

__all__ = ["catalog_models"]
