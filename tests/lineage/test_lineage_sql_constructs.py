"""SQL lineage of what platforms run: generator functions and the columns they generate (Spark/Hive LATERAL
VIEW, Trino/PostgreSQL UNNEST ... WITH ORDINALITY, set-returning functions), UPDATE ... FROM, INSERT ... ON
CONFLICT DO UPDATE, Hive multi-insert, partition inserts, and CTEs that write or recurse. The PostgreSQL
statements were run on PostgreSQL 15 against tables of these columns."""

from __future__ import annotations

import pytest
from sql_cases import NS, TABLES, catalog, cols, indirect, one, statements
from sqlalchemy.orm import Session

MOVIES = {
    **TABLES,
    "raw.movies": ["id", "title", "genres", "tags", "cast_members", "attrs"],
    "curated.movie_genres": ["movie_id", "genre", "position"],
    "archive.events": ["user_id", "ts", "amount", "country", "kind"],
    "hr.employees": ["id", "manager_id", "name"],
    "hr.org_depth": ["employee_id", "depth", "top_manager"],
}
GENRE = ("raw.movies", "genres", "DIRECT", "TRANSFORMATION")


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        ("spark", "SELECT m.id, g.genre FROM raw.movies m LATERAL VIEW explode(m.genres) g AS genre"),
        ("hive", "SELECT id, genre FROM raw.movies LATERAL VIEW OUTER explode(genres) g AS genre"),
        ("spark", "SELECT m.id, col AS genre FROM raw.movies m LATERAL VIEW explode(m.genres) g"),  # Spark's name
        ("trino", "SELECT m.id, t.genre FROM raw.movies m CROSS JOIN UNNEST(m.genres) AS t(genre)"),
        ("postgres", "SELECT m.id, genre FROM raw.movies m, unnest(m.genres) AS genre"),
        ("postgres", "SELECT m.id, g.genre FROM raw.movies m CROSS JOIN LATERAL unnest(m.genres) AS g(genre)"),
    ],
)
def test_a_generated_column_traces_to_the_generators_input(session: Session, dialect: str, sql: str) -> None:
    catalog(session, MOVIES)
    lineage = one(session, sql, dialect)
    assert cols(lineage) == {"id": {("raw.movies", "id", "DIRECT", "IDENTITY")}, "genre": {GENRE}}
    assert lineage.inputs == [(NS, "raw.movies")]


def test_posexplode_into_a_table_traces_position_and_value(session: Session) -> None:
    catalog(session, MOVIES)
    lineage = one(
        session,
        """
        INSERT OVERWRITE TABLE curated.movie_genres
        SELECT m.id, g.genre, g.pos FROM raw.movies m
        LATERAL VIEW OUTER posexplode(m.genres) g AS pos, genre
        WHERE g.genre <> 'unknown'
        """,
        "hive",
    )
    assert cols(lineage) == {
        "movie_id": {("raw.movies", "id", "DIRECT", "IDENTITY")},
        "genre": {GENRE},
        "position": {GENRE},
    }
    assert ("raw.movies", "genres", "FILTER") in indirect(lineage)


def test_inline_and_json_tuple_trace_to_their_inputs(session: Session) -> None:
    catalog(session, MOVIES)
    lineage = one(
        session,
        """
        SELECT m.id, c.actor, c.role, j.studio, upper(j.budget) AS budget
        FROM raw.movies m
        LATERAL VIEW inline(m.cast_members) c AS actor, role
        LATERAL VIEW json_tuple(m.attrs, 'studio', 'budget') j AS studio, budget
        """,
        "spark",
    )
    cast = ("raw.movies", "cast_members", "DIRECT", "TRANSFORMATION")
    assert cols(lineage)["actor"] == {cast} and cols(lineage)["role"] == {cast}
    assert cols(lineage)["studio"] == {("raw.movies", "attrs", "DIRECT", "TRANSFORMATION")}
    assert cols(lineage)["budget"] == {("raw.movies", "attrs", "DIRECT", "TRANSFORMATION")}


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        (
            "trino",
            "INSERT INTO curated.movie_genres SELECT m.id, t.genre, t.n "
            "FROM raw.movies m CROSS JOIN UNNEST(m.genres) WITH ORDINALITY AS t(genre, n)",
        ),
        (
            "postgres",
            "INSERT INTO curated.movie_genres SELECT m.id, t.genre, t.n "
            "FROM raw.movies m CROSS JOIN LATERAL unnest(m.genres) WITH ORDINALITY AS t(genre, n)",
        ),
    ],
)
def test_unnest_with_ordinality_traces_value_and_ordinal(session: Session, dialect: str, sql: str) -> None:
    catalog(session, MOVIES)
    lineage = one(session, sql, dialect)
    assert cols(lineage) == {
        "movie_id": {("raw.movies", "id", "DIRECT", "IDENTITY")},
        "genre": {GENRE},
        "position": {GENRE},
    }


def test_a_set_returning_function_in_from_is_not_a_catalog_table(session: Session) -> None:
    catalog(session, MOVIES)
    lineage = one(
        session,
        "SELECT m.id, e.value ->> 'name' AS actor FROM raw.movies m, jsonb_array_elements(m.cast_members) AS e",
        "postgres",
    )
    assert cols(lineage)["actor"] == {("raw.movies", "cast_members", "DIRECT", "TRANSFORMATION")}
    assert lineage.inputs == [(NS, "raw.movies")] and lineage.warnings == []


def test_update_from_traces_assignments_and_the_join_in_where(session: Session) -> None:
    catalog(session, MOVIES)
    lineage = one(
        session,
        """
        UPDATE curated.daily AS d
        SET total = d.total + e.amount, n_users = 1
        FROM raw.events AS e
        WHERE d.country = e.country AND e.kind = 'refund'
        """,
        "postgres",
    )
    assert lineage.kind == "update" and lineage.target == (NS, "curated.daily")
    assert lineage.inputs == [(NS, "raw.events")]
    assert cols(lineage) == {
        "total": {
            ("curated.daily", "total", "DIRECT", "TRANSFORMATION"),
            ("raw.events", "amount", "DIRECT", "TRANSFORMATION"),
        },
        "n_users": set(),
    }
    assert {("raw.events", "kind", "FILTER"), ("raw.events", "country", "FILTER")} <= indirect(lineage)


def test_on_conflict_do_update_feeds_the_targets_own_columns(session: Session) -> None:
    catalog(session, MOVIES)
    lineage = one(
        session,
        """
        INSERT INTO curated.daily AS d (ds, country, total, n_users)
        SELECT ts, country, sum(amount), count(DISTINCT user_id) FROM raw.events GROUP BY ts, country
        ON CONFLICT (ds, country) DO UPDATE
        SET total = d.total + EXCLUDED.total, n_users = EXCLUDED.n_users
        """,
        "postgres",
    )
    assert lineage.target == (NS, "curated.daily") and lineage.inputs == [(NS, "raw.events")]
    assert cols(lineage) == {
        "ds": {("raw.events", "ts", "DIRECT", "IDENTITY")},
        "country": {("raw.events", "country", "DIRECT", "IDENTITY")},
        "total": {
            ("raw.events", "amount", "DIRECT", "AGGREGATION"),
            ("curated.daily", "total", "DIRECT", "TRANSFORMATION"),
        },
        "n_users": {("raw.events", "user_id", "DIRECT", "AGGREGATION")},
    }


def test_hive_multi_insert_is_one_lineage_per_target(session: Session) -> None:
    catalog(session, {**MOVIES, "curated.purchases": ["user_id", "amount"], "curated.refunds": ["user_id", "amount"]})
    found = statements(
        session,
        """
        FROM raw.events e
        INSERT OVERWRITE TABLE curated.purchases SELECT e.user_id, e.amount WHERE e.kind = 'purchase'
        INSERT OVERWRITE TABLE curated.refunds SELECT e.user_id, -e.amount WHERE e.kind = 'refund'
        """,
        "hive",
    )
    assert [(s.kind, s.target) for s in found] == [
        ("insert", (NS, "curated.purchases")),
        ("insert", (NS, "curated.refunds")),
    ]
    assert cols(found[0])["amount"] == {("raw.events", "amount", "DIRECT", "IDENTITY")}
    assert cols(found[1])["amount"] == {("raw.events", "amount", "DIRECT", "TRANSFORMATION")}
    assert all(s.inputs == [(NS, "raw.events")] and ("raw.events", "kind", "FILTER") in indirect(s) for s in found)


def test_static_and_dynamic_partition_inserts_map_columns_as_hive_does(session: Session) -> None:
    catalog(session, MOVIES)  # curated.daily lists its partition column ds first
    static = one(
        session,
        "INSERT OVERWRITE TABLE curated.daily PARTITION (ds = '2024-01-01') "
        "SELECT country, sum(amount), count(DISTINCT user_id) FROM raw.events WHERE to_date(ts) = '2024-01-01' "
        "GROUP BY country",
        "hive",
    )
    assert cols(static) == {
        "country": {("raw.events", "country", "DIRECT", "IDENTITY")},
        "total": {("raw.events", "amount", "DIRECT", "AGGREGATION")},
        "n_users": {("raw.events", "user_id", "DIRECT", "AGGREGATION")},
    }
    dynamic = one(
        session,
        "INSERT OVERWRITE TABLE curated.daily PARTITION (ds) "
        "SELECT country, sum(amount), count(DISTINCT user_id), to_date(ts) FROM raw.events GROUP BY country, to_date(ts)",
        "hive",
    )
    assert cols(dynamic)["ds"] == {("raw.events", "ts", "DIRECT", "TRANSFORMATION")}
    assert cols(dynamic)["total"] == {("raw.events", "amount", "DIRECT", "AGGREGATION")}


def test_a_cte_that_writes_is_read_as_the_rows_it_returns(session: Session) -> None:
    catalog(session, MOVIES)
    found = statements(
        session,
        """
        WITH moved AS (DELETE FROM raw.events WHERE ts < '2024-01-01' RETURNING *)
        INSERT INTO archive.events SELECT * FROM moved
        """,
        "postgres",
    )
    assert [(s.kind, s.target) for s in found] == [("insert", (NS, "archive.events"))]
    assert cols(found[0])["amount"] == {("raw.events", "amount", "DIRECT", "IDENTITY")}
    assert found[0].inputs == [(NS, "raw.events")]
    assert not any("moved" in w for w in found[0].warnings)

    found = statements(
        session,
        """
        WITH renamed AS (
            UPDATE raw.users SET name = initcap(name) WHERE country = 'NZ' RETURNING user_id, name
        )
        INSERT INTO curated.daily (country, n_users) SELECT name, user_id FROM renamed
        """,
        "postgres",
    )
    assert [(s.kind, s.target) for s in found] == [("update", (NS, "raw.users")), ("insert", (NS, "curated.daily"))]
    assert cols(found[0])["name"] == {("raw.users", "name", "DIRECT", "TRANSFORMATION")}
    assert cols(found[1])["country"] == {("raw.users", "name", "DIRECT", "TRANSFORMATION")}
    assert ("raw.users", "country", "FILTER") in indirect(found[1])


def test_a_recursive_cte_is_never_a_catalog_table(session: Session) -> None:
    catalog(session, MOVIES)
    lineage = one(
        session,
        """
        WITH RECURSIVE chain (employee_id, depth, top_manager) AS (
            SELECT id, 1, name FROM hr.employees WHERE manager_id IS NULL
            UNION ALL
            SELECT e.id, c.depth + 1, c.top_manager FROM hr.employees e JOIN chain c ON e.manager_id = c.employee_id
        )
        INSERT INTO hr.org_depth SELECT employee_id, depth, top_manager FROM chain
        """,
        "postgres",
    )
    assert lineage.inputs == [(NS, "hr.employees")] and lineage.warnings == []
    assert cols(lineage) == {
        "employee_id": {("hr.employees", "id", "DIRECT", "IDENTITY")},
        "depth": set(),
        "top_manager": {("hr.employees", "name", "DIRECT", "IDENTITY")},
    }
    assert ("hr.employees", "manager_id") in {(table, column) for table, column, _ in indirect(lineage)}


SALES = {**TABLES, "raw.sales": ["year", "quarter", "region", "amount"], "raw.wide": ["year", "q1", "q2", "q3"]}


def test_pivot_columns_come_from_the_aggregate_and_the_pivoted_key_decides(session: Session) -> None:
    catalog(session, SALES)
    lineage = one(
        session,
        "SELECT year, q1, q2 FROM raw.sales PIVOT (sum(amount) FOR quarter IN ('Q1' AS q1, 'Q2' AS q2))",
        "spark",
    )
    quarterly = {("raw.sales", "amount", "DIRECT", "AGGREGATION"), ("raw.sales", "quarter", "INDIRECT", "CONDITIONAL")}
    assert cols(lineage) == {"year": {("raw.sales", "year", "DIRECT", "IDENTITY")}, "q1": quarterly, "q2": quarterly}


def test_unpivot_values_come_from_every_unpivoted_column(session: Session) -> None:
    catalog(session, SALES)
    lineage = one(session, "SELECT * FROM raw.wide UNPIVOT (amount FOR quarter IN (q1, q2, q3))", "spark")
    assert cols(lineage) == {
        "year": {("raw.wide", "year", "DIRECT", "IDENTITY")},
        "quarter": set(),  # the unpivoted columns' names, no column's values
        "amount": {("raw.wide", q, "DIRECT", "IDENTITY") for q in ("q1", "q2", "q3")},
    }


CLICKS = {**TABLES, "raw.clicks": ["user_id", "url", "ts"], "curated.top_users": ["window_start", "user_id", "clicks"]}


@pytest.mark.parametrize(
    "window",
    [
        "TUMBLE(TABLE raw.clicks, DESCRIPTOR(ts), INTERVAL '10' MINUTES)",
        "HOP(TABLE raw.clicks, DESCRIPTOR(ts), INTERVAL '5' MINUTES, INTERVAL '10' MINUTES)",
        "CUMULATE(TABLE raw.clicks, DESCRIPTOR(ts), INTERVAL '2' MINUTES, INTERVAL '10' MINUTES)",
        # Flink 1.19+: session windows as a table function, partitioned by key.
        "SESSION(TABLE raw.clicks PARTITION BY user_id, DESCRIPTOR(ts), INTERVAL '5' MINUTES)",
        # Named arguments, as Flink's docs write them.
        "TUMBLE(DATA => TABLE raw.clicks, TIMECOL => DESCRIPTOR(ts), SIZE => INTERVAL '10' MINUTES)",
        "HOP(DATA => TABLE raw.clicks, TIMECOL => DESCRIPTOR(ts), SLIDE => INTERVAL '5' MINUTES, "
        "SIZE => INTERVAL '10' MINUTES)",
    ],
)
def test_flink_window_table_functions_and_top_n(session: Session, window: str) -> None:
    catalog(session, CLICKS)
    lineage = one(
        session,
        f"""
        INSERT INTO curated.top_users
        SELECT window_start, user_id, clicks FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY clicks DESC) AS rownum
            FROM (
                SELECT window_start, window_end, user_id, COUNT(url) AS clicks
                FROM TABLE({window})
                GROUP BY window_start, window_end, user_id
            )
        ) WHERE rownum <= 3
        """,
        "flink",
    )
    assert cols(lineage) == {
        "window_start": {("raw.clicks", "ts", "DIRECT", "TRANSFORMATION")},
        "user_id": {("raw.clicks", "user_id", "DIRECT", "IDENTITY")},
        "clicks": {("raw.clicks", "url", "DIRECT", "AGGREGATION")},
    }
    assert lineage.inputs == [(NS, "raw.clicks")] and lineage.warnings == []
    assert ("raw.clicks", "url") in {(table, column) for table, column, _ in indirect(lineage)}  # ranks: Top-N


def test_a_parse_error_after_a_flink_window_function_points_into_the_sql_sent(session: Session) -> None:
    from headwater.lineage.sql import SqlLineageError, lineage_of_sql

    sql = "SELECT window_start FROM TABLE(TUMBLE(TABLE raw.clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTES))\nWHERE (("
    with pytest.raises(SqlLineageError) as caught:
        lineage_of_sql(session, sql=sql, dialect="flink")
    assert caught.value.detail["line"] == 2
