"""Imports every domain's ORM models so that ``Base.metadata`` holds the whole schema (for Alembic)."""

from __future__ import annotations

from headwater.auth import models as auth_models
from headwater.catalog import answers as catalog_answers
from headwater.catalog import models as catalog_models
from headwater.catalog import sync_models as catalog_sync_models
from headwater.jobs import models as jobs_models
from headwater.lineage import models as lineage_models
from headwater.search import models as search_models

__all__ = [
    "auth_models",
    "catalog_answers",
    "catalog_models",
    "catalog_sync_models",
    "jobs_models",
    "lineage_models",
    "search_models",
]
