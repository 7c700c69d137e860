"""The per-client rate limit through the real app: a token bucket per client address answering 429 with
Retry-After, health checks exempt, X-Forwarded-For believed only from trusted proxies, memory bounded."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from headwater.app import create_app
from headwater.settings import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.single_backend("sqlite")]


def _app(db_url: str, tmp_path: Path, **settings: Any) -> FastAPI:
    options: dict[str, Any] = {
        "database_url": db_url,
        "data_dir": tmp_path,
        "search_indexer_enabled": False,
        "allowed_hosts": ["headwater.test"],
        # Clients come from several non-loopback addresses, which local mode refuses: authentication is
        # off on purpose, as behind a proxy that authenticates.
        "auth": "none",
        **settings,
    }
    return create_app(Settings(**options), prepare=False)


def _client(app: FastAPI, address: str = "192.0.2.10") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://headwater.test")


async def test_a_thousand_requests_at_once_are_not_all_answered(db_url: str, tmp_path: Path) -> None:
    app = _app(db_url, tmp_path, rate_limit_per_second=50, rate_limit_burst=200)  # the defaults
    began = time.monotonic()
    async with _client(app) as http:
        statuses = [(await http.get("/api/v1/sources")).status_code for _ in range(1000)]
    elapsed = time.monotonic() - began
    allowed = statuses.count(200)
    assert set(statuses) == {200, 429}
    assert allowed <= 200 + 50 * elapsed + 1, (allowed, elapsed)
    assert statuses[:200] == [200] * 200  # the burst


def test_the_limit_is_on_by_default() -> None:
    fields = Settings.model_fields
    assert (fields["rate_limit_per_second"].default, fields["rate_limit_burst"].default) == (50.0, 200)


async def test_an_empty_bucket_answers_429_with_retry_after_and_a_json_error(db_url: str, tmp_path: Path) -> None:
    app = _app(db_url, tmp_path, rate_limit_per_second=0.5, rate_limit_burst=3)
    async with _client(app) as http:
        answers = [await http.get("/api/v1/datasets") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        refused = answers[-1]
        assert refused.headers["retry-after"] == "2"
        assert refused.json()["error"]["code"] == "rate_limited"
        assert "HEADWATER_RATE_LIMIT_PER_SECOND" in refused.json()["error"]["message"]
        assert refused.headers["x-content-type-options"] == "nosniff"
        # Health checks are never throttled, and another client has its own bucket.
        assert {(await http.get(path)).status_code for path in ["/healthz", "/readyz"] * 10} == {200}
    async with _client(app, "192.0.2.11") as other:
        assert (await other.get("/api/v1/datasets")).status_code == 200


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(db_url: str, tmp_path: Path) -> None:
    untrusted = _app(db_url, tmp_path, rate_limit_per_second=0.1, rate_limit_burst=2)
    async with _client(untrusted, "127.0.0.1") as http:
        statuses = [
            (await http.get("/api/v1/sources", headers={"X-Forwarded-For": f"203.0.113.{i}"})).status_code
            for i in range(5)
        ]
    assert statuses == [200, 200, 429, 429, 429]  # a client cannot pose as many by forging the header

    behind_proxy = _app(db_url, tmp_path, rate_limit_per_second=0.1, rate_limit_burst=2, trusted_proxies="127.0.0.1")
    async with _client(behind_proxy, "127.0.0.1") as proxy:
        for i in range(5):  # five clients behind the proxy, each within its burst
            answer = await proxy.get("/api/v1/sources", headers={"X-Forwarded-For": f"203.0.113.{i}"})
            assert answer.status_code == 200
        same = [
            (await proxy.get("/api/v1/sources", headers={"X-Forwarded-For": "198.51.100.7"})).status_code
            for _ in range(3)
        ]
    assert same == [200, 200, 429]


async def test_zero_turns_the_limit_off(db_url: str, tmp_path: Path) -> None:
    for off in ({"rate_limit_per_second": 0}, {"rate_limit_burst": 0}):
        app = _app(db_url, tmp_path, **off)
        async with _client(app) as http:
            assert {(await http.get("/healthz")).status_code for _ in range(300)} == {200}
            assert {(await http.get("/api/v1/sources")).status_code for _ in range(300)} == {200}


def test_buckets_refill_at_the_rate_and_idle_ones_are_forgotten() -> None:
    from headwater.api.limits import TokenBuckets

    now = [0.0]
    buckets = TokenBuckets(rate=2, burst=4, max_clients=1000, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(4)] == [0.0] * 4
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert buckets.take("a") == 0.0 and buckets.take("a") == pytest.approx(0.5)
    for i in range(50_000):  # an address-spraying client: memory stays bounded
        buckets.take(f"10.0.{i // 256}.{i % 256}")
    assert len(buckets) == 1000
    now[0] += 2.0  # burst / rate: every bucket is full again, the same as none
    buckets.take("b")
    assert len(buckets) == 1
