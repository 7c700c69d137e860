"""A large catalog, loaded fast: ``count`` datasets of a few fields each, with tags and owners, written through
:func:`headwater.catalog.bulk.create_datasets` (what a first sync does) a thousand at a time.

Shared by the benchmarks that need 100,000 datasets and do not measure loading them.
"""

from __future__ import annotations

import random

from sqlalchemy import text

from headwater import migrations
from headwater.catalog.bulk import create_datasets
from headwater.catalog.fields import FlatField
from headwater.catalog.models import DatasetOwner, DatasetTag
from headwater.catalog.snapshots import DatasetSnapshot
from headwater.catalog.sources import ensure_manual_source
from headwater.db import bulk_insert, create_db_engine, make_sessionmaker, session_scope

__all__ = ["seed_catalog"]

DOMAINS = ("sales", "billing", "Marketing", "growth", "logistics", "support", "identity", "risk", "inventory", "ads")
ENTITIES = ("orders", "customers", "invoices", "sessions", "shipments", "tickets", "accounts", "events", "payments")
TAGS = ("gold", "silver", "bronze", "certified", "pii", "gdpr", "daily", "hourly", "finance", "core")
OWNERS = ("data-platform", "finance-analytics", "growth-eng", "alice@example.com", "bob@example.com")
PAGE = 1000


def _snapshot(rng: random.Random, i: int) -> DatasetSnapshot:
    domain, entity = rng.choice(DOMAINS), rng.choice(ENTITIES)
    fields = [FlatField(path=f"col_{k}", name=f"col_{k}", type="string", field_id=k + 1) for k in range(5)]
    return DatasetSnapshot(
        namespace="manual",
        name=f"{domain}.{entity}_{i:06d}" if i % 3 else f"{domain}_{entity}.v{i}",
        fields=fields,
        description=f"The {entity} of {domain}, snapshot {i}.",
    )


def seed_catalog(url: str, count: int, *, seed: int = 18) -> None:
    """Migrate ``url`` and load ``count`` datasets into its manual source (then ANALYZE it)."""
    migrations.upgrade(url)
    engine = create_db_engine(url)
    factory = make_sessionmaker(engine)
    rng = random.Random(seed)
    try:
        for start in range(0, count, PAGE):
            with session_scope(factory) as session:
                source = ensure_manual_source(session)
                snapshots = [_snapshot(rng, i) for i in range(start, min(count, start + PAGE))]
                created = create_datasets(session, source=source, snapshots=snapshots)
                tags = {(c.id, tag) for c in created for tag in rng.sample(TAGS, rng.randint(0, 2))}
                bulk_insert(session, DatasetTag, [{"dataset_id": d, "tag": t} for d, t in sorted(tags)])
                owners = [{"dataset_id": c.id, "owner": rng.choice(OWNERS), "role": "technical_owner"} for c in created]
                bulk_insert(session, DatasetOwner, owners)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    finally:
        engine.dispose()
