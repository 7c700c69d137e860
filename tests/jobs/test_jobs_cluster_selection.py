"""Choosing among several matching clusters (issue 19): the headwater.id/headwater.name tags, the least-loaded
default weighed by real running jobs, random, an operator's callable and a broken one; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cluster_selectors
import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, make_worker, wait_until
from pydantic import ValidationError

from headwater.jobs.worker import JobWorker
from headwater.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def worker(app: FastAPI, tmp_path: Path) -> Iterator[JobWorker]:
    """A worker with room for every sleeping job a test starts to make load; its jobs are killed afterwards."""
    job_worker = make_worker(app, tmp_path / "data", slots=8)
    yield job_worker
    job_worker.shutdown()


@pytest.fixture
def selector(app: FastAPI) -> Iterator[Callable[[str], None]]:
    """Set HEADWATER_JOBS_CLUSTER_SELECTOR of the app for one test."""
    original = app.state.settings

    def change(spec: str) -> None:
        app.state.settings = original.model_copy(update={"jobs_cluster_selector": spec})

    yield change
    app.state.settings = original


async def _cluster(client: httpx.AsyncClient, name: str, **extra: Any) -> dict[str, Any]:
    body = {"name": name, "type": "shell", "tags": ["pool:x"], **extra}
    r = await client.post("/api/v1/clusters", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _command(client: httpx.AsyncClient, name: str = "sh", **extra: Any) -> dict[str, Any]:
    body = {"name": name, "executable": ["/bin/sh", "-c"], "tags": ["type:sh"], **extra}
    r = await client.post("/api/v1/commands", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _submit(client: httpx.AsyncClient, script: str = "true", **extra: Any) -> dict[str, Any]:
    r = await client.post("/api/v1/jobs", json=job_body(script, **{"cluster_criteria": [["pool:x"]], **extra}))
    assert r.status_code == 202, r.text
    return dict(r.json())


async def _run_pinned(client: httpx.AsyncClient, worker: JobWorker, load: dict[str, int], **extra: Any) -> None:
    """Start ``load[name]`` sleeping jobs on each named cluster, running for real through ``worker``."""
    ids = [
        (await _submit(client, "sleep 30", cluster_criteria=[[f"headwater.name:{name}"]], **extra))["id"]
        for name, count in load.items()
        for _ in range(count)
    ]

    async def statuses() -> set[str]:
        return {(await client.get(f"/api/v1/jobs/{i}")).json()["status"] for i in ids}

    target = len(worker.running) + len(ids)
    wait_until(lambda: len(worker.running) == target, worker)
    assert await statuses() == {"RUNNING"}


async def test_headwater_id_and_name_tags_select_exactly_that_cluster_and_command(client: httpx.AsyncClient) -> None:
    first = await _cluster(client, "a")
    second = await _cluster(client, "b")
    await _command(client, "sh1")
    sh2 = await _command(client, "sh2")
    assert first["tags"] == ["pool:x"]  # computed, never stored
    assert first["implicit_tags"] == [f"headwater.id:{first['id']}", "headwater.name:a"]
    assert sh2["implicit_tags"] == [f"headwater.id:{sh2['id']}", "headwater.name:sh2"]
    by_name = await _submit(client, cluster_criteria=[["headwater.name:b"]], command_criteria=["headwater.name:sh2"])
    assert (by_name["cluster"], by_name["command"]) == ("b", "sh2")
    by_id = await _submit(client, cluster_criteria=[[f"headwater.id:{first['id']}", "pool:x"]])
    assert by_id["cluster"] == "a"
    by_command_id = await _submit(client, command_criteria=[f"headwater.id:{sh2['id']}"])
    assert by_command_id["command"] == "sh2"
    # a command's own cluster criteria may pin a cluster the same way
    await _command(client, "on-b-only", tags=["type:pinned"], cluster_criteria=[[f"headwater.id:{second['id']}"]])
    for _ in range(3):
        assert (await _submit(client, command_criteria=["type:pinned"]))["cluster"] == "b"
    unknown = await _submit(client, cluster_criteria=[["headwater.name:nope"]])
    assert (
        unknown["status"] == "INVALID" and "['headwater.name:nope'] matched no UP cluster" in unknown["status_message"]
    )


async def test_tags_in_the_reserved_prefix_are_refused(client: httpx.AsyncClient) -> None:
    await _cluster(client, "a")
    other = await _cluster(client, "b")
    impostor = await client.post(
        "/api/v1/clusters", json={"name": "c", "type": "shell", "tags": [f"headwater.id:{other['id']}"]}
    )
    assert impostor.status_code == 422 and "reserved" in impostor.json()["error"]["message"]
    renamed = await client.patch("/api/v1/clusters/a", json={"tags": ["ok", "Headwater.name:b"]})
    assert renamed.status_code == 422 and "'Headwater.name:b'" in renamed.json()["error"]["message"]
    command = await client.post(
        "/api/v1/commands", json={"name": "x", "executable": ["true"], "tags": ["headwater.owner:me"]}
    )
    assert command.status_code == 422 and "reserved" in command.json()["error"]["message"]
    await _command(client)
    patched = await client.patch("/api/v1/commands/sh", json={"tags": ["headwater.name:other"]})
    assert patched.status_code == 422
    typo = await client.post("/api/v1/jobs", json=job_body("true", cluster_criteria=[["headwater.nmae:a"]]))
    assert typo.status_code == 422 and "headwater.id:<id> and headwater.name:<name>" in typo.json()["error"]["message"]
    assert (await client.get("/api/v1/clusters/a")).json()["tags"] == ["pool:x"]


async def test_least_loaded_cluster_is_chosen_by_its_running_jobs_per_slot(
    client: httpx.AsyncClient, worker: JobWorker
) -> None:
    await _cluster(client, "small", max_concurrent_jobs=2)
    await _cluster(client, "big", max_concurrent_jobs=8)
    await _cluster(client, "busy", max_concurrent_jobs=8)
    await _command(client)
    await _run_pinned(client, worker, {"small": 1, "big": 1, "busy": 3})  # 1/2, 1/8, 3/8
    job = await _submit(client)
    assert job["cluster"] == "big"
    message = job["status_message"]
    assert "selector least-loaded chose cluster 'big' (least loaded)" in message
    assert "small 1/2 jobs" in message and "busy 3/8 jobs" in message and "command 'sh'" in message


async def test_equal_loads_go_to_the_cluster_with_most_free_memory(
    client: httpx.AsyncClient, worker: JobWorker
) -> None:
    await _cluster(client, "large", max_memory_mb=4000)
    await _cluster(client, "medium", max_memory_mb=2000)
    await _command(client)
    await _run_pinned(client, worker, {"large": 1}, memory_mb=3000)
    await _run_pinned(client, worker, {"medium": 1}, memory_mb=500)
    job = await _submit(client, memory_mb=100)
    assert job["cluster"] == "medium" and job["memory_mb"] == 100  # 1500 MB free against 1000
    assert "large 1/8 jobs, 1000 of 4000 MB free" in job["status_message"]


async def test_a_cluster_with_the_jobs_memory_free_wins_over_a_less_loaded_one_without(
    client: httpx.AsyncClient, worker: JobWorker
) -> None:
    await _cluster(client, "cramped", max_memory_mb=4000)
    await _cluster(client, "roomy", max_memory_mb=4000)
    await _command(client)
    await _run_pinned(client, worker, {"cramped": 1}, memory_mb=3500)  # 1/8 jobs, 500 MB free
    await _run_pinned(client, worker, {"roomy": 2}, memory_mb=500)  # 2/8 jobs, 3000 MB free
    assert (await _submit(client, memory_mb=1000))["cluster"] == "roomy"
    assert (await _submit(client, memory_mb=400))["cluster"] == "cramped"  # it fits there: fewer jobs wins


async def test_a_burst_of_queued_submissions_spreads_evenly(client: httpx.AsyncClient) -> None:
    # No worker runs: only queued jobs tell the clusters apart, and the default counts them.
    for name in ("a", "b", "c"):
        await _cluster(client, name)
    await _command(client)
    jobs = [await _submit(client) for _ in range(9)]
    assert Counter(job["cluster"] for job in jobs) == {"a": 3, "b": 3, "c": 3}
    others = sorted({"a", "b", "c"} - {jobs[0]["cluster"]})
    assert f"(least loaded; tied with {others}, picked at random)" in jobs[0]["status_message"]


async def test_random_selector_spreads_jobs(client: httpx.AsyncClient, selector: Callable[[str], None]) -> None:
    selector("random")
    await _cluster(client, "a")
    await _cluster(client, "b")
    await _command(client)
    jobs = [await _submit(client) for _ in range(30)]
    assert {job["cluster"] for job in jobs} == {"a", "b"}  # all on one: probability 2**-29
    assert all("selector random chose cluster" in job["status_message"] for job in jobs)


async def test_an_operators_selector_gets_the_loads_and_chooses(
    client: httpx.AsyncClient, worker: JobWorker, selector: Callable[[str], None]
) -> None:
    await _cluster(client, "a")
    await _cluster(client, "b")
    await _command(client)
    await _run_pinned(client, worker, {"b": 2})
    selector("cluster_selectors:busiest")
    cluster_selectors.SEEN.clear()
    job = await _submit(client, name="wants-company")
    assert job["cluster"] == "b"
    assert "selector cluster_selectors:busiest chose cluster 'b'" in job["status_message"]
    (candidates, name), = cluster_selectors.SEEN  # fmt: skip
    assert name == "wants-company"
    assert {(c.name, c.running, c.queued, c.command) for c in candidates} == {("a", 0, 0, "sh"), ("b", 2, 0, "sh")}
    selector("cluster_selectors:undecided")
    fallback = await _submit(client)
    assert fallback["cluster"] == "a"
    assert (
        "selector least-loaded chose cluster 'a' (cluster_selectors:undecided returned None)"
        in (fallback["status_message"])
    )


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("cluster_selectors:stranger", "returned ClusterLoad(name='elsewhere'"),
        ("cluster_selectors:by_name", "returned 'a', not one of the candidates ['a', 'b']"),
        ("cluster_selectors:broken", "raised RuntimeError: selector bug"),
    ],
)
async def test_a_misbehaving_selector_makes_the_job_invalid_saying_why(
    client: httpx.AsyncClient, selector: Callable[[str], None], spec: str, says: str
) -> None:
    await _cluster(client, "a")
    await _cluster(client, "b")
    await _command(client)
    selector(spec)
    r = await client.post("/api/v1/jobs", json=job_body("true", cluster_criteria=[["pool:x"]]))
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "INVALID" and job["cluster"] is None
    assert f"cluster selector {spec}" in job["status_message"] and says in job["status_message"]
    # one matching cluster needs no selector
    pinned = await _submit(client, cluster_criteria=[["headwater.name:a"]])
    assert pinned["status"] == "RESOLVED"


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("no_such_module:choose", "module 'no_such_module' cannot be imported"),
        ("cluster_selectors:missing", "has no callable 'missing'"),
        ("fastest", "is not one of ['least-loaded', 'random'] nor module:function"),
    ],
)
def test_a_selector_setting_that_names_nothing_usable_stops_the_start(spec: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(jobs_cluster_selector=spec)
    assert "HEADWATER_JOBS_CLUSTER_SELECTOR" in str(caught.value) and says in str(caught.value)


async def test_graphql_submits_with_memory_and_shows_the_implicit_tags(client: httpx.AsyncClient) -> None:
    await _cluster(client, "a", max_memory_mb=2000)
    await _cluster(client, "b")
    await _command(client)
    submit = """mutation { submitJob(input: {name: "g", commandArgs: ["true"], memoryMb: 1500,
                clusterCriteria: [["headwater.name:a"]], commandCriteria: ["type:sh"]})
                { ... on Job { cluster memoryMb status } } }"""
    r = await client.post("/graphql", json={"query": submit})
    assert r.json()["data"]["submitJob"] == {"cluster": "a", "memoryMb": 1500, "status": "RESOLVED"}
    query = "{ clusters { ... on ClusterPage { items { name implicitTags maxMemoryMb } } } }"
    items = (await client.post("/graphql", json={"query": query})).json()["data"]["clusters"]["items"]
    assert [(c["name"], c["implicitTags"][1], c["maxMemoryMb"]) for c in items] == [
        ("a", "headwater.name:a", 2000), ("b", "headwater.name:b", None),
    ]  # fmt: skip
