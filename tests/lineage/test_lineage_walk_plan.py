"""The impact walk's plan on a long-lived PostgreSQL connection (issue 18): psycopg prepares a statement from its
fifth run on a connection, and PostgreSQL may then switch it to a generic plan, chosen without the parameters'
values. The walk's plan must stay as good on the twentieth run as on the first, on a graph whose statistics are
wrong (analysed while it was one layer deep) and whose edges lie in random physical order.

The work a run does is read from PostgreSQL's own counters (index scans started on the edge table, from
``pg_stat_xact_user_tables`` before and after the run, in its transaction), not timed: a plan that probes the edge index once per pair of reached nodes
does the quadratic work whatever the machine's speed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from ol_events import column_lineage, dataset, run_event, schema
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from suite_tables import empty_tables

from headwater.db import create_db_engine, make_sessionmaker, session_scope
from headwater.lineage import graph
from headwater.lineage.ingest import ingest_events

pytestmark = [pytest.mark.single_backend("postgres"), pytest.mark.integration]

NS = "iceberg://lake"
LAYERS = 8
COLUMNS = [f"c{i:03d}" for i in range(100)]
FAN_IN = 3
RUNS = 20  # psycopg prepares on the 5th run; PostgreSQL weighs a generic plan after five custom ones


@pytest.fixture
def walk_engine(db_url: str, engine: Engine) -> Iterator[Engine]:
    """An engine of one pooled connection, set up as the server's: every walk runs on the same backend."""
    walker = create_db_engine(db_url, pool_size=1)
    yield walker
    walker.dispose()
    empty_tables(engine)


def _layered_graph(engine: Engine) -> None:
    """8 tables of 100 columns, each column fed by 3 random columns of the table before (2,100 column edges);
    the layers ingested in random order, the edge table analysed after the first one only."""
    rng = random.Random(18)
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
                    columnLineage=column_lineage(
                        {c: [(NS, f"t{layer - 1}", i) for i in rng.sample(COLUMNS, FAN_IN)] for c in COLUMNS}
                    ),
                )
            ],
        )
        for layer in range(1, LAYERS)
    ]
    rng.shuffle(events)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as session:
        assert ingest_events(session, documents=events[:1]).applied == 1
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE lineage_column_edges, fields, datasets"))
    with session_scope(factory) as session:
        assert ingest_events(session, documents=events[1:]).applied == LAYERS - 2


def _edge_index_scans(session: Session) -> int:
    """Index scans started on the edge table by this backend since it last reported its statistics (the
    counter spans transactions until then, so a run's work is the difference across it)."""
    scans: int = session.execute(
        text("SELECT idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'lineage_column_edges'")
    ).scalar_one()
    return scans


def test_the_impact_walk_does_the_same_work_on_the_twentieth_run_of_a_connection(
    engine: Engine, walk_engine: Engine
) -> None:
    _layered_graph(engine)
    factory = make_sessionmaker(walk_engine)
    probes: list[int] = []
    backends: set[int] = set()
    reached: set[int] = set()
    for _ in range(RUNS):
        with session_scope(factory) as session:
            node = graph.resolve_node(session, namespace=NS, name="t0", field_path="c000")
            before = _edge_index_scans(session)
            found = graph.impact(session, node=node, depth=20, budget=10_000)
            probes.append(_edge_index_scans(session) - before)
            backends.add(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
            reached.add(len(found.columns))
            assert not found.isPartial
    assert len(backends) == 1, "every run must be on one connection, where statements get prepared"
    with walk_engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() in backends
        runs = conn.execute(
            text(
                "SELECT sum(generic_plans + custom_plans) FROM pg_prepared_statements"
                " WHERE statement LIKE '%WITH RECURSIVE walk%'"
            )
        ).scalar_one()
    # The premise: the walk ran as a statement prepared on the server, whose plan PostgreSQL may cache.
    assert runs is not None and runs >= RUNS - 5, runs
    (columns,) = reached
    assert columns > 300, f"the walk should reach most of the graph, reached {columns} columns"
    # A good plan probes the edge index about once per reached column (the walk's expansion and the edges read
    # among the reached columns); a plan that joins the reached columns to each other probes it once per pair.
    assert probes[0] <= 4 * columns, probes
    assert max(probes) <= 2 * probes[0], f"index scans on the edge table per run: {probes}"
