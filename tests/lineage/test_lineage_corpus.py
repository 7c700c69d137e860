"""Replaying a corpus of OpenLineage events shaped as public integrations send them (Airflow, Spark, dbt, Flink,
Hive, Debezium, the Python client, Marquez's examples) through the real routes: one by one, in reverse order and
in batches, with no server error, every event accepted, and every dataset findable afterwards by the
(namespace, name) its events used. On SQLite and PostgreSQL.

The corpus is ``tests/lineage/corpus/`` (see its SOURCES.md). More corpora are replayed the same way when
``HEADWATER_OL_CORPUS`` names their folders (separated by ``os.pathsep``), or when a ``lineage-corpus`` folder
sits in the ``shared/`` folder beside the checkout: that is where captures copied verbatim from other projects
belong, since they are not committed here.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from suite_tables import empty_tables

from headwater.app import create_app
from headwater.settings import Settings

pytestmark = pytest.mark.anyio

HERE = Path(__file__).parent
BATCH = 25
# The production default: real events run large (a Spark plan facet, Marquez's event_large.json is 215 kB); the
# suite's app is configured with 64 kB.
MAX_BODY = Settings.model_fields["max_body_bytes"].default


def _roots() -> list[Path]:
    roots = [HERE / "corpus"]
    roots += [Path(p) for p in os.environ.get("HEADWATER_OL_CORPUS", "").split(os.pathsep) if p]
    shared = HERE.parents[2] / "shared" / "lineage-corpus"
    if shared.is_dir():
        roots.append(shared)
    return [r for r in roots if r.is_dir()]


def _events_in(document: Any) -> Iterator[dict[str, Any]]:
    """The OpenLineage events a file holds: one event, a list of them, or ``{"events": [...]}``."""
    if isinstance(document, list):
        for item in document:
            yield from _events_in(item)
    elif isinstance(document, dict):
        if "eventTime" in document and ("run" in document or "job" in document or "dataset" in document):
            yield document
        elif isinstance(document.get("events"), list):
            yield from _events_in(document["events"])


def _datasets(event: dict[str, Any]) -> list[dict[str, Any]]:
    if "dataset" in event:
        return [event["dataset"]]
    return [*(event.get("inputs") or []), *(event.get("outputs") or [])]


@dataclass
class Corpus:
    """The events of one corpus folder, in file order (a file's events in their order)."""

    root: Path
    labels: list[str]
    events: list[dict[str, Any]]

    def names(self) -> set[tuple[str, str]]:
        """Every (namespace, name) the valid events give a dataset (inputs, outputs, a DatasetEvent's dataset)."""
        found: set[tuple[str, str]] = set()
        for event in filter(_valid_per_spec, self.events):
            found.update((d["namespace"], d["name"]) for d in _datasets(event))
        return found

    def symlinked(self) -> set[tuple[str, str]]:
        """The names whose dataset carries a symlinks facet (it may be filed under its first symlink)."""
        found: set[tuple[str, str]] = set()
        for event in self.events:
            for d in _datasets(event):
                identifiers = ((d.get("facets") or {}).get("symlinks") or {}).get("identifiers") or []
                if identifiers:
                    found.add((d["namespace"], d["name"]))
        return found


def _load(root: Path) -> Corpus:
    labels: list[str] = []
    events: list[dict[str, Any]] = []
    for path in sorted(root.rglob("*.json")):
        for index, event in enumerate(_events_in(orjson.loads(path.read_bytes()))):
            labels.append(f"{path.relative_to(root)}#{index}")
            events.append(event)
    return Corpus(root, labels, events)


CORPORA = [_load(root) for root in _roots()]


def test_the_committed_corpus_covers_several_producers_and_event_kinds() -> None:
    corpus = CORPORA[0]
    assert corpus.root == HERE / "corpus"
    assert len(corpus.events) >= 60
    producers = {label.split("/")[0] for label in corpus.labels}
    assert {"airflow", "spark", "dbt", "flink"} <= producers
    kinds = {("run" if "run" in e else "dataset" if "dataset" in e else "job") for e in corpus.events}
    assert kinds == {"run", "job", "dataset"}
    facets = {key for event in corpus.events for d in _datasets(event) for key in d.get("facets") or {}}
    assert {"symlinks", "columnLineage", "schema"} <= facets
    assert any("+" not in e["eventTime"] and not e["eventTime"].endswith("Z") for e in corpus.events)


def _valid_per_spec(event: dict[str, Any]) -> bool:
    """What the OpenLineage spec requires of an event and a producer can get wrong: a date-time, a producer, a UUID
    run id, a job's namespace and name (a corpus may hold deliberately broken events; those must get a 4xx)."""
    try:
        dt.datetime.fromisoformat(str(event["eventTime"]).replace("Z", "+00:00"))
        if not event.get("producer"):
            return False
        if "run" in event:
            uuid.UUID(str(event["run"]["runId"]))
        if "job" in event:
            return bool(event["job"].get("namespace")) and bool(event["job"].get("name"))
    except (KeyError, TypeError, ValueError):
        return False
    return True


@pytest.fixture(scope="module")
def corpus_app(app_settings: Settings) -> FastAPI:
    """The suite's app with the default body limit."""
    return create_app(app_settings.model_copy(update={"max_body_bytes": MAX_BODY}), prepare=False)


@pytest.fixture
async def corpus_client(corpus_app: FastAPI, engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    """A client of that app; the database is emptied after each test."""
    transport = httpx.ASGITransport(app=corpus_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://headwater.test") as client:
        yield client
    corpus_app.state.dataset_cache.clear()
    empty_tables(engine)


def _batches(pairs: list[tuple[str, dict[str, Any]]]) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """At most BATCH events a batch, and under the body limit."""
    chunk: list[tuple[str, dict[str, Any]]] = []
    size = 0
    for pair in pairs:
        length = len(orjson.dumps(pair[1])) + 1
        if chunk and (len(chunk) == BATCH or size + length > MAX_BODY - 2):
            yield chunk
            chunk, size = [], 0
        chunk.append(pair)
        size += length
    if chunk:
        yield chunk


async def _post(client: httpx.AsyncClient, body: Any, path: str) -> httpx.Response:
    return await client.post(path, content=orjson.dumps(body), headers={"content-type": "application/json"})


async def _replay(client: httpx.AsyncClient, corpus: Corpus, mode: str) -> list[str]:
    """Send the corpus's valid events one way (``one_by_one``, ``reverse``, ``batches``); the labels of those not
    taken, with their answers. Events the spec refuses are sent one by one and must get a 4xx."""
    refused: list[str] = []
    pairs = list(zip(corpus.labels, corpus.events, strict=True))
    for label, event in [p for p in pairs if not _valid_per_spec(p[1])]:
        response = await _post(client, event, "/api/v1/lineage")
        assert 400 <= response.status_code < 500, (label, response.text)
    pairs = [p for p in pairs if _valid_per_spec(p[1])]
    if mode == "reverse":
        pairs.reverse()
    if mode == "batches":
        for chunk in _batches(pairs):
            response = await _post(client, [event for _, event in chunk], "/api/v1/lineage/batch")
            assert response.status_code < 500, (chunk[0][0], response.text)
            if response.status_code != 201:
                refused.append(f"{chunk[0][0]}..: {response.status_code} {response.text[:300]}")
        return refused
    for label, event in pairs:
        response = await _post(client, event, "/api/v1/lineage")
        assert response.status_code < 500, (label, response.text)
        if response.status_code != 201:
            refused.append(f"{label}: {response.status_code} {response.text[:300]}")
    return refused


async def _unfindable(client: httpx.AsyncClient, names: set[tuple[str, str]]) -> set[tuple[str, str]]:
    missing: set[tuple[str, str]] = set()
    for namespace, name in sorted(names):
        response = await client.get("/api/v1/datasets/by-name", params={"namespace": namespace, "name": name})
        assert response.status_code in (200, 404), response.text
        if response.status_code == 404:
            missing.add((namespace, name))
    return missing


@pytest.mark.parametrize("corpus", CORPORA, ids=[c.root.name for c in CORPORA])
@pytest.mark.parametrize("mode", ["one_by_one", "reverse", "batches"])
async def test_every_event_of_the_corpus_is_taken_and_its_datasets_found(
    corpus_client: httpx.AsyncClient, corpus: Corpus, mode: str
) -> None:
    client = corpus_client
    refused = await _replay(client, corpus, mode)
    assert refused == []
    # Sent again, every event is a duplicate: nothing changes, nothing fails.
    valid = [event for event in corpus.events if _valid_per_spec(event)]
    again = await _post(client, valid[:5], "/api/v1/lineage/batch")
    assert again.status_code == 201 and again.json()["duplicates"] == len(valid[:5]), again.text
    # Every name an event used finds its dataset, a path filed under its table's symlink included.
    assert await _unfindable(client, corpus.names()) == set()


@pytest.mark.parametrize("corpus", CORPORA[:1], ids=["corpus"])
async def test_a_dataset_filed_under_a_symlink_is_found_by_the_producers_name(
    corpus_client: httpx.AsyncClient, corpus: Corpus
) -> None:
    client = corpus_client
    assert await _replay(client, corpus, "batches") == []
    assert corpus.symlinked(), "the corpus holds names filed under a symlink"
    for namespace, name in sorted(corpus.symlinked()):
        found = await client.get("/api/v1/datasets/by-name", params={"namespace": namespace, "name": name})
        assert found.status_code == 200, (namespace, name)
        assert (found.json()["namespace"], found.json()["name"]) != (namespace, name)  # the table's own name
