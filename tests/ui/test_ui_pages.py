"""The search UI's pages through httpx + ASGITransport, on both databases: what a person sees, escaped; bad
parameters and unknown datasets answer an HTML page with a 4xx."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from headwater.lineage.schemas import EdgeOut, GraphOut, NodeOut
from headwater.ui.picture import PER_COLUMN, lineage_svg
from headwater.ui.routes import marked

pytestmark = pytest.mark.anyio

NS = "hive://metastore.example:9083"


def table(name: str, *, description: str, tags: list[str], owner: str = "team:core") -> dict[str, Any]:
    return {
        "namespace": NS,
        "name": name,
        "kind": "table",
        "format": "iceberg",
        "source_description": description,
        "fields": [{"name": "id", "type": "long"}, {"name": "v", "type": "string"}],
        "tags": tags,
        "owners": [{"name": owner}],
    }


async def register(client: httpx.AsyncClient, body: dict[str, Any]) -> int:
    response = await client.post("/api/v1/datasets", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def lineage_event(job: str, source: str, target: str, minutes: int) -> dict[str, Any]:
    """A COMPLETE event: ``target.id`` and ``target.v`` read the same columns of ``source``."""
    fields = {
        c: {"inputFields": [{"namespace": NS, "name": source, "field": c, "transformations": [{"type": "DIRECT"}]}]}
        for c in ("id", "v")
    }
    return {
        "eventType": "COMPLETE",
        "eventTime": (dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=minutes)).isoformat(),
        "producer": "https://example.com/tests",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "spark", "name": job},
        "inputs": [{"namespace": NS, "name": source}],
        "outputs": [{"namespace": NS, "name": target, "facets": {"columnLineage": {"fields": fields}}}],
    }


def test_highlights_keep_only_their_mark_tags() -> None:
    assert marked("<mark>play</mark>back &lt;b&gt;") == "<mark>play</mark>back &lt;b&gt;"  # escaped (SQL backend)
    assert marked("<mark>play</mark> <script>x</script>") == "<mark>play</mark> &lt;script&gt;x&lt;/script&gt;"
    assert marked("a <mark onclick=x>b</mark>") == "a &lt;mark onclick=x&gt;b</mark>"  # no attribute gets through
    assert marked(None) == ""


def test_the_lineage_picture_places_datasets_by_distance_and_draws_each_edge_once() -> None:
    def node(i: int, name: str, distance: int) -> NodeOut:
        return NodeOut(kind="dataset", id=i, namespace="ns", name=name, distance=distance)

    def edge(source: str, target: str) -> EdgeOut:
        when = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
        return EdgeOut(
            source=f"ns/{source}", target=f"ns/{target}", job="j", origin="openlineage", first_seen=when, last_seen=when
        )

    upstream = [node(10 + i, f"up_{i:02d}", -1) for i in range(PER_COLUMN + 2)]
    nodes = [node(1, "root<x>", 0), *upstream, node(2, "down", 1)]
    edges = [edge(n.name, "root<x>") for n in upstream] + [edge("root<x>", "down"), edge("root<x>", "down")]
    picture = str(lineage_svg(GraphOut(root="ns/root<x>", direction="both", nodes=nodes, edges=edges, isPartial=False)))
    assert picture.startswith('<svg class="lineage"') and "root&lt;x&gt;" in picture and "root<x>" not in picture
    assert picture.count('<a href="/ui/datasets/') == PER_COLUMN + 2  # the root, 12 upstream, 1 downstream
    assert "+2 more" in picture and 'href="/ui/datasets/23"' not in picture  # up_12, up_13 do not fit
    assert picture.count('<path class="edge"') == PER_COLUMN + 1  # drawn edges between shown boxes, once each
    root_x = int(picture.split('class="node root"><rect x="')[1].split('"')[0])
    down_x = int(picture.split('href="/ui/datasets/2"><g class="node"><rect x="')[1].split('"')[0])
    up_x = int(picture.split('href="/ui/datasets/10"><g class="node"><rect x="')[1].split('"')[0])
    assert up_x < root_x < down_x
    alone = GraphOut(root="ns/a", direction="both", nodes=[node(1, "a", 0)], edges=[], isPartial=False)
    assert lineage_svg(alone) == ""


async def test_search_shows_hits_with_facets_and_escapes_what_people_wrote(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await register(client, table("raw.plays", description="Every play <script>alert(1)</script>", tags=["raw"]))
    await register(client, table("curated.plays", description="Plays, deduplicated", tags=["gold"]))
    await register(client, table("billing.invoices", description="Invoices", tags=["finance"]))
    app.state.search_indexer.catch_up()
    page = await client.get("/ui", params={"q": "plays"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<mark>plays</mark>" in page.text and "billing.invoices" not in page.text
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)" in page.text
    assert 'href="/ui?q=plays&amp;type=dataset&amp;tag=gold"' in page.text  # a facet value narrows the search
    narrowed = await client.get("/ui", params={"q": "plays", "tag": "gold"})
    assert "curated.<mark>plays</mark>" in narrowed.text and "raw.<mark>plays</mark>" not in narrowed.text
    columns = await client.get("/ui", params={"q": "v", "type": "column"})
    assert "/ui/impact?dataset_id=" in columns.text
    bad = await client.get("/ui", params={"q": "plays", "type": "tables"})
    assert bad.status_code == 400 and "type must be dataset or column" in bad.text
    bad_sort = await client.get("/ui", params={"q": "plays", "sort": "loudest"})
    assert bad_sort.status_code == 400 and "loudest" in bad_sort.text
    assert (await client.get("/", follow_redirects=False)).headers["location"] == "/ui"


async def test_a_dataset_page_shows_fields_owners_and_lineage_both_ways(client: httpx.AsyncClient) -> None:
    ids = {}
    for name in ("raw.plays", "curated.plays", "agg.daily"):
        ids[name] = await register(client, table(name, description=f"The {name} table", tags=["t"], owner=f"o:{name}"))
    for i, (source, target) in enumerate([("raw.plays", "curated.plays"), ("curated.plays", "agg.daily")]):
        assert (
            await client.post("/api/v1/lineage", json=lineage_event(f"job_{i}", source, target, i))
        ).status_code == 201
    page = await client.get(f"/ui/datasets/{ids['curated.plays']}")
    assert page.status_code == 200
    upstream, downstream = page.text.split("Downstream (feeds)")
    assert f'href="/ui/datasets/{ids["raw.plays"]}">raw.plays' in upstream
    assert f'href="/ui/datasets/{ids["agg.daily"]}">agg.daily' in downstream and "raw.plays" not in downstream
    assert "spark/job_0" in page.text and "o:curated.plays" in page.text and "<code>v</code>" in page.text
    picture = page.text.split('<svg class="lineage"')[1].split("</svg>")[0]
    assert picture.count('<path class="edge"') == 2 and f'href="/ui/datasets/{ids["agg.daily"]}"' in picture
    assert (await client.get("/ui/datasets/424242")).status_code == 404
    not_an_id = await client.get("/ui/datasets/abc")
    assert not_an_id.status_code == 400 and "positive integer id" in not_an_id.text

    impact = await client.get("/ui/impact", params={"dataset_id": ids["raw.plays"], "field": "v"})
    assert impact.status_code == 200
    assert 'class="big">2</div>columns' in impact.text and 'class="big">2</div>datasets' in impact.text
    assert "o:agg.daily" in impact.text and "o:curated.plays" in impact.text  # the owners to tell
    no_column = await client.get("/ui/impact", params={"dataset_id": ids["raw.plays"], "field": "nope"})
    assert no_column.status_code == 404 and "has no column &#39;nope&#39;" in no_column.text
    assert (await client.get("/ui/impact")).status_code == 400

    # A column's lineage both ways, each edge with how it is known.
    column = await client.get("/ui/lineage", params={"dataset_id": ids["curated.plays"], "field": "v"})
    assert column.status_code == 200
    made_from, made_into = column.text.split("Downstream: what is made from it")
    made_into, edges = made_into.split("Edges and how each is known")
    assert f"dataset_id={ids['raw.plays']}&amp;field=v" in made_from and "agg.daily" not in made_from
    assert f"dataset_id={ids['agg.daily']}&amp;field=v" in made_into and "raw.plays <code>" not in made_into
    assert edges.count("<td>openlineage<br>") == 2 and "https://example.com/tests" in edges
    assert (await client.get("/ui/lineage", params={"dataset_id": ids["raw.plays"]})).status_code == 400
    unknown = await client.get("/ui/lineage", params={"dataset_id": ids["raw.plays"], "field": "nope"})
    assert unknown.status_code == 404

    # The page's schema history: a second version, its diff from the first.
    new_schema = {"fields": [{"name": "id", "type": "string"}, {"name": "w", "type": "string"}]}
    assert (await client.put(f"/api/v1/datasets/{ids['curated.plays']}/schema", json=new_schema)).status_code == 200
    page = await client.get(f"/ui/datasets/{ids['curated.plays']}")
    history = re.sub(r">\s+<", "><", page.text.split("Schema history")[1])
    assert "<td>2</td>" in history and "<code>id</code> long → string" in history
    assert "<td><code>w</code></td><td><code>v</code></td>" in history  # w added, v removed


async def test_the_jobs_page_lists_jobs_by_status_and_user(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/clusters", json={"name": "local", "type": "shell", "tags": ["sched:test"]})
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/commands", json={"name": "sh", "executable": ["/bin/sh", "-c"], "tags": ["type:sh"]})
    assert r.status_code == 201, r.text
    for user in ("alice", "bob"):
        body = {
            "name": f"report-{user}",
            "user": user,
            "command_args": ["true"],
            "cluster_criteria": [["sched:test"]],
            "command_criteria": ["type:sh"],
        }
        assert (await client.post("/api/v1/jobs", json=body)).status_code == 202
    page = await client.get("/ui/jobs")
    assert page.status_code == 200 and "report-alice" in page.text and "report-bob" in page.text
    alice = await client.get("/ui/jobs", params={"user": "alice"})
    assert "report-alice" in alice.text and "report-bob" not in alice.text
    assert "report-alice" not in (await client.get("/ui/jobs", params={"status": "SUCCEEDED"})).text
    bad = await client.get("/ui/jobs", params={"status": "DONE"})
    assert bad.status_code == 400 and "status must be one of" in bad.text


async def test_the_sources_page_counts_live_datasets_per_source(client: httpx.AsyncClient) -> None:
    made = await client.post(
        "/api/v1/sources",
        json={"name": "by-hand", "kind": "manual", "namespace": "by-hand", "description": "Typed <b>in</b>"},
    )
    assert made.status_code == 201, made.text
    for name in ("a.one", "a.two"):
        await register(client, {**table(name, description="x", tags=[]), "source": "by-hand", "namespace": "by-hand"})
    gone = await register(
        client, {**table("a.three", description="x", tags=[]), "source": "by-hand", "namespace": "by-hand"}
    )
    assert (await client.delete(f"/api/v1/datasets/{gone}", params={"reason": "test"})).status_code in (200, 204)
    await register(client, table("b.one", description="x", tags=[]))
    page = await client.get("/ui/sources")
    assert page.status_code == 200
    rows = {
        cells[0]: cells
        for cells in (
            re.findall(r"<td>(.*?)</td>", row, re.S) for row in re.sub(r">\s+<", "><", page.text).split("<tr>")[2:]
        )
    }
    by_hand = next(cells for name, cells in rows.items() if ">by-hand</a>" in name)
    assert by_hand[-1] == "2"  # the deleted dataset does not count
    assert "Typed &lt;b&gt;in&lt;/b&gt;" in by_hand[0]
    manual = next(cells for name, cells in rows.items() if ">manual</a>" in name)
    assert manual[-1] == "1"


async def test_a_job_page_shows_its_history_and_the_tail_of_its_logs(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Any
) -> None:
    from headwater.jobs.worker import JobWorker

    r = await client.post("/api/v1/clusters", json={"name": "local", "type": "shell", "tags": ["sched:test"]})
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/commands", json={"name": "sh", "executable": ["/bin/sh", "-c"], "tags": ["type:sh"]})
    assert r.status_code == 201, r.text
    script = "seq 1 5000; echo '<script>alert(1)</script>' >&2; exit 3"
    body = {
        "id": "ui-job",
        "name": "counting",
        "user": "alice",
        "command_args": [script],
        "cluster_criteria": [["sched:test"]],
        "command_criteria": ["type:sh"],
    }
    assert (await client.post("/api/v1/jobs", json=body)).status_code == 202
    worker = JobWorker(app.state.sessionmaker, data_dir=tmp_path / "data", heartbeat_interval=0.2, kill_grace=2.0)
    try:
        worker.drain(timeout=30)
    finally:
        worker.shutdown()
    page = await client.get("/ui/jobs/ui-job")
    assert page.status_code == 200
    assert "<strong>FAILED</strong>" in page.text and "exit code 3" in page.text
    assert "<td>RUNNING</td>" in page.text and "<td>FAILED</td>" in page.text  # the status history
    stderr, stdout = page.text.split("<h2>stderr")[1].split("<h2>stdout")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in stderr and "<script>alert" not in stderr
    size = len("".join(f"{i}\n" for i in range(1, 5001)))
    assert f"(the last 16384 of {size} bytes)" in stdout and "\n5000\n" in stdout and "\n2\n3\n4\n" not in stdout
    assert 'href="/ui/jobs/ui-job"' in (await client.get("/ui/jobs")).text
    assert (await client.get("/ui/jobs/no-such-job")).status_code == 404


async def test_odd_parameters_answer_an_html_page_with_a_4xx(client: httpx.AsyncClient) -> None:
    for path, params in (
        ("/ui/datasets/%C2%B2", {}),  # a Unicode digit
        ("/ui/datasets/" + "9" * 5000, {}),
        ("/ui/impact", {"dataset_id": "²"}),
        ("/ui", {"q": "a\u0000b"}),
        ("/ui", {"q": "a", "tag": "x\u0000"}),
        ("/ui/sources", {"cursor": "bm9wZQ"}),
    ):
        page = await client.get(path, params=params)
        assert page.status_code == 400, (path, params, page.text[:300])
        assert page.headers["content-type"].startswith("text/html") and 'class="error"' in page.text
    # A NUL the database refuses (PostgreSQL) is a 400 page too; SQLite stores it and finds nothing.
    for path, params in (("/ui/jobs", {"user": "a\u0000"}), ("/ui/jobs/a%00b", {})):
        page = await client.get(path, params=params)
        assert page.status_code in (200, 400, 404) and page.headers["content-type"].startswith("text/html"), page.text
