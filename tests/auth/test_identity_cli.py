"""The identity CLI on the database directly: the first admin's token, a service account with a role and a
namespace-limited token, revocation, and the audit entries these changes leave (as the CLI's operator)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from headwater.auth.models import ApiToken
from headwater.auth.tokens import hash_token
from headwater.cli import app
from headwater.settings import get_settings

runner = CliRunner()


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """The CLI pointed at an embedded database in a temporary data directory."""
    monkeypatch.setenv("HEADWATER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HEADWATER_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_an_admin_sets_up_a_producer_from_the_cli(embedded: Path) -> None:
    first = run("tokens", "create", "--user", "alice", "--label", "first admin")
    secret = first.strip().splitlines()[-1]
    assert secret.startswith("hw_")
    run("roles", "grant", "admin", "--user", "alice")
    run("service-accounts", "create", "airflow", "--description", "Airflow prod")
    run("roles", "grant", "editor", "--service-account", "airflow")
    made = run("tokens", "create", "--service-account", "airflow", "--label", "dag", "--namespace", "airflow-prod")
    run("service-accounts", "disable", "airflow")

    tokens = json.loads(run("tokens", "list", "--json"))
    assert [(t["principal_name"], t["revoked_at"] is not None) for t in tokens["items"]] == [
        ("airflow", True),
        ("alice", False),
    ]
    assert tokens["items"][0]["namespaces"] == ["airflow-prod"]
    assert secret not in str(tokens) and made.strip().splitlines()[-1] not in str(tokens)
    bindings = json.loads(run("roles", "list", "--json"))["items"]
    assert {(b["subject_kind"], b["subject"], b["role"]) for b in bindings} == {
        ("user", "alice", "admin"),
        ("service_account", "airflow", "editor"),
    }
    run("roles", "revoke", "editor", "--service-account", "airflow")

    engine = create_engine(f"sqlite:///{embedded / 'headwater.db'}")
    with Session(engine) as session:
        assert (
            session.scalar(select(ApiToken.principal_name).where(ApiToken.token_hash == hash_token(secret))) == "alice"
        )
    engine.dispose()

    entries = json.loads(run("audit", "--json"))["items"]
    assert len(entries) == 7 and all(e["method"] == "CLI" and e["actor"].startswith("cli:") for e in entries)
    assert entries[0]["target"] == "service_account:airflow" and entries[0]["summary"]["revoked"] is True
    assert json.loads(run("audit", "list", "--json", "--action", "nothing"))["items"] == []


def test_a_bad_subject_is_one_clear_line(embedded: Path) -> None:
    result = runner.invoke(app, ["roles", "grant", "editor", "--service-account", "ghost"])
    assert result.exit_code == 1 and "no service account 'ghost'" in result.output
    both = runner.invoke(app, ["roles", "grant", "editor", "--user", "a", "--group", "b"])
    assert both.exit_code == 1 and "exactly one" in both.output
