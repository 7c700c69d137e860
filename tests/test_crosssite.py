"""Cross-site protection through the real app: what a web page of another site can make a browser send is refused
(a form or ``no-cors`` POST, a ``text/plain`` body, a request with a foreign Host), clients that are not browsers
are unaffected, and every answer carries the security headers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from headwater.app import create_app
from headwater.settings import Settings

pytestmark = pytest.mark.anyio

EVIL = "https://evil.example"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
JOB = {
    "name": "echo",
    "user": "mallory",
    "command_args": ["echo owned"],
    "cluster_criteria": [["sched:test"]],
    "command_criteria": ["type:sh"],
}


def _form(request: dict[str, Any]) -> dict[str, Any]:
    """A job submission as a cross-site HTML form can send it: multipart, no custom header."""
    return {"files": [("request", (None, json.dumps(request), "application/json"))]}


async def _jobs(client: httpx.AsyncClient) -> int:
    total: int = (await client.get("/api/v1/jobs")).json()["total"]
    return total


async def _setup_shell(client: httpx.AsyncClient) -> None:
    cluster = {"name": "local", "type": "shell", "tags": ["sched:test"]}
    assert (await client.post("/api/v1/clusters", json=cluster)).status_code == 201
    command = {"name": "sh", "executable": ["/bin/sh", "-c"], "tags": ["type:sh"]}
    assert (await client.post("/api/v1/commands", json=command)).status_code == 201


async def test_a_page_of_another_site_cannot_submit_a_job_with_a_form(client: httpx.AsyncClient) -> None:
    await _setup_shell(client)
    foreign = await client.post("/api/v1/jobs", **_form(JOB), headers={"Origin": EVIL})
    assert foreign.status_code == 403, foreign.text
    assert foreign.json()["error"]["code"] == "cross_origin_refused"
    assert "HEADWATER_CORS_ORIGINS" in foreign.json()["error"]["message"]
    fetched = await client.post("/api/v1/jobs", **_form(JOB), headers={"Sec-Fetch-Site": "cross-site"})
    assert fetched.status_code == 403
    assert await _jobs(client) == 0


async def test_multipart_job_submission_needs_a_header_no_form_can_send(client: httpx.AsyncClient) -> None:
    await _setup_shell(client)
    bare = await client.post("/api/v1/jobs", **_form(JOB))
    assert bare.status_code == 403 and "X-Headwater-Client" in bare.json()["error"]["message"]
    assert await _jobs(client) == 0
    tool = await client.post("/api/v1/jobs", **_form(JOB), headers={"X-Headwater-Client": "my-scheduler"})
    assert tool.status_code == 202, tool.text
    bearer = await client.post("/api/v1/jobs", **_form(JOB), headers={"Authorization": "Bearer t"})
    assert bearer.status_code == 202, bearer.text
    assert await _jobs(client) == 2


async def test_multipart_is_refused_where_no_route_takes_it(client: httpx.AsyncClient) -> None:
    body = {"files": [("name", (None, "x"))]}
    answer = await client.post("/api/v1/clusters", **body, headers={"X-Headwater-Client": "t"})
    assert answer.status_code == 415 and "application/json" in answer.json()["error"]["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_openlineage_events_that_are_not_json_are_refused(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    event = {
        "eventType": "COMPLETE",
        "eventTime": "2024-05-01T10:00:00Z",
        "run": {"runId": "0190a1e2-0000-7000-8000-000000000001"},
        "job": {"namespace": "evil", "name": "forged"},
        "inputs": [],
        "outputs": [{"namespace": "evil", "name": "planted"}],
        "producer": "https://evil.example",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent",
    }
    headers = {"Content-Type": content_type} if content_type else {}
    answer = await client.post("/api/v1/lineage", content=json.dumps(event).encode(), headers=headers)
    assert answer.status_code == 415, answer.text
    assert answer.json()["error"]["code"] == "unsupported_media_type"
    assert "application/json" in answer.json()["error"]["message"]
    assert (await client.get("/api/v1/datasets", params={"namespace": "evil"})).json()["total"] == 0


async def test_a_json_type_with_a_suffix_or_parameters_is_json(client: httpx.AsyncClient) -> None:
    body = json.dumps({"name": "s1", "kind": "manual", "namespace": "s1"}).encode()
    with_charset = await client.post(
        "/api/v1/sources", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert with_charset.status_code == 201, with_charset.text
    assert (with_charset.json()["name"], with_charset.json()["namespace"]) == ("s1", "s1")
    patch = await client.patch(
        "/api/v1/sources/s1",
        content=json.dumps({"description": "d"}).encode(),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patch.status_code == 200, patch.text
    assert patch.json()["description"] == "d"
    assert (await client.get("/api/v1/sources/s1")).json()["description"] == "d"


async def test_a_bodyless_cross_site_post_cannot_start_a_sync_or_kill_a_job(client: httpx.AsyncClient) -> None:
    source = {"name": "lake", "kind": "iceberg", "namespace": "iceberg://lake", "config": {"uri": "http://127.0.0.1:1"}}
    assert (await client.post("/api/v1/sources", json=source)).status_code == 201
    # fetch("/api/v1/sources/lake/sync?wait=false", {mode: "no-cors", method: "POST"}) from another site
    no_cors = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Origin": EVIL}
    started = await client.post("/api/v1/sources/lake/sync", params={"wait": "false"}, headers=no_cors)
    assert started.status_code == 403, started.text
    assert started.json()["error"]["code"] == "cross_origin_refused"
    assert "HEADWATER_CORS_ORIGINS" in started.json()["error"]["message"]
    older_browser = await client.post("/api/v1/sources/lake/sync", params={"wait": "false"}, headers={"Origin": EVIL})
    assert older_browser.status_code == 403
    sibling = {"Sec-Fetch-Site": "same-site", "Origin": "https://other.headwater.test"}
    assert (
        await client.post("/api/v1/sources/lake/sync", params={"wait": "false"}, headers=sibling)
    ).status_code == 403
    assert (await client.get("/api/v1/sources/lake/syncs")).json()["total"] == 0
    await _setup_shell(client)
    job = (await client.post("/api/v1/jobs", json=JOB)).json()
    killed = await client.delete(f"/api/v1/jobs/{job['id']}", headers={"Origin": "null"})
    assert killed.status_code == 403
    assert (await client.get(f"/api/v1/jobs/{job['id']}")).json()["status"] not in ("KILLED", "KILLING")


async def test_same_origin_pages_and_clients_that_are_not_browsers_still_write(client: httpx.AsyncClient) -> None:
    ours = [
        {},  # curl, the OpenLineage client, scripts: no Origin, no Sec-Fetch-Site
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://headwater.test"},
        {"Sec-Fetch-Site": "none"},  # typed into the address bar, a bookmark
        {"Origin": "http://headwater.test"},  # a browser without Fetch Metadata, same origin
        {"Origin": "http://headwater.test:80"},
    ]
    for index, headers in enumerate(ours):
        body = {"name": f"s{index}", "kind": "manual", "namespace": f"s{index}"}
        answer = await client.post("/api/v1/sources", json=body, headers=headers)
        assert answer.status_code == 201, (headers, answer.text)
    other_port = await client.post(
        "/api/v1/sources",
        json={"name": "x", "kind": "manual", "namespace": "x"},
        headers={"Origin": "http://headwater.test:8080"},
    )
    assert other_port.status_code == 403
    assert other_port.json()["error"]["code"] == "cross_origin_refused"
    read = await client.get("/api/v1/sources", headers={"Origin": EVIL})
    assert read.status_code == 200  # reads are not writes
    assert sorted(s["name"] for s in read.json()["items"]) == [f"s{index}" for index in range(len(ours))]


def _app(tmp_path: Path, db_url: str, **settings: Any) -> FastAPI:
    options: dict[str, Any] = {
        "database_url": db_url,
        "data_dir": tmp_path,
        "search_indexer_enabled": False,
        "allowed_hosts": ["headwater.test"],
        **settings,
    }
    return create_app(Settings(**options), prepare=False)


async def _call(
    app: FastAPI, method: str, path: str, base_url: str = "http://headwater.test", **kw: Any
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
        return await http.request(method, path, **kw)


@pytest.mark.single_backend("sqlite")
async def test_cors_is_off_unless_origins_are_configured(db_url: str, tmp_path: Path) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    closed = _app(tmp_path, db_url)
    answer = await _call(closed, "OPTIONS", "/api/v1/sources", headers=preflight)
    assert "access-control-allow-origin" not in answer.headers
    read = await _call(closed, "GET", "/api/v1/sources", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in read.headers

    opened = _app(tmp_path, db_url, cors_origins="https://app.example")
    answer = await _call(
        opened, "OPTIONS", "/api/v1/sources", headers={**preflight, "Access-Control-Request-Headers": "content-type"}
    )
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://app.example"
    body = {"name": "cors", "kind": "manual", "namespace": "cors"}
    allowed = {"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"}
    written = await _call(opened, "POST", "/api/v1/sources", json=body, headers=allowed)
    assert written.status_code == 201, written.text
    assert written.headers["access-control-allow-origin"] == "https://app.example"
    await _call(opened, "DELETE", "/api/v1/sources/cors")
    stranger = await _call(opened, "POST", "/api/v1/sources", json=body, headers={"Origin": EVIL})
    assert stranger.status_code == 403


def test_cors_origins_must_be_origins() -> None:
    with pytest.raises(ValueError, match="scheme://host"):
        Settings(cors_origins="*")
    with pytest.raises(ValueError, match="scheme://host"):
        Settings(cors_origins="https://app.example/path")


# ------------------------------------------------------------------------------------------------ Host check


@pytest.mark.single_backend("sqlite")
async def test_a_request_for_another_host_name_is_refused(db_url: str, tmp_path: Path) -> None:
    # DNS rebinding: evil.example made to resolve to 127.0.0.1; the browser still sends Host: evil.example.
    app = _app(tmp_path, db_url, allowed_hosts="localhost,127.0.0.1,[::1]")  # the default
    for host in ("evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.nip.io"):
        answer = await _call(app, "GET", "/healthz", headers={"Host": host})
        assert answer.status_code == 400, host
        assert answer.json()["error"]["code"] == "host_not_allowed"
        assert "HEADWATER_ALLOWED_HOSTS" in answer.json()["error"]["message"]
    for host in ("localhost", "localhost:8000", "127.0.0.1:9999", "[::1]:8000", "LOCALHOST"):
        assert (await _call(app, "GET", "/healthz", headers={"Host": host})).status_code == 200, host


@pytest.mark.single_backend("sqlite")
async def test_allowed_hosts_take_subdomain_patterns_and_star_turns_the_check_off(db_url: str, tmp_path: Path) -> None:
    app = _app(tmp_path, db_url, allowed_hosts="headwater.test, *.corp.example")
    assert (await _call(app, "GET", "/healthz", headers={"Host": "meta.corp.example"})).status_code == 200
    assert (await _call(app, "GET", "/healthz", headers={"Host": "corp.example.evil"})).status_code == 400
    anything = _app(tmp_path, db_url, allowed_hosts="*")
    assert (await _call(anything, "GET", "/healthz", headers={"Host": "whatever.example"})).status_code == 200


def test_allowed_hosts_that_can_never_match_are_refused() -> None:
    for wrong in ("localhost:8000", "*example.com", "http://meta.example", "a.*.example"):
        with pytest.raises(ValueError, match="not a host name"):
            Settings(allowed_hosts=wrong)


def test_production_needs_allowed_hosts_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADWATER_ALLOWED_HOSTS", raising=False)
    with pytest.raises(ValueError, match="HEADWATER_ALLOWED_HOSTS"):
        Settings(env="production", database_url="postgresql://db/hw")
    key = Fernet.generate_key().decode()
    assert Settings(
        env="production", database_url="postgresql://db/hw", secrets_key=key, allowed_hosts="meta.corp.example"
    )


# ------------------------------------------------------------------------------------------- security headers


def _assert_secured(answer: httpx.Response) -> None:
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, answer.request.url
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-frame-options"] == "DENY"


async def test_every_answer_carries_the_security_headers(client: httpx.AsyncClient, app: FastAPI) -> None:
    created = await client.post("/api/v1/datasets", json={"name": "db.t", "fields": [{"name": "a", "type": "int"}]})
    dataset_id = created.json()["id"]
    answers = [
        created,
        await client.get(f"/api/v1/datasets/{dataset_id}"),
        await client.get(f"/api/v1/datasets/{dataset_id}"),  # a hit of the dataset cache (CachedReads)
        await client.get("/ui"),
        await client.get(f"/ui/datasets/{dataset_id}"),
        await client.get("/ui/datasets/999999"),
        await client.get("/ui/static/search.js"),
        await client.get("/no/such/path"),
        await client.post("/api/v1/datasets", content=b"x" * 70_000, headers={"Content-Type": "application/json"}),
        await client.post("/api/v1/lineage", content=b"{}", headers={"Content-Type": "text/plain"}),
        await client.get("/healthz"),
        await client.get("/openapi.json"),
    ]
    assert app.state.dataset_cache.hits >= 1
    assert [a.status_code for a in answers] == [201, 200, 200, 200, 200, 404, 200, 404, 413, 415, 200, 200]
    for answer in answers:
        _assert_secured(answer)


@pytest.mark.single_backend("sqlite")
async def test_an_unexpected_error_and_a_refused_host_carry_the_headers_too(db_url: str, tmp_path: Path) -> None:
    app = _app(tmp_path, db_url)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    crashed = await _call(app, "GET", "/boom")
    assert crashed.status_code == 500
    assert crashed.json()["error"]["code"] == "internal_error" and "a bug" not in crashed.text
    _assert_secured(crashed)
    _assert_secured(await _call(app, "GET", "/healthz", headers={"Host": "evil.example"}))


@pytest.mark.single_backend("sqlite")
async def test_a_page_that_sets_its_own_policy_keeps_it(db_url: str, tmp_path: Path) -> None:
    app = _app(tmp_path, db_url)
    own = "default-src 'self'; script-src 'self' 'sha256-abc'; frame-ancestors 'none'"

    @app.get("/own")
    def own_policy() -> PlainTextResponse:
        return PlainTextResponse("ok", headers={"Content-Security-Policy": own})

    answer = await _call(app, "GET", "/own")
    assert answer.headers.get_list("content-security-policy") == [own]
    assert answer.headers["x-frame-options"] == "DENY"


async def test_the_ui_has_no_inline_script(client: httpx.AsyncClient) -> None:
    page = (await client.get("/ui")).text
    assert '<script src="/ui/static/search.js"></script>' in page
    assert "<script>" not in page and " on" + "click=" not in page
    script = await client.get("/ui/static/search.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "/api/v1/search/suggest" in script.text
