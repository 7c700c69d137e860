"""An in-process cache of serialised dataset answers (one dataset, or one page of a dataset list), kept
exact by the change-event outbox.

Reading one dataset means loading up to thousands of field rows and serialising them; a list page means
a hundred datasets with their tags and owners. Most reads are of data that has not changed. Every
change to a dataset appends a ChangeEvent in the same transaction, so the outbox tells exactly which
entries went stale: the changed dataset's own entry, and the list pages it can alter, found from its current sort
keys and each page's key range (headwater.catalog.list_pages):

* writes made by this process invalidate their datasets as soon as their transaction commits, with the sort keys
  read in that transaction;
* writes made by other processes (CLI, workers, other server replicas) are found by a poller that
  reads new outbox rows every ``cache_poll_interval`` seconds (0.25 by default), and the sort keys then;
* when the poller cannot reach the database, the cache empties and stops serving until it can;
* an entry computed from a read that overlapped an invalidation is not stored (the generation check), unless the
  invalidations it overlapped (the last ``RECENT_INVALIDATIONS`` are kept) would not have dropped it;
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
from collections import OrderedDict, deque
from collections.abc import Collection, Mapping

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from headwater.auth.actions import Action
from headwater.auth.policy import Audience, audience_of
from headwater.auth.principal import Principal
from headwater.catalog.events import trimmed_through
from headwater.catalog.list_pages import ListSpan, RowKeys, row_keys
from headwater.catalog.models import ChangeEvent
from headwater.db import read_scope
from headwater.loops import LoopService

__all__ = ["CachedReads", "DatasetCache", "OutboxPoller", "list_cache_key"]

log = logging.getLogger("headwater.cache")


# A batch of more changed datasets than this (a sync's page) drops every list page instead of checking each against
# each page under the lock; such a batch would alter most pages anyway.
PER_PAGE_CHECKS = 64
# Invalidations remembered so that an entry read while they happened may still be stored if none concerns it.
RECENT_INVALIDATIONS = 256

CacheKey = int | str  # a dataset id, or "list" + the reader's audience + "?" + the raw query string of a page
Entry = tuple[str, bytes, frozenset[str]]  # etag, body, and the dataset's audience (empty: not restricted)


def list_cache_key(query_string: str, audience: Audience = None) -> str:
    """The cache key of a dataset list page as ``audience`` sees it (None: one who sees every dataset)."""
    if audience is None:
        return "list?" + query_string
    return "list[" + "\x00".join(sorted(audience)) + "]?" + query_string


def _alters(span: ListSpan | None, dataset_ids: Collection[int], keys: Mapping[int, RowKeys] | None) -> bool:
    """Whether changes to these datasets (now at ``keys``) may alter a list page of ``span`` (None: unknown)."""
    if span is None or keys is None or len(dataset_ids) > PER_PAGE_CHECKS:
        return True
    return any(span.changed_by(dataset_id, keys.get(dataset_id)) for dataset_id in dataset_ids)


class DatasetCache:
    """LRU of ``dataset id | list query -> (etag, JSON bytes, audience)``, bounded in bytes; thread-safe."""

    def __init__(self, *, max_bytes: int, enabled: bool = True) -> None:
        self.max_bytes = max_bytes
        self.enabled = enabled
        self._entries: OrderedDict[CacheKey, Entry] = OrderedDict()
        # Every cached list page's span (None: unknown, so any dataset change drops it).
        self._pages: dict[str, ListSpan | None] = {}
        self._size = 0
        self._generation = 0
        # (generation, dataset ids, their keys or None) of the latest invalidations, oldest first.
        self._recent: deque[tuple[int, Collection[int], Mapping[int, RowKeys] | None]] = deque(
            maxlen=RECENT_INVALIDATIONS
        )
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
        self,
        key: CacheKey,
        generation: int,
        etag: str,
        body: bytes,
        members: frozenset[str] = frozenset(),
        span: ListSpan | None = None,
    ) -> tuple[str, bytes]:
        """Store an entry (with the audience ``members`` of a restricted dataset, or the ``span`` of a list page)
        unless an invalidation happened since ``generation`` was taken."""
        entry = (etag, body, members)
        if not (self.enabled and self._healthy) or len(body) > self.max_bytes // 4:
            return etag, body
        with self._lock:
            if generation != self._generation and self._overlapped(key, generation, span):
                return etag, body
            self._forget(key)
            self._entries[key] = entry
            if isinstance(key, str):
                self._pages[key] = span
            self._size += len(body)
            while self._size > self.max_bytes and self._entries:
                self._forget(next(iter(self._entries)))
        return etag, body

    def _overlapped(self, key: CacheKey, generation: int, span: ListSpan | None) -> bool:
        # Under the lock: whether an invalidation since ``generation`` concerns this entry (or may have: unknown).
        since = [entry for entry in self._recent if entry[0] > generation]
        if len(since) != self._generation - generation:  # forgotten, or a clear(): unknown
            return True
        if isinstance(key, int):
            return any(key in dataset_ids for _, dataset_ids, _ in since)
        return any(_alters(span, dataset_ids, keys) for _, dataset_ids, keys in since)

    def _forget(self, key: CacheKey) -> None:
        # Under the lock.
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= len(old[1])
            if isinstance(key, str):
                self._pages.pop(key, None)

    def invalidate(self, dataset_ids: Collection[int], keys: Mapping[int, RowKeys] | None = None) -> None:
        """Forget these datasets and the list pages their changes may alter: given ``keys`` (their current sort
        keys, read after the change), only the pages whose span they touch; without (or for more than
        PER_PAGE_CHECKS datasets), every list page."""
        if not dataset_ids:
            return
        with self._lock:
            self._generation += 1
            self._recent.append((self._generation, frozenset(dataset_ids), keys))
            stale: list[CacheKey] = list(dataset_ids)
            for page, span in self._pages.items():
                if span is None or _alters(span, dataset_ids, keys) or span.outlived(len(dataset_ids)):
                    stale.append(page)
            for key in stale:
                self._forget(key)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._generation += 1
            self._recent.clear()
            self._entries.clear()
            self._pages.clear()
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
                    changed = {row.entity_id for row in rows if row.entity_type == "dataset"}
                    # Keys read now, after the changes: a later change to the same dataset is its own event.
                    self.cache.invalidate(changed, row_keys(session, changed) if changed else None)
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
