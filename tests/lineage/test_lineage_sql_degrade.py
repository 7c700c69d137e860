"""SQL lineage degrades gracefully: a table the catalog does not know, a column no known table has, a join on
a column the catalog lacks, MERGE with ``UPDATE SET *`` / ``INSERT *`` and many branches, and deep nesting give
the lineage that can be traced with warnings naming what could not be, never a 400 for the statement or a 500."""

from __future__ import annotations

import httpx
import pytest
from sql_cases import NS, TABLES, catalog, cols, indirect, one
from sqlalchemy.orm import Session

CHANGES = {**TABLES, "staging.user_changes": ["user_id", "name", "email", "country", "op"]}

# A daily job that drops users a risk team blocked; the risk team's table is not catalogued.
BLOCKED = """
INSERT INTO curated.daily
SELECT to_date(ts), country, amount, user_id FROM raw.events
WHERE user_id NOT IN (SELECT uid FROM risk.blocked WHERE reason = 'fraud')
"""


def test_an_unknown_table_in_a_subquery_leaves_the_known_columns_traced(session: Session) -> None:
    catalog(session)
    lineage = one(session, BLOCKED)
    assert lineage.target == (NS, "curated.daily")
    assert cols(lineage) == {
        "ds": {("raw.events", "ts", "DIRECT", "TRANSFORMATION")},
        "country": {("raw.events", "country", "DIRECT", "IDENTITY")},
        "total": {("raw.events", "amount", "DIRECT", "IDENTITY")},
        "n_users": {("raw.events", "user_id", "DIRECT", "IDENTITY")},
    }
    assert {("risk.blocked", "uid", "FILTER"), ("risk.blocked", "reason", "FILTER")} <= indirect(lineage)
    assert (NS, "risk.blocked") in lineage.inputs
    assert any("'risk.blocked' is not in the catalog" in w for w in lineage.warnings)


def test_an_unqualified_column_goes_to_the_one_table_without_a_schema(session: Session) -> None:
    catalog(session)
    lineage = one(
        session,
        """
        SELECT e.ts, e.amount, segment, score * 2 AS doubled
        FROM raw.events e JOIN ml.user_scores s ON e.user_id = s.user_id
        """,
    )
    assert cols(lineage)["segment"] == {("ml.user_scores", "segment", "DIRECT", "IDENTITY")}
    assert cols(lineage)["doubled"] == {("ml.user_scores", "score", "DIRECT", "TRANSFORMATION")}
    assert any("'segment'" in w and "ml.user_scores" in w for w in lineage.warnings)


def test_a_column_two_unknown_tables_could_hold_is_named_in_a_warning(session: Session) -> None:
    catalog(session)
    lineage = one(
        session,
        "SELECT e.ts, segment FROM raw.events e JOIN ml.a a ON e.user_id = a.id JOIN ml.b b ON a.id = b.id",
    )
    assert cols(lineage)["ts"] == {("raw.events", "ts", "DIRECT", "IDENTITY")}
    assert cols(lineage)["segment"] == set()
    assert any("'segment'" in w and "ml.a" in w and "ml.b" in w for w in lineage.warnings)


def test_a_join_using_a_column_the_catalog_lacks_is_traced_with_a_warning(session: Session) -> None:
    catalog(session)
    lineage = one(session, "SELECT e.amount, u.email FROM raw.events e JOIN raw.users u USING (account_id)")
    assert cols(lineage) == {
        "amount": {("raw.events", "amount", "DIRECT", "IDENTITY")},
        "email": {("raw.users", "email", "DIRECT", "IDENTITY")},
    }
    assert any("account_id" in w for w in lineage.warnings)


def test_an_alias_used_in_where_over_an_unknown_table_is_traced(session: Session) -> None:
    catalog(session)
    lineage = one(
        session,
        "SELECT e.amount * 100 AS cents, fx.rate FROM raw.events e JOIN ref.fx fx ON e.country = fx.country "
        "WHERE cents > 0",
    )
    assert cols(lineage)["cents"] == {("raw.events", "amount", "DIRECT", "TRANSFORMATION")}
    assert cols(lineage)["rate"] == {("ref.fx", "rate", "DIRECT", "IDENTITY")}


def test_merge_with_update_set_star_insert_star_and_several_branches(session: Session) -> None:
    catalog(session, CHANGES)
    lineage = one(
        session,
        """
        MERGE INTO raw.users AS t
        USING staging.user_changes AS s
        ON t.user_id = s.user_id
        WHEN MATCHED AND s.op = 'delete' THEN DELETE
        WHEN MATCHED AND s.op = 'rename' THEN UPDATE SET t.name = concat(s.name, ' (was ', t.name, ')')
        WHEN MATCHED THEN UPDATE SET *
        WHEN NOT MATCHED AND s.op <> 'delete' THEN INSERT *
        WHEN NOT MATCHED BY SOURCE THEN DELETE
        """,
    )
    assert lineage.kind == "merge" and lineage.target == (NS, "raw.users")
    assert lineage.inputs == [(NS, "staging.user_changes")]
    assert cols(lineage) == {
        "user_id": {("staging.user_changes", "user_id", "DIRECT", "IDENTITY")},
        "name": {  # the strongest transformation of the branches that assign it
            ("staging.user_changes", "name", "DIRECT", "TRANSFORMATION"),
            ("raw.users", "name", "DIRECT", "TRANSFORMATION"),
        },
        "email": {("staging.user_changes", "email", "DIRECT", "IDENTITY")},
        "country": {("staging.user_changes", "country", "DIRECT", "IDENTITY")},
    }
    assert {("staging.user_changes", "op", "FILTER"), ("raw.users", "user_id", "JOIN")} <= indirect(lineage)


def test_merge_star_from_a_subquery_over_an_unknown_table_names_it(session: Session) -> None:
    catalog(session)
    lineage = one(
        session,
        """
        MERGE INTO raw.users t USING (SELECT * FROM cdc.users_feed) s ON t.user_id = s.user_id
        WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *
        """,
    )
    assert lineage.target == (NS, "raw.users") and (NS, "cdc.users_feed") in lineage.inputs
    # The target's columns are known: each is taken from the source's column of that name.
    assert cols(lineage)["email"] == {("cdc.users_feed", "email", "DIRECT", "IDENTITY")}
    assert any("cdc.users_feed" in w for w in lineage.warnings)


@pytest.mark.anyio
async def test_the_endpoint_answers_partial_lineage_with_warnings_not_400_or_500(client: httpx.AsyncClient) -> None:
    for name, columns in CHANGES.items():
        body = {"name": name, "namespace": NS, "fields": [{"name": c, "type": "string"} for c in columns]}
        assert (await client.post("/api/v1/datasets", json=body)).status_code == 201
    answer = await client.post("/api/v1/lineage/sql", json={"sql": BLOCKED, "namespace": NS})
    assert answer.status_code == 200, answer.text
    statement = answer.json()["statements"][0]
    assert {c["field"] for c in statement["columns"] if c["inputs"]} == {"ds", "country", "total", "n_users"}
    assert any("risk.blocked" in w for w in statement["warnings"])

    merge = (
        "MERGE INTO raw.users t USING staging.user_changes s ON t.user_id = s.user_id "
        "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    )
    answer = await client.post("/api/v1/lineage/sql", json={"sql": merge, "namespace": NS, "apply": True})
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied_edges"] >= 4
    # The connection is still good after it.
    assert (await client.get("/api/v1/datasets", params={"limit": 1})).status_code == 200

    query = """query($sql: String!, $ns: String) { sqlLineage(sql: $sql, namespace: $ns) {
        __typename ... on SqlLineage { statements { columns { field } warnings } } } }"""
    graphql = await client.post("/graphql", json={"query": query, "variables": {"sql": BLOCKED, "ns": NS}})
    result = graphql.json()["data"]["sqlLineage"]
    assert result["__typename"] == "SqlLineage", graphql.text
    assert any("risk.blocked" in w for w in result["statements"][0]["warnings"])


@pytest.mark.anyio
async def test_deeply_nested_subqueries_answer_a_4xx_or_a_partial_result(client: httpx.AsyncClient) -> None:
    sql = "SELECT user_id FROM raw.events"
    for level in range(120):
        sql = f"SELECT user_id FROM ({sql}) t{level}"
    answer = await client.post("/api/v1/lineage/sql", json={"sql": sql})
    assert answer.status_code == 200 or 400 <= answer.status_code < 500, answer.text
