"""Lineage queries on the service layer: a 5-hop column pipeline, impact with owners, cycles, budgets,
as-of queries and retirement, paths, and column identity across a rename; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from ol_events import BASE, column_lineage, dataset, run_event, schema
from sqlalchemy.orm import Session

from headwater.catalog.schemas import DatasetCreate, FieldIn, Owner
from headwater.catalog.service import register_dataset, replace_manual_schema
from headwater.errors import InvalidInput, NotFound
from headwater.lineage.graph import WalkFilters, graph_around, impact, path_between, resolve_node
from headwater.lineage.ingest import ingest_events

NS = "iceberg://lake"
HOPS = ["kafka.events", "raw.events", "stage.events", "curated.sessions", "agg.daily", "report.kpis"]


def _hop(
    source: str, target: str, minutes: float, *, job: str | None = None, columns: tuple[str, ...] = ("user_id", "value")
) -> dict:
    return run_event(
        "COMPLETE",
        job=job or f"load_{target}",
        minutes=minutes,
        inputs=[dataset(NS, source, schema=schema(*columns))],
        outputs=[
            dataset(
                NS,
                target,
                schema=schema(*columns),
                columnLineage=column_lineage({c: [(NS, source, c)] for c in columns}, subtype="TRANSFORMATION"),
            )
        ],
    )


def _pipeline(session: Session) -> None:
    events = [_hop(src, dst, i) for i, (src, dst) in enumerate(zip(HOPS, HOPS[1:], strict=False))]
    assert ingest_events(session, documents=events).applied == 5


def test_column_lineage_through_a_five_hop_pipeline(session: Session) -> None:
    _pipeline(session)
    register_dataset(
        session, data=DatasetCreate(name="dashboard", namespace="bi", fields=[FieldIn(name="x", type="string")])
    )
    start = resolve_node(session, namespace=NS, name="kafka.events", field_path="value")
    result = impact(session, node=start)
    assert [(c.name, c.field, c.distance) for c in result.columns] == [
        (name, "value", hop) for hop, name in enumerate(HOPS[1:], start=1)
    ]
    assert result.columns[-1].path == [f"{NS}/{name}#value" for name in HOPS]
    assert [d.name for d in result.datasets] == HOPS[1:]
    assert [j.name for j in result.jobs] == [f"load_{name}" for name in HOPS[1:]]
    assert result.isPartial is False and result.total == 5 + 5 + 5

    upstream = graph_around(
        session,
        node=resolve_node(session, namespace=NS, name="report.kpis", field_path="user_id"),
        direction="upstream",
    )
    assert {n.name: n.distance for n in upstream.nodes} == {name: hop - 5 for hop, name in enumerate(HOPS)}
    assert all(e.origin == "openlineage" and e.subtype == "TRANSFORMATION" for e in upstream.edges)
    # A column never flows into an unrelated column.
    assert all(n.field == "user_id" for n in upstream.nodes)

    limited = impact(session, node=start, depth=2)
    assert [c.distance for c in limited.columns] == [1, 2]
    assert limited.isPartial is True and "depth" in (limited.partial_reason or "")

    path = path_between(
        session,
        source=start,
        target=resolve_node(session, namespace=NS, name="agg.daily", field_path="value"),
    )
    assert path.found and len(path.path) == 5
    no_path = path_between(
        session, source=start, target=resolve_node(session, namespace=NS, name="agg.daily", field_path="user_id")
    )
    assert no_path.found is False and no_path.path == []


def test_dataset_impact_lists_owners_of_affected_datasets(session: Session) -> None:
    register_dataset(
        session,
        data=DatasetCreate(
            name="agg.daily",
            namespace=NS,
            fields=[FieldIn(name="user_id", type="string"), FieldIn(name="value", type="string")],
            owners=[Owner(name="team:analytics"), Owner(name="erin@example.com", role="data_steward")],
        ),
    )
    _pipeline(session)
    result = impact(session, node=resolve_node(session, namespace=NS, name="stage.events"))
    assert [(d.name, d.distance) for d in result.datasets] == [
        ("curated.sessions", 1),
        ("agg.daily", 2),
        ("report.kpis", 3),
    ]
    assert [(o.owner, o.role, o.distance) for o in result.owners] == [
        ("erin@example.com", "data_steward", 2),
        ("team:analytics", "technical_owner", 2),
    ]
    assert result.owners[0].datasets == [f"{NS}/agg.daily"]


def test_cycles_terminate(session: Session) -> None:
    # A job that reads and writes the same table, and a two-table loop.
    events = [
        _hop("t.a", "t.a", 0, job="dedupe_a"),
        _hop("t.a", "t.b", 1),
        _hop("t.b", "t.a", 2),
    ]
    ingest_events(session, documents=events)
    node = resolve_node(session, namespace=NS, name="t.a", field_path="value")
    result = impact(session, node=node, depth=50)
    assert [(c.name, c.distance) for c in result.columns] == [("t.b", 1)]
    assert {j.name for j in result.jobs} == {"dedupe_a", "load_t.b", "load_t.a"}
    whole = graph_around(session, node=node, direction="both", depth=50)
    assert {n.name for n in whole.nodes} == {"t.a", "t.b"}
    dataset_level = impact(session, node=resolve_node(session, namespace=NS, name="t.a"), depth=50)
    assert [d.name for d in dataset_level.datasets] == ["t.b"]


def test_budget_makes_the_answer_partial(session: Session) -> None:
    wide = tuple(f"c{i}" for i in range(30))
    ingest_events(session, documents=[_hop("w.src", "w.dst", 0, columns=wide), _hop("w.dst", "w.out", 1, columns=wide)])
    node = resolve_node(session, namespace=NS, name="w.src")
    result = impact(session, node=node, budget=10)
    assert result.isPartial is True and "budget" in (result.partial_reason or "")
    assert len(result.columns) <= 10
    with pytest.raises(InvalidInput, match="depth"):
        impact(session, node=node, depth=0)


def test_as_of_queries_and_retired_edges(session: Session) -> None:
    run_a, run_b = str(uuid.uuid4()), str(uuid.uuid4())
    first = _hop("h.src", "h.dst", 0, job="etl")  # user_id -> user_id, value -> value at 12:00
    first["run"]["runId"] = run_a
    # At 13:00 the job's new version no longer carries value through.
    second = run_event(
        "COMPLETE",
        job="etl",
        run_id=run_b,
        minutes=60,
        inputs=[dataset(NS, "h.src")],
        outputs=[
            dataset(
                NS,
                "h.dst",
                columnLineage=column_lineage({"user_id": [(NS, "h.src", "user_id")]}, subtype="TRANSFORMATION"),
            )
        ],
    )
    ingest_events(session, documents=[first, second])
    value = resolve_node(session, namespace=NS, name="h.src", field_path="value")
    user = resolve_node(session, namespace=NS, name="h.src", field_path="user_id")
    assert impact(session, node=value).columns == []  # retired now
    then = WalkFilters(as_of=BASE + dt.timedelta(minutes=30))
    assert [c.name for c in impact(session, node=value, filters=then).columns] == ["h.dst"]
    before = WalkFilters(as_of=BASE - dt.timedelta(minutes=1))
    assert impact(session, node=user, filters=before).columns == []
    edges = graph_around(session, node=value, direction="downstream", filters=WalkFilters(include_retired=True)).edges
    assert [(e.retired_at, e.last_run_id) for e in edges] == [(BASE + dt.timedelta(minutes=60), run_a)]
    confirmed = graph_around(session, node=user, direction="downstream").edges
    assert [(e.first_seen, e.last_seen, e.last_run_id) for e in confirmed] == [
        (BASE, BASE + dt.timedelta(minutes=60), run_b)
    ]
    # An older statement arriving late re-confirms nothing after the retirement.
    late = _hop("h.src", "h.dst", 30, job="etl")
    ingest_events(session, documents=[late])
    assert impact(session, node=value).columns == []


def test_a_renamed_column_keeps_its_lineage(session: Session) -> None:
    created = register_dataset(
        session,
        data=DatasetCreate(
            name="raw.playback",
            namespace=NS,
            fields=[FieldIn(name="title_id", type="long", field_id=1), FieldIn(name="bitrate", type="int", field_id=2)],
        ),
    )
    ingest_events(
        session,
        documents=[
            run_event(
                "COMPLETE",
                job="agg",
                inputs=[dataset(NS, "raw.playback")],
                outputs=[
                    dataset(
                        NS,
                        "agg.bitrate",
                        columnLineage=column_lineage(
                            {"avg_bitrate": [(NS, "raw.playback", "bitrate")]}, subtype="AGGREGATION"
                        ),
                    )
                ],
            )
        ],
    )
    before = resolve_node(session, namespace=NS, name="raw.playback", field_path="bitrate")
    replace_manual_schema(
        session,
        dataset_id=created.id,
        fields=[
            FieldIn(name="title_id", type="long", field_id=1),
            FieldIn(name="bitrate_kbps", type="int", field_id=2),
        ],
        expected_revision=None,
    )
    after = resolve_node(session, namespace=NS, name="raw.playback", field_path="bitrate_kbps")
    assert after.field_id == before.field_id
    assert [(c.name, c.field) for c in impact(session, node=after).columns] == [("agg.bitrate", "avg_bitrate")]
    with pytest.raises(NotFound, match="bitrate"):
        resolve_node(session, namespace=NS, name="raw.playback", field_path="bitrate")


def test_columns_of_a_federated_dataset_are_never_invented(session: Session) -> None:
    register_dataset(session, data=DatasetCreate(name="src", namespace=NS, fields=[FieldIn(name="a", type="string")]))
    result = ingest_events(
        session,
        documents=[
            run_event(
                "COMPLETE",
                job="j",
                inputs=[dataset(NS, "src")],
                outputs=[
                    dataset(
                        NS, "dst", columnLineage=column_lineage({"x": [(NS, "src", "a")], "y": [(NS, "src", "ghost")]})
                    )
                ],
            )
        ],
    )
    assert any("ghost" in w for w in result.warnings)
    assert [
        (c.name, c.field)
        for c in impact(session, node=resolve_node(session, namespace=NS, name="src", field_path="a")).columns
    ] == [("dst", "x")]
