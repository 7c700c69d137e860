"""Source secrets through the real API, on both databases: which references may resolve, that no secret
value reaches a message, the change feed, GraphQL or the UI, and that credentials stay with their endpoint.
Encryption at rest and key rotation: test_source_secrets_keys.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from secrets_fixtures import MakeServer, RecordingEndpoint

from headwater.catalog.connectors import CONNECTORS, connector_class

pytestmark = pytest.mark.anyio

CANARY = "canary-7f3e9b21-value"


def _iceberg(name: str, uri: str, **secrets: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "iceberg",
        "namespace": f"iceberg://{name}",
        "config": {"type": "rest", "uri": uri},
        "secrets": secrets,
    }


async def _sync(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await client.post(f"/api/v1/sources/{name}/sync")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# ------------------------------------------------------------------------------------ references


@pytest.mark.integration
async def test_an_env_reference_the_server_does_not_allow_is_refused_at_once_naming_field_and_setting(
    server_with: MakeServer, endpoint: RecordingEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_CANARY_TOKEN", CANARY)
    monkeypatch.delenv("HW_CANARY_UNSET", raising=False)
    client = server_with(secrets_allowed_env=["ICEBERG_*"])
    set_var = await client.post("/api/v1/sources", json=_iceberg("lake", endpoint.url, token="env:HW_CANARY_TOKEN"))
    unset_var = await client.post("/api/v1/sources", json=_iceberg("lake", endpoint.url, token="env:HW_CANARY_UNSET"))

    assert set_var.status_code == unset_var.status_code == 422
    error = set_var.json()["error"]
    assert error["code"] == "secret_reference_refused"
    assert "secrets.token" in error["message"] and "HEADWATER_SECRETS_ALLOWED_ENV" in error["message"]
    assert error["detail"] == {"field": "secrets.token", "setting": "HEADWATER_SECRETS_ALLOWED_ENV"}
    # The answer is the same whether the variable exists or not.
    assert set_var.text.replace("HW_CANARY_TOKEN", "X") == unset_var.text.replace("HW_CANARY_UNSET", "X")
    assert CANARY not in set_var.text
    assert (await client.get("/api/v1/sources/lake")).status_code == 404

    await client.post("/api/v1/sources", json=_iceberg("lake", endpoint.url, token="literal"))
    patched = await client.patch("/api/v1/sources/lake", json={"secrets": {"token": "env:HW_CANARY_TOKEN"}})
    assert patched.status_code == 422 and patched.json()["error"]["code"] == "secret_reference_refused"


@pytest.mark.integration
async def test_a_bearer_token_from_the_server_environment_never_reaches_a_uri_the_caller_chose(
    client: httpx.AsyncClient, endpoint: RecordingEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_CANARY_TOKEN", CANARY)
    created = await client.post("/api/v1/sources", json=_iceberg("probe", endpoint.url, token="env:HW_CANARY_TOKEN"))
    if created.status_code == 201:  # what the server did before: then sync it, as the attacker would
        await client.post("/api/v1/sources/probe/sync")
    assert not endpoint.received(CANARY)
    assert created.status_code == 422


@pytest.mark.integration
async def test_the_servers_own_settings_never_resolve_even_under_a_broad_prefix(
    server_with: MakeServer, endpoint: RecordingEndpoint
) -> None:
    client = server_with(secrets_allowed_env=["H*"])
    refused = await client.post(
        "/api/v1/sources", json=_iceberg("lake", endpoint.url, token="env:HEADWATER_SECRETS_KEY")
    )
    assert refused.status_code == 422 and refused.json()["error"]["detail"]["field"] == "secrets.token"


def test_env_allowlist_entries_are_names_or_prefixes() -> None:
    from headwater.secrets import ReferencePolicy, SecretReferenceRefused

    policy = ReferencePolicy(allowed_env=("ICEBERG_", "KAFKA_*", "PG_PASSWORD"))
    policy.check({"a": "env:ICEBERG_TOKEN", "b": "env:KAFKA_SASL", "c": "env:PG_PASSWORD", "d": "plain"})
    for refused in ("env:PG_PASSWORD2", "env:ICEBERG", "env:PATH", "env:HEADWATER_DATABASE_URL"):
        with pytest.raises(SecretReferenceRefused, match="HEADWATER_SECRETS_ALLOWED_ENV"):
            policy.check({"token": refused})


@pytest.mark.integration
async def test_a_file_reference_outside_the_allowed_directories_is_refused_alike_whether_or_not_it_exists(
    server_with: MakeServer, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text(CANARY)
    (allowed / "link").symlink_to(outside)
    client = server_with(secrets_allowed_dirs=[allowed])
    answers = {}
    for path in (
        str(outside),
        str(tmp_path / "no-such-file"),
        f"{allowed}/../outside.txt",
        f"{allowed}/link",
        "allowed/token",
        "/etc/passwd",
    ):
        response = await client.post("/api/v1/sources", json=_iceberg("lake", endpoint.url, token=f"file:{path}"))
        assert response.status_code == 422, path
        error = response.json()["error"]
        assert error["detail"] == {"field": "secrets.token", "setting": "HEADWATER_SECRETS_ALLOWED_DIRS"}
        assert CANARY not in response.text
        answers[path] = response.text.replace(path.replace("/", "\\/"), "P").replace(path, "P")
    assert len(set(answers.values())) == 1, answers  # no answer tells whether the file exists
    assert (await client.get("/api/v1/sources/lake")).status_code == 404


@pytest.mark.integration
async def test_an_allowed_reference_resolves_at_sync_and_is_refused_once_the_settings_narrow(
    server_with: MakeServer, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "token").write_text(CANARY + "\n")
    wide = server_with(secrets_allowed_dirs=[allowed])
    created = await wide.post("/api/v1/sources", json=_iceberg("lake", endpoint.url, token=f"file:{allowed}/token"))
    assert created.status_code == 201, created.text
    await _sync(wide, "lake")
    assert endpoint.received(f"Bearer {CANARY}\n")  # the file's content, its trailing newline removed

    endpoint.requests.clear()
    narrow = server_with(secrets_allowed_dirs=[])
    run = await _sync(narrow, "lake")
    assert run["status"] == "failed" and "HEADWATER_SECRETS_ALLOWED_DIRS" in run["message"]
    assert endpoint.requests == []


# ------------------------------------------------------------------------------------- scrubbing

PEM = "-----BEGIN TOKEN-----\nline-one-4c1d9e0a\nline-two-8b2f7a13\n-----END TOKEN-----\n"
LITERAL = "literal-canary-5e6f\n"


@pytest.mark.integration
async def test_no_secret_value_reaches_messages_the_change_feed_graphql_or_the_ui(
    server_with: MakeServer, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "token.pem").write_text(PEM)
    client = server_with(secrets_allowed_dirs=[allowed])
    for body in (
        _iceberg("from-file", endpoint.url, token=f"file:{allowed}/token.pem"),
        _iceberg("from-literal", endpoint.url, token=LITERAL),
    ):
        assert (await client.post("/api/v1/sources", json=body)).status_code == 201
        run = await _sync(client, body["name"])
        # The header error (which quoted the value, masked as [secret]) is logged by type only since the egress
        # policy made every connection failure read "could not reach" (docs/security/egress.md).
        assert run["status"] == "failed" and "could not reach Iceberg catalog" in run["message"]

    answers = [
        await client.get("/api/v1/sources"),
        await client.get("/api/v1/sources/from-file"),
        await client.get("/api/v1/sources/from-literal"),
        await client.get("/api/v1/sources/from-file/syncs"),
        await client.get("/api/v1/sources/from-literal/syncs"),
        await client.get("/api/v1/change-events"),
        await client.post(
            "/graphql", json={"query": "{ sources { ... on SourceList { items { name status statusMessage } } } }"}
        ),
        await client.get("/ui/sources"),
    ]
    assert all(answer.status_code == 200 for answer in answers)
    assert "could not reach Iceberg catalog" in answers[1].text
    forbidden = ["line-one-4c1d9e0a", "line-two-8b2f7a13", "BEGIN TOKEN", "END TOKEN", "literal-canary-5e6f"]
    for answer in answers:
        for value in forbidden:
            assert value not in answer.text, (value, str(answer.url))


# ----------------------------------------------------------------------------- endpoint binding


@pytest.mark.integration
async def test_changing_where_a_source_connects_requires_its_secrets_again(
    client: httpx.AsyncClient, endpoint: RecordingEndpoint
) -> None:
    body = _iceberg("lake", "http://127.0.0.1:1", token=CANARY, credential="client:s3cr3t")
    assert (await client.post("/api/v1/sources", json=body)).status_code == 201

    moved = await client.patch("/api/v1/sources/lake", json={"config": {"type": "rest", "uri": endpoint.url}})
    assert moved.status_code == 422
    error = moved.json()["error"]
    assert error["code"] == "secrets_required" and "config.uri" in error["message"]
    assert "send its secrets again" in error["message"] and error["detail"]["field"] == "secrets"
    assert (await client.get("/api/v1/sources/lake")).json()["config"]["uri"] == "http://127.0.0.1:1"
    await _sync(client, "lake")
    assert not endpoint.received(CANARY)

    # A change that does not move the credentials needs nothing.
    same_place = {"type": "rest", "uri": "http://127.0.0.1:1", "page_size": 50}
    assert (await client.patch("/api/v1/sources/lake", json={"config": same_place})).status_code == 200

    # With the secrets again, they replace every stored one.
    resent = await client.patch(
        "/api/v1/sources/lake", json={"config": {"type": "rest", "uri": endpoint.url}, "secrets": {"token": "new-one"}}
    )
    assert resent.status_code == 200, resent.text
    assert resent.json()["secret_keys"] == ["token"]
    await _sync(client, "lake")
    assert endpoint.received("Bearer new-one") and not endpoint.received(CANARY)


# Per connector: a config, and a new value for each of its endpoint keys (and only those).
ENDPOINT_CHANGES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "iceberg": (
        {"type": "rest", "uri": "http://a:8181", "warehouse": "w", "properties": {"x": "1"}},
        {"type": "sql", "uri": "http://b:8181", "warehouse": "v", "properties": {"oauth2-server-uri": "http://b/t"}},
    ),
    "kafka": (
        {
            "bootstrap_servers": "a:9092",
            "schema_registry_url": "http://a:8081",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "properties": {"x": "1"},
        },
        {
            "bootstrap_servers": "b:9092",
            "schema_registry_url": "http://b:8081",
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "properties": {"sasl.oauthbearer.token.endpoint.url": "http://b/t"},
        },
    ),
    "hive": ({"host": "a", "port": 9083}, {"host": "b", "port": 9084}),
    "postgres": (
        {"host": "a", "port": 5432, "database": "d", "user": "u", "sslmode": "verify-full"},
        {"host": "b", "port": 5433, "sslmode": "disable"},
    ),
}


def test_every_connector_declares_the_config_keys_that_name_its_endpoint() -> None:
    assert set(ENDPOINT_CHANGES) == set(CONNECTORS)
    for kind, (_, after) in ENDPOINT_CHANGES.items():
        cls = connector_class(kind)
        assert set(getattr(cls, "endpoint_keys", ())) == set(after), kind
        assert set(after) <= set(cls.Config.model_fields), kind


@pytest.mark.parametrize(
    ("kind", "key"), [(kind, key) for kind, (_, after) in ENDPOINT_CHANGES.items() for key in after]
)
async def test_each_endpoint_key_of_each_connector_needs_the_secrets_again(
    client: httpx.AsyncClient, kind: str, key: str
) -> None:
    before, after = ENDPOINT_CHANGES[kind]
    source = {"name": "s", "kind": kind, "namespace": f"{kind}://s", "config": before, "secrets": {"password": "p"}}
    assert (await client.post("/api/v1/sources", json=source)).status_code == 201
    changed = {**before, key: after[key]}
    refused = await client.patch("/api/v1/sources/s", json={"config": changed})
    assert refused.status_code == 422 and f"config.{key}" in refused.json()["error"]["message"]
    accepted = await client.patch("/api/v1/sources/s", json={"config": changed, "secrets": {"password": "q"}})
    assert accepted.status_code == 200, accepted.text


async def test_a_source_without_secrets_may_change_its_endpoint_freely(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/sources", json=_iceberg("lake", "http://a:1"))).status_code == 201
    moved = await client.patch("/api/v1/sources/lake", json={"config": {"uri": "http://b:1"}})
    assert moved.status_code == 200, moved.text
    assert moved.json()["config"]["uri"] == "http://b:1" and moved.json()["secret_keys"] == []
    assert (await client.get("/api/v1/sources/lake")).json()["config"]["uri"] == "http://b:1"
