"""The committed references match the code: a new or changed setting, command, GraphQL type or route is
documented (``scripts/gen-reference.py`` regenerates them)."""

from __future__ import annotations

import json
from pathlib import Path

from headwater.graphql.schema import schema
from headwater.reference import PAGES, stale_pages
from headwater.reference.cli import cli_reference
from headwater.reference.graphql import graphql_reference
from headwater.reference.openapi import openapi_document, openapi_reference
from headwater.reference.settings import settings_reference
from headwater.settings import Settings

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference"
PAGE = REFERENCE / "settings.md"


def test_every_setting_has_a_description() -> None:
    undescribed = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
    assert undescribed == []


def test_the_committed_reference_is_current() -> None:
    assert PAGE.read_text() == settings_reference(), "run scripts/gen-reference.py and commit docs/reference"


def test_every_committed_reference_is_current() -> None:
    assert stale_pages(REFERENCE) == [], "run scripts/gen-reference.py and commit docs/reference"
    assert set(PAGES) == {"settings.md", "cli.md", "graphql.md", "openapi.md", "openapi.json"}


def test_the_reference_names_every_setting_with_its_default() -> None:
    page = settings_reference()
    assert "| `HEADWATER_PORT` | `8000` |" in page
    assert "| `HEADWATER_SECRETS_KEY` | unset |" in page
    assert "| `HEADWATER_ALLOWED_HOSTS` | `localhost`, `127.0.0.1`, `[::1]` |" in page
    assert page.count("\n| `HEADWATER_") == len(Settings.model_fields)


def test_the_cli_reference_names_every_command_and_option() -> None:
    page = cli_reference()
    for command in ("serve", "demo", "worker", "db upgrade", "datasets show", "sources add", "jobs submit"):
        assert f"`headwater {command}`" in page
    assert "| `--config` / `-c` (repeatable) | str |" in page
    assert "| `--jobs` / `--no-jobs` | flag | `true` |" in page
    assert "headwater db upgrade [REVISION]" in page


def test_the_graphql_reference_is_the_schema() -> None:
    page = graphql_reference()
    assert schema.as_str().rstrip() in page
    assert "type Query {" in page and "type Mutation {" in page
    assert "union DatasetResult = Dataset | NotFoundError" in page


def test_the_openapi_reference_lists_every_operation() -> None:
    document = openapi_document()
    page = openapi_reference()
    methods = {"get", "post", "put", "patch", "delete"}
    operations = [(m, p) for p, item in document["paths"].items() for m in item if m in methods]
    assert len(operations) > 40
    for method, path in operations:
        assert f"| `{method.upper()}` | `{path}` |" in page
    assert json.loads((REFERENCE / "openapi.json").read_text())["info"]["title"] == "Headwater"
