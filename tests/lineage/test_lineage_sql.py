"""SQL column lineage with sqlglot and the catalog as schema source: every statement kind, the dialects,
parse errors with positions, the REST endpoint, the CLI, and SQL facets applied during ingestion."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ol_events import dataset, run_event
from sql_cases import NS, cols, indirect, one
from sql_cases import catalog as _catalog
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from headwater.catalog.schemas import DatasetCreate, FieldIn
from headwater.catalog.service import register_dataset
from headwater.cli import app
from headwater.db import make_sessionmaker, session_scope
from headwater.lineage.analyse import analyse_sql
from headwater.lineage.graph import impact, resolve_node
from headwater.lineage.ingest import ingest_events
from headwater.lineage.ingest.statements import PAIR_LOCK_KEY
from headwater.lineage.schemas import SqlLineageIn
from headwater.lineage.sql import SqlLineageError, lineage_of_sql
from headwater.settings import get_settings


def test_insert_select_with_join_aggregate_and_filter(session: Session) -> None:
    _catalog(session)
    lineage = one(
        session,
        """
        INSERT OVERWRITE TABLE curated.daily
        SELECT to_date(e.ts) AS ds, u.country, SUM(e.amount) AS total, COUNT(DISTINCT e.user_id) AS n_users
        FROM raw.events e JOIN raw.users u ON e.user_id = u.user_id
        WHERE e.kind = 'purchase'
        GROUP BY to_date(e.ts), u.country
        """,
    )
    assert lineage.kind == "insert" and lineage.target == (NS, "curated.daily")
    assert sorted(lineage.inputs) == [(NS, "raw.events"), (NS, "raw.users")]
    assert cols(lineage) == {
        "ds": {("raw.events", "ts", "DIRECT", "TRANSFORMATION")},
        "country": {("raw.users", "country", "DIRECT", "IDENTITY")},
        "total": {("raw.events", "amount", "DIRECT", "AGGREGATION")},
        "n_users": {("raw.events", "user_id", "DIRECT", "AGGREGATION")},
    }
    assert indirect(lineage) == {
        ("raw.events", "kind", "FILTER"),
        ("raw.events", "user_id", "JOIN"),
        ("raw.users", "user_id", "JOIN"),
        ("raw.events", "ts", "GROUP_BY"),
        ("raw.users", "country", "GROUP_BY"),
    }


def test_insert_maps_columns_by_position_into_the_catalog_table(session: Session) -> None:
    _catalog(session)
    lineage = one(session, "INSERT INTO curated.daily SELECT ts, country, amount, user_id FROM raw.events")
    assert set(cols(lineage)) == {"ds", "country", "total", "n_users"}
    assert cols(lineage)["total"] == {("raw.events", "amount", "DIRECT", "IDENTITY")}


def test_ctas_expands_select_star_from_the_catalog(session: Session) -> None:
    _catalog(session)
    lineage = one(session, "CREATE TABLE curated.users_copy AS SELECT * FROM raw.users")
    assert lineage.kind == "create_table_as" and lineage.target == (NS, "curated.users_copy")
    assert list(lineage.columns) == ["user_id", "name", "email", "country"]
    assert cols(lineage)["email"] == {("raw.users", "email", "DIRECT", "IDENTITY")}


def test_view_with_cte_subquery_and_window(session: Session) -> None:
    _catalog(session)
    lineage = one(
        session,
        """
        CREATE VIEW curated.ranked AS
        WITH spend AS (SELECT user_id, amount * 100 AS cents FROM raw.events)
        SELECT user_id, cents, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY cents DESC) AS rn,
               SUM(cents) OVER (PARTITION BY user_id) AS running
        FROM (SELECT * FROM spend) s
        """,
    )
    assert lineage.kind == "create_view"
    found = cols(lineage)
    assert found["cents"] == {("raw.events", "amount", "DIRECT", "TRANSFORMATION")}
    assert found["rn"] == {
        ("raw.events", "user_id", "INDIRECT", "WINDOW"),
        ("raw.events", "amount", "INDIRECT", "WINDOW"),
    }
    assert found["running"] == {
        ("raw.events", "amount", "DIRECT", "AGGREGATION"),
        ("raw.events", "user_id", "INDIRECT", "WINDOW"),
    }


def test_union_and_case_and_masking(session: Session) -> None:
    _catalog(session)
    lineage = one(
        session,
        """
        INSERT INTO curated.people
        SELECT user_id, md5(email) AS who FROM raw.users
        UNION ALL
        SELECT user_id, CASE WHEN kind = 'anon' THEN 'x' ELSE country END FROM raw.events
        """,
    )
    found = cols(lineage)
    assert found["user_id"] == {
        ("raw.users", "user_id", "DIRECT", "IDENTITY"),
        ("raw.events", "user_id", "DIRECT", "IDENTITY"),
    }
    assert found["who"] == {
        ("raw.users", "email", "DIRECT", "TRANSFORMATION"),
        ("raw.events", "country", "DIRECT", "TRANSFORMATION"),
        ("raw.events", "kind", "INDIRECT", "CONDITIONAL"),
    }
    assert any(i.masking for i in lineage.columns["who"] if i.field == "email")


def test_merge(session: Session) -> None:
    _catalog(session)
    lineage = one(
        session,
        """
        MERGE INTO raw.users AS t
        USING (SELECT user_id, country FROM raw.events WHERE kind = 'move') AS s
        ON t.user_id = s.user_id
        WHEN MATCHED THEN UPDATE SET t.country = upper(s.country)
        WHEN NOT MATCHED THEN INSERT (user_id, country) VALUES (s.user_id, s.country)
        """,
    )
    assert lineage.kind == "merge" and lineage.target == (NS, "raw.users")
    assert lineage.inputs == [(NS, "raw.events")]
    assert cols(lineage) == {
        "country": {("raw.events", "country", "DIRECT", "TRANSFORMATION")},
        "user_id": {("raw.events", "user_id", "DIRECT", "IDENTITY")},
    }
    assert ("raw.events", "kind", "FILTER") in indirect(lineage)
    assert ("raw.users", "user_id", "JOIN") in indirect(lineage)


def test_subquery_in_where_is_a_filter(session: Session) -> None:
    _catalog(session)
    lineage = one(session, "SELECT name FROM raw.users WHERE user_id IN (SELECT user_id FROM raw.events)")
    assert lineage.kind == "select" and lineage.target is None
    assert ("raw.events", "user_id", "FILTER") in indirect(lineage)


def test_struct_members_are_traced_to_their_nested_columns(session: Session) -> None:
    struct = FieldIn(
        name="device",
        type="struct<os:string,geo:struct<country:string,city:string>>",
        fields=[
            FieldIn(name="os", type="string"),
            FieldIn(
                name="geo",
                type="struct<country:string,city:string>",
                fields=[FieldIn(name="country", type="string"), FieldIn(name="city", type="string")],
            ),
        ],
    )
    register_dataset(
        session,
        data=DatasetCreate(name="raw.clicks", namespace=NS, fields=[FieldIn(name="id", type="string"), struct]),
    )
    register_dataset(
        session,
        data=DatasetCreate(
            name="curated.clicks",
            namespace=NS,
            fields=[FieldIn(name=c, type="string") for c in ("id", "os", "country", "geo", "label")],
        ),
    )
    session.flush()
    lineage = one(
        session,
        """
        INSERT INTO curated.clicks
        WITH c AS (SELECT id, device FROM raw.clicks WHERE device.os <> 'bot')
        SELECT c.id, c.device.os AS os, c.device.geo.country AS country, c.device.geo AS geo,
               upper(c.device.geo.city) AS label
        FROM c
        WHERE c.device.geo.country IS NOT NULL
        """,
    )
    assert cols(lineage) == {
        "id": {("raw.clicks", "id", "DIRECT", "IDENTITY")},
        "os": {("raw.clicks", "device.os", "DIRECT", "IDENTITY")},
        "country": {("raw.clicks", "device.geo.country", "DIRECT", "IDENTITY")},
        "geo": {("raw.clicks", "device.geo", "DIRECT", "IDENTITY")},
        "label": {("raw.clicks", "device.geo.city", "DIRECT", "TRANSFORMATION")},
    }
    assert indirect(lineage) == {
        ("raw.clicks", "device.os", "FILTER"),
        ("raw.clicks", "device.geo.country", "FILTER"),
    }
    # A member the catalog does not list resolves to the deepest path it knows.
    loose = one(session, "SELECT device.geo.zip AS zip, t.device.os FROM raw.clicks t")
    assert cols(loose) == {
        "zip": {("raw.clicks", "device.geo", "DIRECT", "IDENTITY")},
        "os": {("raw.clicks", "device.os", "DIRECT", "IDENTITY")},
    }

    # Recorded as edges between the nested catalog fields, a member's impact is queryable.
    analyse_sql(
        session,
        data=SqlLineageIn(
            sql="INSERT INTO curated.clicks SELECT id, device.os, device.geo.country, device.geo, 'x' FROM raw.clicks",
            namespace=NS,
            apply=True,
        ),
    )
    affected = impact(
        session, node=resolve_node(session, namespace=NS, name="raw.clicks", field_path="device.geo.country")
    )
    assert [(c.name, c.field) for c in affected.columns] == [("curated.clicks", "country")]


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        (
            "hive",
            "INSERT OVERWRITE TABLE curated.daily SELECT `ts`, `country`, `amount`, `user_id` FROM `raw`.`events`",
        ),
        ("trino", 'INSERT INTO curated.daily SELECT "ts", country, amount, user_id FROM raw.events'),
        ("postgres", "INSERT INTO curated.daily SELECT ts::date, country, amount, user_id FROM raw.events"),
        (
            "flink",
            "INSERT INTO curated.daily SELECT CAST(SESSION_START(ts, INTERVAL '30' MINUTE) AS STRING), country, "
            "SUM(amount), COUNT(user_id) FROM raw.events GROUP BY country, SESSION(ts, INTERVAL '30' MINUTE)",
        ),
    ],
)
def test_dialects(session: Session, dialect: str, sql: str) -> None:
    _catalog(session)
    lineage = one(session, sql, dialect)
    assert lineage.target == (NS, "curated.daily")
    assert {i.field for i in lineage.columns["country"]} == {"country"}
    assert {i.field for i in lineage.columns["ds"]} == {"ts"}


def test_unparseable_sql_names_the_position(session: Session) -> None:
    with pytest.raises(SqlLineageError) as caught:
        lineage_of_sql(session, sql="SELECT a,\nFROM t WHERE (", dialect="spark")
    assert caught.value.detail["line"] == 2
    assert "line 2, column" in caught.value.message
    with pytest.raises(SqlLineageError, match="dialect 'mysql'"):
        lineage_of_sql(session, sql="SELECT 1", dialect="mysql")


def test_sql_facet_without_column_lineage_is_parsed_during_ingestion(session: Session) -> None:
    _catalog(session)
    event = run_event(
        "COMPLETE",
        job="spark_daily",
        job_facets={
            "sql": {
                "query": "INSERT INTO curated.daily SELECT ts, country, SUM(amount), COUNT(user_id) FROM raw.events GROUP BY ts, country",
                "dialect": "spark",
            }
        },
        inputs=[dataset(NS, "raw.events")],
        outputs=[dataset(NS, "curated.daily")],
    )
    ingest_events(session, documents=[event])
    result = impact(session, node=resolve_node(session, namespace=NS, name="raw.events", field_path="amount"))
    assert [(c.name, c.field) for c in result.columns] == [("curated.daily", "total")]
    broken = run_event(
        "COMPLETE",
        job="broken_sql",
        job_facets={"sql": {"query": "INSERT INTO x SELECT (("}},
        outputs=[dataset(NS, "curated.daily")],
    )
    outcome = ingest_events(session, documents=[broken])
    assert outcome.applied == 1 and "could not be used" in outcome.warnings[0]


@pytest.mark.single_backend("postgres")
def test_lineage_from_a_sql_facet_waits_for_the_pairs_advisory_lock(session: Session) -> None:
    """Every writer of a (job, target dataset) pair's column edges holds the pair's advisory lock, lineage parsed
    from a ``sql`` facet too: a single event's write skips the edges it reads as unchanged, which is only sound if
    no other writer of the pair commits meanwhile."""
    _catalog(session)
    query = "INSERT INTO curated.daily SELECT ts, country, SUM(amount), COUNT(user_id) FROM raw.events GROUP BY 1, 2"

    def event(minutes: float) -> dict[str, object]:
        return run_event(
            "COMPLETE",
            job="spark_daily",
            minutes=minutes,
            job_facets={"sql": {"query": query, "dialect": "spark"}},
            inputs=[dataset(NS, "raw.events")],
            outputs=[dataset(NS, "curated.daily")],
        )

    assert ingest_events(session, documents=[event(0)]).applied == 1
    session.commit()
    key = PAIR_LOCK_KEY.format(
        job_id="(SELECT id FROM lineage_jobs WHERE name = 'spark_daily')",
        dataset_id="(SELECT id FROM datasets WHERE name = 'curated.daily')",
    )
    engine = session.get_bind()
    done = threading.Event()
    failures: list[BaseException] = []

    def ingest_later_run() -> None:
        try:
            with session_scope(make_sessionmaker(engine)) as other:  # type: ignore[arg-type]
                ingest_events(other, documents=[event(60)])
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            done.set()

    with engine.connect() as holder:  # type: ignore[union-attr]
        holder.execute(text(f"SELECT pg_advisory_xact_lock({key})"))
        worker = threading.Thread(target=ingest_later_run)
        worker.start()
        assert not done.wait(1.0), "the event's lineage was written while another transaction held the pair"
        waiting = holder.execute(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        ).scalar_one()
        assert waiting == 1
        holder.commit()
    worker.join(30)
    assert done.is_set() and not failures, failures
    result = impact(session, node=resolve_node(session, namespace=NS, name="raw.events", field_path="amount"))
    assert [(c.name, c.field) for c in result.columns] == [("curated.daily", "total")]


@pytest.mark.anyio
async def test_sql_endpoint(client: httpx.AsyncClient) -> None:
    for name, columns in {"raw.events": ["user_id", "amount"], "raw.users": ["user_id", "email"]}.items():
        created = await client.post(
            "/api/v1/datasets",
            json={"name": name, "namespace": NS, "fields": [{"name": c, "type": "string"} for c in columns]},
        )
        assert created.status_code == 201
    body = {
        "sql": "CREATE TABLE curated.spend AS SELECT u.email, SUM(e.amount) AS spend FROM raw.events e JOIN raw.users u USING (user_id) GROUP BY u.email",
        "dialect": "spark",
        "namespace": NS,
    }
    answer = await client.post("/api/v1/lineage/sql", json=body)
    assert answer.status_code == 200, answer.text
    statement = answer.json()["statements"][0]
    assert statement["target"] == {"namespace": NS, "name": "curated.spend"}
    assert {c["field"]: [i["field"] for i in c["inputs"]] for c in statement["columns"]} == {
        "email": ["email"],
        "spend": ["amount"],
    }
    assert (
        await client.get("/api/v1/datasets/by-name", params={"namespace": NS, "name": "curated.spend"})
    ).status_code == 404

    applied = await client.post("/api/v1/lineage/sql", json={**body, "apply": True, "job_name": "spend_job"})
    assert applied.json()["applied_edges"] >= 2
    impact_answer = (
        await client.get("/api/v1/lineage/impact", params={"namespace": NS, "name": "raw.events", "field": "amount"})
    ).json()
    assert [(c["name"], c["field"]) for c in impact_answer["columns"]] == [("curated.spend", "spend")]
    graph = (
        await client.get(
            "/api/v1/lineage/graph",
            params={
                "namespace": NS,
                "name": "curated.spend",
                "field": "spend",
                "direction": "upstream",
                "origin": "sql",
            },
        )
    ).json()
    assert {e["origin"] for e in graph["edges"]} == {"sql"} and graph["edges"][0]["job"] == "headwater/spend_job"

    bad = await client.post("/api/v1/lineage/sql", json={"sql": "SELECT FROM WHERE (", "dialect": "trino"})
    assert bad.status_code == 400 and "line 1, column" in bad.json()["error"]["message"]
    unknown = await client.post("/api/v1/lineage/sql", json={"sql": "SELECT 1", "dialect": "oracle"})
    assert unknown.status_code == 422 and "dialect" in unknown.json()["error"]["message"]


@pytest.fixture
def cli_db(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, session: Session) -> Iterator[Session]:
    """The CLI pointed at the suite's database."""
    monkeypatch.setenv("HEADWATER_DATABASE_URL", db_url)
    monkeypatch.setenv("HEADWATER_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield session
    get_settings.cache_clear()


def test_cli_parse(cli_db: Session, tmp_path: Path) -> None:
    _catalog(cli_db)
    cli_db.commit()
    sql = tmp_path / "daily.sql"
    sql.write_text("INSERT INTO curated.daily SELECT ts, country, amount, user_id FROM raw.events WHERE kind = 'x';\n")
    result = CliRunner().invoke(app, ["lineage", "parse", str(sql), "--dialect", "spark", "--namespace", NS, "--json"])
    assert result.exit_code == 0, result.output
    assert '"field": "total"' in result.output and '"subtype": "FILTER"' in result.output
    table = CliRunner().invoke(app, ["lineage", "parse", str(sql), "--namespace", NS])
    assert table.exit_code == 0 and "curated.daily" in table.output
    sql.write_text("SELECT (\n")
    failed = CliRunner().invoke(app, ["lineage", "parse", str(sql), "--dialect", "hive"])
    assert failed.exit_code == 1 and "line" in failed.output
