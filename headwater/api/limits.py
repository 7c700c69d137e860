"""The per-client rate limit: a token bucket per client, answering 429 with ``Retry-After`` when it is empty.

A client may send ``burst`` requests at once and ``rate`` per second after that. The client is the peer's address
(X-Forwarded-For counts only from ``HEADWATER_TRUSTED_PROXIES``, applied before this middleware); once requests
carry an identity, pass ``key=`` a function naming the principal instead. Buckets live in this process (each
server process limits on its own) and are bounded: a bucket idle long enough to be full again is the same as no
bucket and is dropped, and past ``max_clients`` the longest idle go first. Health checks are never limited.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from headwater.api.responses import refusal

__all__ = ["RateLimit", "TokenBuckets", "client_address"]


class TokenBuckets:
    """Token buckets by key, least recently used first; not thread-safe (one event loop uses it)."""

    def __init__(
        self, *, rate: float, burst: int, max_clients: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self._refill_seconds = burst / rate  # idle this long, a bucket is full: the same as no bucket
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when there was one, else the seconds until there is."""
        now = self.clock()
        self._forget_idle(now)
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    def _forget_idle(self, now: float) -> None:
        while self._buckets:
            _, at = next(iter(self._buckets.values()))
            if now - at < self._refill_seconds:
                return
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


def client_address(scope: Scope) -> str:
    """The bucket key of a request: its client's address (the seam where a principal will take over)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


class RateLimit:
    """Answer 429 with ``Retry-After`` and a JSON error to a client whose bucket is empty."""

    def __init__(
        self,
        app: ASGIApp,
        buckets: TokenBuckets,
        exempt_paths: Iterable[str] = (),
        key: Callable[[Scope], str] = client_address,
    ) -> None:
        self.app = app
        self.buckets = buckets
        self.exempt_paths = frozenset(exempt_paths)
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(self.key(scope))
        if wait == 0:
            await self.app(scope, receive, send)
            return
        seconds = max(1, math.ceil(wait))
        await refusal(
            429,
            "rate_limited",
            f"too many requests: at most {self.buckets.rate:g} per second with bursts of {self.buckets.burst:g} "
            f"(HEADWATER_RATE_LIMIT_PER_SECOND, HEADWATER_RATE_LIMIT_BURST); retry after {seconds} s",
            headers={"Retry-After": str(seconds)},
        )(scope, receive, send)
