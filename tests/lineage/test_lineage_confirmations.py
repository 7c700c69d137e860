"""Column lineage confirmed per (job, target dataset) pair: a run that states the same column lineage as the last
one writes one confirmation row instead of rewriting every edge, edges still read their last seen and last run
through it, a retirement keeps what the edge read, and an edge named only by a declaration older than the pair's
newest one is recorded as retired at the newer declaration's time. On SQLite and PostgreSQL; one event per call
(PostgreSQL writes those blind, in SQL) and batches (replayed in Python), which must agree."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from ol_events import BASE, PRODUCER, column_lineage, dataset, run_event, schema
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from headwater.catalog.models import Field
from headwater.lineage.graph import WalkFilters, graph_around, impact, resolve_node
from headwater.lineage.ingest import ingest_events
from headwater.lineage.models import ColumnConfirmation, ColumnEdge, LineageRun

NS = "iceberg://lake"
OTHER_PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.31.0/integration/spark"


def _complete(minutes: float, columns: tuple[str, ...], *, run_id: str, producer: str = PRODUCER) -> dict[str, Any]:
    """A COMPLETE run of job ``etl`` carrying ``columns`` of c.src into c.dst (each column from its namesake)."""
    return run_event(
        "COMPLETE",
        job="etl",
        run_id=run_id,
        minutes=minutes,
        producer=producer,
        inputs=[dataset(NS, "c.src", schema=schema("user_id", "value"))],
        outputs=[
            dataset(
                NS,
                "c.dst",
                schema=schema("user_id", "value"),
                columnLineage=column_lineage({c: [(NS, "c.src", c)] for c in columns}),
            )
        ],
    )


def _ingest(session: Session, events: list[dict[str, Any]], batched: bool) -> None:
    for part in [events] if batched else [[event] for event in events]:
        assert ingest_events(session, documents=part).applied == len(part)


def _edge(session: Session, column: str, **filters: Any) -> Any:
    """The edge c.src#column -> c.dst#column as the graph answers it."""
    node = resolve_node(session, namespace=NS, name="c.src", field_path=column)
    edges = graph_around(session, node=node, direction="downstream", filters=WalkFilters(**filters)).edges
    assert len(edges) <= 1, edges
    return edges[0] if edges else None


def _rows(session: Session) -> dict[str, tuple[Any, ...]]:
    """The stored column-edge rows by source column: (id, last seen, last run id, producer, retired at)."""
    found = session.execute(
        select(Field.path, ColumnEdge.id, ColumnEdge.last_seen, ColumnEdge.last_run_id, ColumnEdge.producer)
        .add_columns(ColumnEdge.retired_at)
        .join(Field, Field.id == ColumnEdge.source_field_id)
    )
    return {row[0]: tuple(row[1:]) for row in found}


def _at(minutes: float) -> dt.datetime:
    return BASE + dt.timedelta(minutes=minutes)


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batch"])
def test_a_run_stating_the_same_lineage_confirms_it_without_rewriting_the_edges(
    session: Session, batched: bool
) -> None:
    runs = [str(uuid.uuid4()) for _ in range(3)]
    _ingest(
        session,
        [_complete(0, ("user_id", "value"), run_id=runs[0]), _complete(60, ("user_id", "value"), run_id=runs[1])],
        batched,
    )
    stored = _rows(session)
    # A third run, by another producer, naming the very same edges.
    _ingest(session, [_complete(120, ("user_id", "value"), run_id=runs[2], producer=OTHER_PRODUCER)], False)
    assert _rows(session) == stored, "the edges' rows were rewritten"
    for column in ("user_id", "value"):
        edge = _edge(session, column)
        assert (edge.first_seen, edge.last_seen, edge.last_run_id, edge.producer, edge.retired_at) == (
            BASE,
            _at(120),
            runs[2],
            OTHER_PRODUCER,
            None,
        )
    confirmation = session.execute(
        select(ColumnConfirmation.confirmed_at, LineageRun.run_uuid, ColumnConfirmation.producer).join(
            LineageRun, LineageRun.id == ColumnConfirmation.last_run_id
        )
    ).all()
    assert confirmation == [(_at(120), runs[2], OTHER_PRODUCER)]


@pytest.mark.single_backend("postgres")
def test_a_confirming_event_does_not_even_lock_the_edges_it_names(session: Session) -> None:
    """``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` locks each conflicting row before testing its WHERE (a WAL
    record, a dirtied page): the edges a confirming event names as they are must not reach it."""
    runs = [str(uuid.uuid4()) for _ in range(3)]
    _ingest(session, [_complete(0, ("user_id", "value"), run_id=runs[0])], False)
    session.commit()
    _ingest(session, [_complete(60, ("user_id",), run_id=runs[1])], False)  # retires value
    session.commit()
    locks = text("SELECT id, xmax::text FROM lineage_column_edges ORDER BY id")
    before = session.execute(locks).all()
    # user_id named as it is; value named again (revived: a real update).
    _ingest(session, [_complete(120, ("user_id", "value"), run_id=runs[2])], False)
    session.commit()
    after = dict(session.execute(locks).all())
    user_id, value = (_rows(session)[column][0] for column in ("user_id", "value"))
    assert after[user_id] == dict(before)[user_id], "the unchanged edge was locked"
    assert after[value] != dict(before)[value]
    assert _edge(session, "user_id").last_run_id == runs[2]


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batch"])
def test_a_retired_edge_keeps_the_last_seen_and_run_it_read_through_the_confirmation(
    session: Session, batched: bool
) -> None:
    runs = [str(uuid.uuid4()) for _ in range(3)]
    events = [
        _complete(0, ("user_id", "value"), run_id=runs[0]),
        _complete(60, ("user_id", "value"), run_id=runs[1], producer=OTHER_PRODUCER),
        _complete(120, ("user_id",), run_id=runs[2]),  # value no longer carried through
    ]
    _ingest(session, events, batched)
    assert _edge(session, "value") is None
    value = _edge(session, "value", include_retired=True)
    assert (value.first_seen, value.last_seen, value.last_run_id, value.producer, value.retired_at) == (
        BASE,
        _at(60),
        runs[1],
        OTHER_PRODUCER,
        _at(120),
    )
    user = _edge(session, "user_id")
    assert (user.last_seen, user.last_run_id, user.producer, user.retired_at) == (_at(120), runs[2], PRODUCER, None)


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batch"])
@pytest.mark.parametrize("late_first", [False, True], ids=["newest-first", "oldest-first"])
def test_an_edge_named_only_by_an_older_declaration_is_retired_at_the_newer_one(
    session: Session, batched: bool, late_first: bool
) -> None:
    older = _complete(30, ("user_id", "value"), run_id=str(uuid.uuid4()))
    newer_run = str(uuid.uuid4())
    newer = _complete(60, ("user_id",), run_id=newer_run)
    _ingest(session, [older, newer] if late_first else [newer, older], batched)
    # Whatever the arrival order: value was carried through from 12:30 until the 13:00 run stopped naming it.
    assert _edge(session, "value") is None
    value = _edge(session, "value", include_retired=True)
    assert (value.first_seen, value.last_seen, value.retired_at) == (_at(30), _at(30), _at(60))
    src_value = resolve_node(session, namespace=NS, name="c.src", field_path="value")
    assert [c.name for c in impact(session, node=src_value, filters=WalkFilters(as_of=_at(45))).columns] == ["c.dst"]
    assert impact(session, node=src_value).columns == []
    user = _edge(session, "user_id")
    assert (user.first_seen, user.last_seen, user.last_run_id, user.retired_at) == (_at(30), _at(60), newer_run, None)
