"""Search admission: with ``search_concurrency`` set, a process runs at most that many searches at once; the rest
wait their turn (docs/adr/0014-search-admission.md). Off (0) by default."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from headwater.db import create_db_engine
from headwater.search import make_backend
from headwater.search.base import (
    DocumentType,
    Rebuild,
    SearchBackend,
    SearchDocument,
    SearchPage,
    SearchQuery,
    Suggestion,
)
from headwater.settings import Settings


class _CountingBackend(SearchBackend):
    """A backend whose every query takes a while and records how many ran at the same time."""

    name = "counting"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.order: list[str] = []

    def run(self, query: SearchQuery) -> SearchPage:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.order.append(query.q or "")
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        return SearchPage(items=[], next_cursor=None, total=1)

    def ensure_ready(self) -> None:
        """Nothing to prepare."""

    def replace(self, dataset_ids: Sequence[int], documents: Sequence[SearchDocument]) -> None:
        """Not used here."""

    def suggest(
        self, prefix: str, *, limit: int, types: Sequence[DocumentType], audience: frozenset[str] | None = None
    ) -> list[Suggestion]:
        return []

    def count_documents(self) -> dict[str, int]:
        return {}

    def begin_rebuild(self) -> Rebuild:
        raise NotImplementedError


def _search_from_threads(backend: SearchBackend, count: int) -> None:
    threads = [
        threading.Thread(target=backend.search, args=(SearchQuery(q=f"word{i}").validate(),)) for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)


@pytest.mark.parametrize("slots", [1, 3])
def test_at_most_the_configured_number_of_searches_run_at_once(slots: int) -> None:
    backend = _CountingBackend()
    backend.limit_concurrency(slots)
    _search_from_threads(backend, 12)
    assert backend.most == slots
    assert len(backend.order) == 12  # every search was answered, none dropped


def test_zero_means_no_bound() -> None:
    backend = _CountingBackend()
    backend.limit_concurrency(0)
    _search_from_threads(backend, 8)
    assert backend.most > 3


def test_the_server_backend_takes_its_bound_from_the_settings(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'search.db'}")
    backend = make_backend(Settings(search_concurrency=2), engine)
    try:
        assert backend._slots is not None
        assert backend._slots.acquire(blocking=False) and backend._slots.acquire(blocking=False)
        assert not backend._slots.acquire(blocking=False)  # a third would wait its turn
    finally:
        backend.close()
        engine.dispose()


def test_searches_are_unbounded_by_default(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'search.db'}")
    backend = make_backend(Settings(), engine)
    try:
        assert backend._slots is None
    finally:
        backend.close()
        engine.dispose()
