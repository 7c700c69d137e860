"""Outbox retention: rows every consumer has passed go after the floor, all but the newest after the ceiling; a cache
behind the trim empties itself and the change feed refuses a position behind it (the search indexer's resync is in
tests/search/test_search_retention.py, lineage's tables in tests/lineage/test_lineage_retention.py)."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from headwater.catalog import service
from headwater.catalog.cache import DatasetCache, OutboxPoller
from headwater.catalog.events import trimmed_through
from headwater.catalog.models import ChangeEvent
from headwater.catalog.schemas import DatasetCreate, DatasetUpdate
from headwater.db import make_sessionmaker, session_scope, utcnow
from headwater.retention import RetentionPolicy, run_retention

pytestmark = pytest.mark.anyio

MONTH = dt.timedelta(days=30)


def test_a_cache_behind_the_outbox_trim_empties_itself(engine: Engine, session: Session) -> None:
    """(``session`` empties the tables afterwards.)"""
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        first = service.register_dataset(s, data=DatasetCreate(name="t1")).id
    cache = DatasetCache(max_bytes=1 << 20)
    poller = OutboxPoller(engine=engine, cache=cache, interval=60)
    poller.poll_once()  # takes the current position
    cache.put(first, cache.generation(), '"1.1"', b"{}")
    # While this poller is not reading (a process stopped for weeks), the dataset changes and more happens after.
    with session_scope(factory) as s:
        service.update_dataset_metadata(
            s, dataset_id=first, data=DatasetUpdate(description="x"), expected_revision=None
        )
    with session_scope(factory) as s:
        service.register_dataset(s, data=DatasetCreate(name="t2"))
    report = run_retention(factory, RetentionPolicy(events=None, runs=None), now=utcnow() + 2 * MONTH)
    assert report.changes >= 1 and report.outbox_through > (poller.position or 0)

    poller.poll_once()

    # The update's change event was removed unread: only emptying the cache keeps it exact.
    assert cache.get(first) is None
    assert poller.position is not None and poller.position >= report.outbox_through


async def test_the_change_feed_refuses_a_position_behind_the_trim(client: httpx.AsyncClient, engine: Engine) -> None:
    factory = make_sessionmaker(engine)
    for name in ("a", "b", "c"):
        assert (await client.post("/api/v1/datasets", json={"name": name})).status_code == 201
    report = run_retention(factory, RetentionPolicy(events=None, runs=None), now=utcnow() + 2 * MONTH)
    with session_scope(factory) as s:
        through = trimmed_through(s)
        left = list(s.scalars(select(ChangeEvent.id)))
    assert through == report.outbox_through and left and min(left) > through  # the newest stays

    behind = await client.get("/api/v1/change-events", params={"after": 0})
    assert behind.status_code == 409
    assert behind.json()["error"]["detail"]["trimmed_through"] == through
    caught_up = await client.get("/api/v1/change-events", params={"after": through})
    assert caught_up.status_code == 200 and [e["id"] for e in caught_up.json()["items"]] == left
