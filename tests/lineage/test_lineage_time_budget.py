"""The impact query's time budget, on PostgreSQL (the only backend with a statement timeout): a walk that
the budget stops answers 200 with ``isPartial`` and a reason, never an error, and the request and the
connection go on working after it. The budget is provoked for real, not mocked: the graph is dense enough
that its walk takes longer than the smallest budget the API accepts (10 ms).
"""

from __future__ import annotations

import httpx
import pytest
from ol_events import column_lineage, dataset, run_event, schema
from sqlalchemy import Engine, func, select

from headwater.db import make_sessionmaker, session_scope
from headwater.lineage.ingest import ingest_events
from headwater.lineage.models import ColumnEdge

pytestmark = [pytest.mark.anyio, pytest.mark.single_backend("postgres")]

NS = "iceberg://lake"
LAYERS = 6
COLUMNS = [f"c{i:03d}" for i in range(100)]


def _dense_graph(engine: Engine) -> None:
    """6 tables of 100 columns, each column fed by every column of the table before: 50,000 column edges."""
    events = [
        run_event(
            "COMPLETE",
            job=f"layer_{layer}",
            minutes=layer,
            inputs=[dataset(NS, f"t{layer - 1}", schema=schema(*COLUMNS))],
            outputs=[
                dataset(
                    NS,
                    f"t{layer}",
                    schema=schema(*COLUMNS),
                    columnLineage=column_lineage({c: [(NS, f"t{layer - 1}", i) for i in COLUMNS] for c in COLUMNS}),
                )
            ],
        )
        for layer in range(1, LAYERS)
    ]
    with session_scope(make_sessionmaker(engine)) as session:
        assert ingest_events(session, documents=events).applied == LAYERS - 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ColumnEdge)).scalar_one() == (LAYERS - 1) * 100 * 100


async def test_a_walk_stopped_by_the_time_budget_is_partial_not_an_error(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    _dense_graph(engine)
    column = {"namespace": NS, "name": "t0", "field": "c000"}

    full = await client.get("/api/v1/lineage/impact", params={**column, "timeout_ms": 60_000})
    assert full.status_code == 200, full.text
    complete = full.json()
    assert complete["isPartial"] is False and complete["partial_reason"] is None
    assert len(complete["columns"]) == (LAYERS - 1) * 100
    # The premise of what follows: the whole walk takes well over the 10 ms budget.
    assert complete["elapsed_ms"] > 30, complete["elapsed_ms"]

    cut = await client.get("/api/v1/lineage/impact", params={**column, "timeout_ms": 10})
    assert cut.status_code == 200, cut.text
    partial = cut.json()
    assert partial["isPartial"] is True
    assert partial["partial_reason"] == "time budget of 10 ms reached"
    assert len(partial["columns"]) < len(complete["columns"])

    # A dataset's impact walks columns and datasets: the budget stops it the same way.
    whole = await client.get("/api/v1/lineage/impact", params={"namespace": NS, "name": "t0", "timeout_ms": 10})
    assert whole.status_code == 200, whole.text
    assert whole.json()["isPartial"] is True and whole.json()["partial_reason"] == "time budget of 10 ms reached"

    # The cancelled statement was confined to its savepoint and the timeout to its statement: the pool's
    # connections answer in full again.
    for _ in range(3):
        again = await client.get("/api/v1/lineage/impact", params={**column, "timeout_ms": 60_000})
        assert again.status_code == 200 and again.json()["isPartial"] is False
        assert len(again.json()["columns"]) == len(complete["columns"])
