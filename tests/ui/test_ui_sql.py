"""The SQL lineage page: an analyst pastes the statement of a nightly job and sees where each output column comes
from, and, when a table is not in the catalog, which one, as a partial answer rather than an error."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.anyio

NS = "hive://metastore.prod:9083"


async def test_the_sql_page_traces_columns_and_names_what_it_could_not_resolve(client: httpx.AsyncClient) -> None:
    orders = {
        "namespace": NS,
        "name": "sales.orders",
        "fields": [{"name": n, "type": t} for n, t in (("day", "date"), ("amount", "decimal(10,2)"), ("id", "bigint"))],
    }
    assert (await client.post("/api/v1/datasets", json=orders)).status_code == 201
    empty = await client.get("/ui/sql")
    assert empty.status_code == 200 and 'action="/ui/sql"' in empty.text and "Comes from" not in empty.text
    sql = (
        "INSERT INTO sales.daily_revenue SELECT o.day, sum(o.amount) AS revenue, max(r.rate) AS rate "
        "FROM sales.orders o JOIN finance.fx_rates r ON o.day = r.day GROUP BY o.day"
    )
    page = await client.get("/ui/sql", params={"sql": sql, "dialect": "spark", "namespace": NS})
    assert page.status_code == 200, page.text
    assert f"{NS}/sales.orders#amount" in page.text  # revenue comes from the known table's column
    assert "Partial: what could not be resolved" in page.text and "finance.fx_rates" in page.text
    broken = await client.get("/ui/sql", params={"sql": "SELECT FROM WHERE (", "dialect": "spark"})
    assert broken.status_code == 400 and "text/html" in broken.headers["content-type"]
    bad_dialect = await client.get("/ui/sql", params={"sql": "SELECT 1", "dialect": "cobol"})
    assert bad_dialect.status_code == 400 and "dialect" in bad_dialect.text
    too_long = await client.get("/ui/sql", params={"sql": "SELECT 1 -- " + "x" * 7000})
    assert too_long.status_code == 200 and "POST /api/v1/lineage/sql" in too_long.text
    hostile = await client.get("/ui/sql", params={"sql": "SELECT '<script>alert(1)</script>' AS x"})
    assert hostile.status_code == 200 and "<script>alert(1)" not in hostile.text
