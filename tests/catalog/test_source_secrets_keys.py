"""Source secrets encrypted at rest, on both databases: what the database holds, a wrong key, the key ring, the
generated development key file, production's refusal to start without a key, ``headwater secrets rotate-key``
and the upgrade that encrypts secrets stored before."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError
from secrets_fixtures import MakeServer, RecordingEndpoint
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from headwater import migrations
from headwater.app import create_app
from headwater.catalog.models import Source
from headwater.cli import app as cli
from headwater.db import create_db_engine, make_sessionmaker, session_scope
from headwater.settings import Settings, get_settings

pytestmark = pytest.mark.anyio

CANARY = "canary-2d8c41f7-value"
runner = CliRunner()


def _source(name: str, uri: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "iceberg",
        "namespace": f"iceberg://{name}",
        "config": {"type": "rest", "uri": uri},
        "secrets": {"token": CANARY, "unused": "also-" + CANARY},
    }


def _stored(engine: Engine, name: str) -> dict[str, str]:
    with engine.connect() as connection:
        raw = connection.execute(text("SELECT secrets FROM sources WHERE name = :n"), {"n": name}).scalar_one()
    stored: dict[str, str] = json.loads(raw) if isinstance(raw, str) else raw
    return stored


def _key(settings: Settings) -> str:
    assert settings.secrets_key is not None
    return settings.secrets_key.get_secret_value()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[Callable[..., None]]:
    """Run the CLI against the suite's database with the given HEADWATER_* variables."""

    def use(**variables: str) -> None:
        for name in ("HEADWATER_SECRETS_KEY", "HEADWATER_SECRETS_KEY_FILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HEADWATER_DATABASE_URL", db_url)
        for name, value in variables.items():
            monkeypatch.setenv(f"HEADWATER_{name.upper()}", value)
        get_settings.cache_clear()

    yield use
    get_settings.cache_clear()


async def test_secrets_are_stored_encrypted_never_as_given(
    client: httpx.AsyncClient, engine: Engine, db_url: str, app_settings: Settings
) -> None:
    assert (await client.post("/api/v1/sources", json=_source("lake", "http://127.0.0.1:1"))).status_code == 201
    stored = _stored(engine, "lake")
    assert sorted(stored) == ["token", "unused"]
    assert CANARY not in json.dumps(stored)
    assert Fernet(_key(app_settings)).decrypt(stored["token"].encode()).decode() == CANARY
    if db_url.startswith("sqlite"):
        database = Path(db_url.removeprefix("sqlite:///"))
        for path in (database, Path(f"{database}-wal")):
            assert not path.exists() or not _file_holds(path, CANARY)


def _file_holds(path: Path, needle: str) -> bool:
    """Whether the file's bytes hold ``needle``, read by another process.

    Never open a live SQLite file in this process: closing that descriptor drops every POSIX lock this process
    holds on the file (SQLite's "how to corrupt a database", 2.2), so another process may then checkpoint and
    delete the WAL under the suite's open connections ("disk I/O error", rows of emptied tables coming back).
    """
    found = subprocess.run(["grep", "-q", "-a", "-F", needle, str(path)], check=False)
    assert found.returncode in (0, 1), f"grep failed on {path}"
    return found.returncode == 0


@pytest.mark.integration
async def test_a_secret_no_configured_key_decrypts_fails_the_sync_naming_the_setting_never_the_ciphertext(
    client: httpx.AsyncClient, server_with: MakeServer, endpoint: RecordingEndpoint, engine: Engine
) -> None:
    assert (await client.post("/api/v1/sources", json=_source("lake", endpoint.url))).status_code == 201
    other_key = server_with(secrets_key=SecretStr(Fernet.generate_key().decode()))
    synced = await other_key.post("/api/v1/sources/lake/sync")
    assert synced.status_code == 200
    run = synced.json()
    assert run["status"] == "failed"
    assert "HEADWATER_SECRETS_KEY" in run["message"] and "cannot be decrypted" in run["message"]
    source = (await other_key.get("/api/v1/sources/lake")).text
    for token in _stored(engine, "lake").values():
        assert token not in synced.text and token[:20] not in source
    assert endpoint.requests == []


@pytest.mark.integration
async def test_an_older_key_listed_after_the_current_one_still_decrypts(
    client: httpx.AsyncClient, server_with: MakeServer, endpoint: RecordingEndpoint, app_settings: Settings
) -> None:
    assert (await client.post("/api/v1/sources", json=_source("lake", endpoint.url))).status_code == 201
    ring = server_with(secrets_key=SecretStr(f"{Fernet.generate_key().decode()},{_key(app_settings)}"))
    await ring.post("/api/v1/sources/lake/sync")
    assert endpoint.received(f"Bearer {CANARY}")


@pytest.mark.integration
async def test_rotate_key_re_encrypts_every_stored_secret_with_the_first_key(
    client: httpx.AsyncClient,
    server_with: MakeServer,
    endpoint: RecordingEndpoint,
    engine: Engine,
    app_settings: Settings,
    cli_env: Callable[..., None],
) -> None:
    for name in ("lake", "lake2"):
        assert (await client.post("/api/v1/sources", json=_source(name, endpoint.url))).status_code == 201
    new, old = Fernet.generate_key().decode(), _key(app_settings)

    cli_env(secrets_key=new)
    refused = runner.invoke(cli, ["secrets", "rotate-key"])
    assert refused.exit_code == 1 and "cannot be decrypted" in refused.output

    cli_env(secrets_key=f"{new},{old}")
    assert runner.invoke(cli, ["secrets", "rotate-key", "--generate"]).exit_code == 1  # only a key file is written
    rotated = runner.invoke(cli, ["secrets", "rotate-key"])
    assert rotated.exit_code == 0, rotated.output
    assert "Re-encrypted 4 secret(s) of 2 source(s)" in rotated.output
    for name in ("lake", "lake2"):
        for token in _stored(engine, name).values():
            assert CANARY in Fernet(new).decrypt(token.encode()).decode()

    await server_with(secrets_key=SecretStr(new)).post("/api/v1/sources/lake/sync")  # the old key retired
    assert endpoint.received(f"Bearer {CANARY}")


@pytest.mark.integration
async def test_rotate_key_with_a_key_file_puts_a_new_key_first_and_retires_the_old_one(
    server_with: MakeServer, endpoint: RecordingEndpoint, engine: Engine, tmp_path: Path, cli_env: Callable[..., None]
) -> None:
    old = Fernet.generate_key().decode()
    key_file = tmp_path / "keys"
    key_file.write_text(old + "\n")
    key_file.chmod(0o600)
    running = server_with(secrets_key=None, secrets_key_file=key_file)
    assert (await running.post("/api/v1/sources", json=_source("lake", endpoint.url))).status_code == 201

    cli_env(secrets_key_file=str(key_file))
    rotated = runner.invoke(cli, ["secrets", "rotate-key", "--generate", "--retire"])
    assert rotated.exit_code == 0, rotated.output
    keys = [line for line in key_file.read_text().splitlines() if line and not line.startswith("#")]
    assert len(keys) == 1 and keys[0] != old
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert Fernet(keys[0]).decrypt(_stored(engine, "lake")["token"].encode()).decode() == CANARY

    await running.post("/api/v1/sources/lake/sync")  # the running server reads the changed key file
    assert endpoint.received(f"Bearer {CANARY}")


def test_generate_key_prints_a_key_the_server_accepts() -> None:
    printed = runner.invoke(cli, ["secrets", "generate-key"])
    assert printed.exit_code == 0
    Fernet(printed.output.strip())


def test_the_embedded_database_gets_a_key_file_only_its_owner_can_read(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    key_file = tmp_path / "data" / "secrets.key"
    contents = []
    for _ in range(2):
        create_app(settings).state.engine.dispose()
        assert key_file.stat().st_mode & 0o777 == 0o600
        contents.append(key_file.read_text())
    Fernet([line for line in contents[0].splitlines() if not line.startswith("#")][0])
    assert contents[0] == contents[1]  # made once, then kept


def test_production_refuses_to_start_without_a_secrets_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HEADWATER_SECRETS_KEY", "HEADWATER_SECRETS_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="HEADWATER_SECRETS_KEY"):
        Settings(env="production", database_url="postgresql://db/hw")
    Settings(env="production", database_url="postgresql://db/hw", secrets_key=Fernet.generate_key().decode())


def test_a_malformed_key_stops_the_server_at_start_naming_the_setting_not_the_key(app_settings: Settings) -> None:
    with pytest.raises(Exception, match="HEADWATER_SECRETS_KEY") as raised:
        create_app(app_settings.model_copy(update={"secrets_key": SecretStr("not-a-key-x9")}), prepare=False)
    assert "not-a-key-x9" not in str(raised.value)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_plaintext_secrets_stored_before_encryption_are_encrypted_by_the_upgrade(
    backend: str, fresh_database: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HEADWATER_SECRETS_KEY", "HEADWATER_SECRETS_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    url = fresh_database(backend, "plaintext")
    migrations.upgrade(url, "0010")  # the schema before secrets were encrypted
    engine = create_db_engine(url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            session.add(
                Source(name="old", kind="iceberg", namespace="iceberg://old", config={}, secrets={"token": CANARY})
            )
        with pytest.raises(Exception, match="HEADWATER_SECRETS_KEY"):  # no key: no plaintext row survives
            migrations.upgrade(url)
        assert migrations.current_revision(engine) == "0010" and _stored(engine, "old") == {"token": CANARY}

        key = Fernet.generate_key().decode()
        monkeypatch.setenv("HEADWATER_SECRETS_KEY", key)
        get_settings.cache_clear()
        migrations.upgrade(url)
        assert migrations.is_up_to_date(engine)
        token = _stored(engine, "old")["token"]
        assert token != CANARY and Fernet(key).decrypt(token.encode()).decode() == CANARY

        migrations.downgrade(url, "0010")
        assert _stored(engine, "old") == {"token": CANARY}
    finally:
        engine.dispose()
        get_settings.cache_clear()


def test_a_key_set_twice_stops_the_server_at_start(app_settings: Settings, tmp_path: Path) -> None:
    both = {"secrets_key": SecretStr(Fernet.generate_key().decode()), "secrets_key_file": tmp_path / "keys"}
    with pytest.raises(Exception, match="HEADWATER_SECRETS_KEY or HEADWATER_SECRETS_KEY_FILE, not both"):
        create_app(app_settings.model_copy(update=both), prepare=False)


async def test_without_a_key_a_secret_is_refused_with_503_naming_the_settings(server_with: MakeServer) -> None:
    keyless = server_with(secrets_key=None)
    refused = await keyless.post("/api/v1/sources", json=_source("lake", "http://127.0.0.1:1"))
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "secrets_key_error" and "HEADWATER_SECRETS_KEY" in refused.text
    assert CANARY not in refused.text
    plain = {**_source("lake", "http://127.0.0.1:1"), "secrets": {}}
    assert (await keyless.post("/api/v1/sources", json=plain)).status_code == 201
