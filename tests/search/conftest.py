"""Search fixtures: every contract test runs on the ``sql`` backend (SQLite and PostgreSQL) and on the
``elasticsearch`` backend against an Elasticsearch API *emulator* (noida-db), never a real cluster.

The emulator is started by the fixture, bound to 127.0.0.1 on a free port, and stopped by its PID. It
reports itself as Elasticsearch 8.15, but its scores differ from Lucene's: tests check order on
clear-cut cases, never score values. When it cannot start, its tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from headwater.catalog import service
from headwater.catalog.models import Dataset
from headwater.catalog.schemas import DatasetCreate, FieldIn, Owner
from headwater.db import make_sessionmaker
from headwater.search.base import SearchBackend, SearchDocument, SearchUnavailable
from headwater.search.indexer import SearchIndexer
from headwater.search.sql import SqlSearchBackend

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# The emulator is a server the suite starts: its cases belong to the integration tier.
BACKENDS = ["sql", pytest.param("elasticsearch-emulator", marks=pytest.mark.integration)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The Elasticsearch backend does not depend on the catalog database: run it on SQLite only."""
    keep, drop = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        p = params.params if params else {}
        if p.get("search_backend") == "elasticsearch-emulator" and p.get("db_url") == "postgres":
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def unused_port() -> int:
    """A port nothing listens on: an unreachable backend."""
    return free_port()


class Emulator:
    """A running noida-db process serving the Elasticsearch REST API."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def stop(self) -> None:
        """Stop it by PID (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message}; CI needs the Elasticsearch emulator (pip install noida-db, part of the dev extra)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def elasticsearch_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The noida-db Elasticsearch emulator, one per test process."""
    try:
        import noida_db
    except ImportError:
        _unavailable("noida-db (the Elasticsearch emulator) is not installed")
    binary = Path(noida_db.__file__).parent / "noida-db"
    if not binary.exists():
        _unavailable(f"the emulator binary is missing at {binary}")
    data_dir = tmp_path_factory.mktemp("es-emulator")
    port = free_port()
    log = data_dir / "emulator.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), "start", "--data-dir", str(data_dir / "data"), "--host", "127.0.0.1"]
            + ["--only", "elasticsearch", "--elasticsearch-port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    emulator = Emulator(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(emulator.url, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            emulator.stop()
            _unavailable(f"the Elasticsearch emulator did not start: {log.read_text()[-500:]}")
        time.sleep(0.1)
    yield emulator
    emulator.stop()


@pytest.fixture(params=BACKENDS)
def search_backend(request: pytest.FixtureRequest, engine: Engine) -> Iterator[SearchBackend]:
    """Each backend, empty: sql on the suite database; Elasticsearch (emulator) under a fresh alias."""
    if request.param == "sql":
        backend: SearchBackend = SqlSearchBackend(engine)
        yield backend
        backend.close()
        return
    from headwater.search.elasticsearch import ElasticsearchBackend

    emulator: Emulator = request.getfixturevalue("elasticsearch_emulator")
    es = ElasticsearchBackend(emulator.url, alias=f"hwtest-{uuid.uuid4().hex[:10]}", refresh=True)
    es.ensure_ready()
    yield es
    for index in es.client.indices.get(index=f"{es.alias}-v*"):
        es.client.indices.delete(index=index)
    es.client.indices.delete_index_template(name=f"{es.alias}-template")
    es.close()


class DownSqlBackend(SqlSearchBackend):
    """The sql backend while its index cannot be written (the catalog database itself stays up)."""

    def replace(self, dataset_ids: Sequence[int], documents: Sequence[SearchDocument]) -> None:
        raise SearchUnavailable("search is down (simulated: the sql index refuses writes)")


@pytest.fixture
def unreachable_twin(engine: Engine) -> Callable[[SearchBackend], SearchBackend]:
    """The same index, unreachable: Elasticsearch on a port nothing listens on; sql refusing writes."""

    def twin(backend: SearchBackend) -> SearchBackend:
        if backend.name == "elasticsearch":
            from headwater.search.elasticsearch import ElasticsearchBackend

            alias = backend.alias  # type: ignore[attr-defined]
            return ElasticsearchBackend(f"http://127.0.0.1:{free_port()}", alias=alias, timeout=2)
        return DownSqlBackend(engine)

    return twin


@pytest.fixture
def indexer(search_backend: SearchBackend, engine: Engine) -> SearchIndexer:
    """An indexer feeding the backend from the suite database."""
    return SearchIndexer(factory=make_sessionmaker(engine), backend=search_backend, batch_size=50)


AddDataset = Callable[..., Dataset]


@pytest.fixture
def add_dataset(session: Session) -> AddDataset:
    """Register (and commit) a manual dataset: ``add_dataset("db.t", columns=["a", ("b", "desc")], tags=[...])``."""

    def add(
        name: str,
        *,
        columns: list[Any] = (),  # type: ignore[assignment]
        description: str | None = None,
        tags: list[str] = (),  # type: ignore[assignment]
        owners: list[str] = (),  # type: ignore[assignment]
        format: str | None = None,
        kind: str = "table",
    ) -> Dataset:
        fields = []
        for column in columns:
            col_name, col_description = (column, None) if isinstance(column, str) else column
            fields.append(FieldIn(name=col_name, type="string", description=col_description))
        dataset = service.register_dataset(
            session,
            data=DatasetCreate(
                name=name,
                kind=kind,  # type: ignore[arg-type]
                fields=fields,
                description=description,
                tags=list(tags),
                owners=[Owner(name=o) for o in owners],
                format=format,
            ),
        )
        session.commit()
        return dataset

    return add
