"""An in-process cache of serialised dataset answers (one dataset, or one page of a dataset list), kept
exact by the change-event outbox.

Reading one dataset means loading up to thousands of field rows and serialising them; a list page means
a hundred datasets with their tags and owners. Most reads are of data that has not changed. Every
change to a dataset appends a ChangeEvent in the same transaction, so the outbox tells exactly which
entries went stale (a changed dataset makes every list page stale, since any page may show it):

* writes made by this process invalidate their datasets as soon as their transaction commits;
* writes made by other processes (CLI, workers, other server replicas) are found by a poller that
  reads new outbox rows every ``cache_poll_interval`` seconds (0.25 by default);
* when the poller cannot reach the database, the cache empties and stops serving until it can;
* an entry computed from a read that overlapped an invalidation is not stored (the generation check);
* a poller whose position is behind what retention removed from the outbox empties the cache.

Writes guarded by If-Match always check the database, never this cache.

Restricted datasets (catalog.restrictions) never leak through it: a dataset's entry carries its audience and is
served only to a reader in it (or an admin); list pages are keyed by the reader's audience as well as the query,
since a page depends on which datasets the reader may see.
Why cache-first, with the figures: docs/adr/0002-cache-first-reads.md.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from headwater.auth.actions import Action
from headwater.auth.policy import Audience, audience_of
from headwater.auth.principal import Principal
from headwater.catalog.events import trimmed_through
from headwater.catalog.models import ChangeEvent
from headwater.db import read_scope
from headwater.loops import LoopService

__all__ = ["CachedReads", "DatasetCache", "OutboxPoller", "list_cache_key"]

log = logging.getLogger("headwater.cache")


CacheKey = int | str  # a dataset id, or "list" + the reader's audience + "?" + the raw query string of a page
Entry = tuple[str, bytes, frozenset[str]]  # etag, body, and the dataset's audience (empty: not restricted)


def list_cache_key(query_string: str, audience: Audience = None) -> str:
    """The cache key of a dataset list page as ``audience`` sees it (None: one who sees every dataset)."""
    if audience is None:
        return "list?" + query_string
    return "list[" + "\x00".join(sorted(audience)) + "]?" + query_string


class DatasetCache:
    """LRU of ``dataset id | list query -> (etag, JSON bytes, audience)``, bounded in bytes; thread-safe."""

    def __init__(self, *, max_bytes: int, enabled: bool = True) -> None:
        self.max_bytes = max_bytes
        self.enabled = enabled
        self._entries: OrderedDict[CacheKey, Entry] = OrderedDict()
        self._size = 0
        self._generation = 0
        self._healthy = True
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def generation(self) -> int:
        """A token to take before reading the database for an entry; pass it back to :meth:`put`."""
        return self._generation

    def get(self, key: CacheKey, audience: Audience = None) -> tuple[str, bytes] | None:
        """The cached ``(etag, body)`` of a dataset or a list page, or None; None too for a restricted dataset
        ``audience`` may not see (the route then answers it as not found)."""
        if not (self.enabled and self._healthy):
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or (entry[2] and audience is not None and not entry[2] & audience):
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0], entry[1]

    def put(
        self, key: CacheKey, generation: int, etag: str, body: bytes, members: frozenset[str] = frozenset()
    ) -> tuple[str, bytes]:
        """Store an entry (with the audience ``members`` of a restricted dataset) unless an invalidation happened
        since ``generation`` was taken."""
        entry = (etag, body, members)
        if not (self.enabled and self._healthy) or len(body) > self.max_bytes // 4:
            return etag, body
        with self._lock:
            if generation != self._generation:
                return etag, body
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= len(old[1])
            self._entries[key] = entry
            self._size += len(body)
            while self._size > self.max_bytes and self._entries:
                _, (_, evicted, _) = self._entries.popitem(last=False)
                self._size -= len(evicted)
        return etag, body

    def invalidate(self, dataset_ids: set[int] | list[int]) -> None:
        """Forget these datasets and every list page (any page may show them)."""
        if not dataset_ids:
            return
        with self._lock:
            self._generation += 1
            stale: list[CacheKey] = [key for key in self._entries if isinstance(key, str)]
            stale.extend(dataset_ids)
            for key in stale:
                old = self._entries.pop(key, None)
                if old is not None:
                    self._size -= len(old[1])

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._size = 0

    def set_healthy(self, healthy: bool) -> None:
        """Serve from the cache only while the outbox can be watched; going unhealthy empties it."""
        with self._lock:
            self._healthy = healthy
        if not healthy:
            self.clear()

    def __len__(self) -> int:
        return len(self._entries)


class OutboxPoller(LoopService[None]):
    """A background loop that invalidates cache entries named by new change events."""

    log = log

    def __init__(
        self, *, engine: Engine, cache: DatasetCache, interval: float, factory: sessionmaker[Session] | None = None
    ) -> None:
        super().__init__(name="headwater-cache-poller", interval=interval, join_timeout=5)
        self.cache = cache
        self._factory = factory or sessionmaker(bind=engine)
        self.position: int | None = None

    def on_start(self) -> None:
        """Take the current outbox position before polling in the background."""
        self.poll_once()

    def run_once(self) -> None:
        """One poll (it never raises: an unreachable database disables the cache instead)."""
        self.poll_once()

    def poll_once(self) -> None:
        """Read outbox rows after the last position and invalidate the datasets they name."""
        try:
            with read_scope(self._factory) as session:
                if self.position is None:
                    latest = session.scalar(select(ChangeEvent.id).order_by(ChangeEvent.id.desc()).limit(1))
                    self.position = latest or 0
                    self.cache.set_healthy(True)
                    return
                if self.position < (through := trimmed_through(session)):
                    # Retention removed changes this poller had not read (it was stopped or cut off that long):
                    # which entries went stale is unknown, so every entry is.
                    log.warning("change outbox trimmed past this cache's position %d: emptying it", self.position)
                    self.cache.clear()
                    self.position = through
                while True:
                    rows = session.execute(
                        select(ChangeEvent.id, ChangeEvent.entity_type, ChangeEvent.entity_id)
                        .where(ChangeEvent.id > self.position)
                        .order_by(ChangeEvent.id)
                        .limit(1000)
                    ).all()
                    if not rows:
                        break
                    self.cache.invalidate({row.entity_id for row in rows if row.entity_type == "dataset"})
                    self.position = rows[-1].id
            self.cache.set_healthy(True)
        except SQLAlchemyError as exc:
            log.warning("cache disabled until the change outbox can be read again: %s", exc)
            self.cache.set_healthy(False)


_DATASET_PATH = re.compile(r"^/api/v1/datasets/([1-9][0-9]{0,17})$")


def _reader(scope: Scope) -> Principal | None:
    # Only a principal allowed to read the catalog is answered from the cache; anyone else goes to the route,
    # which refuses them (401 or 403) as it would without the cache.
    principal: Principal | None = scope.get("state", {}).get("principal")
    return principal if principal is not None and Action.CATALOG_READ in principal.actions else None


class CachedReads:
    """Read-through HTTP cache in front of the app: answers ``GET /api/v1/datasets/{id}`` and dataset list
    pages straight from :class:`DatasetCache` when the entry is there, without routing, validation or a
    thread hop.

    Only the routes put entries in the cache, after validating the request and building the answer, and
    the same keys are used here, so a hit is byte-for-byte what the route would have answered; anything
    else (a miss, another path, a dataset request with a query string) goes to the app unchanged.
    Authentication (:class:`headwater.api.auth.Authenticate`) runs outside this middleware: a hit is served only
    to a principal allowed ``catalog.read``, and only when its audience may see what the entry shows.
    """

    def __init__(self, app: ASGIApp, cache: DatasetCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and (reader := _reader(scope)) is not None:
            entry = self._lookup(scope["path"], scope.get("query_string", b""), audience_of(reader))
            if entry is not None:
                await self._answer(scope, send, *entry)
                return
        await self.app(scope, receive, send)

    def _lookup(self, path: str, query: bytes, audience: Audience) -> tuple[str, bytes] | None:
        if path == "/api/v1/datasets":
            return self.cache.get(list_cache_key(query.decode("latin-1"), audience))
        match = _DATASET_PATH.match(path)
        if match is None or query:
            return None
        return self.cache.get(int(match.group(1)), audience)

    async def _answer(self, scope: Scope, send: Send, etag: str, body: bytes) -> None:
        headers = [(b"content-type", b"application/json")]
        if etag:
            headers.append((b"etag", etag.encode()))
            for name, value in scope["headers"]:
                if name == b"if-none-match" and value.decode("latin-1") == etag:
                    await send({"type": "http.response.start", "status": 304, "headers": headers[1:]})
                    await send({"type": "http.response.body", "body": b""})
                    return
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
