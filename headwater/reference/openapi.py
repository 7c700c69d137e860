"""The REST reference: the OpenAPI document (``docs/reference/openapi.json``) and a page listing its operations.

The document is built by the app factory with default settings, read without the environment (so a developer's
``HEADWATER_*`` variables do not change it) and without preparing a database.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from headwater.app import create_app
from headwater.settings import Settings

__all__ = ["openapi_document", "openapi_json", "openapi_reference"]

METHODS = ("get", "post", "put", "patch", "delete")

HEADER = """# REST API reference

<!-- Generated from headwater/app.py by scripts/gen-reference.py: do not edit by hand. -->

Every operation of the REST API, from its OpenAPI document: [openapi.json](openapi.json) (OpenAPI {version}).
A running server serves the same document at `/openapi.json` and renders it with Swagger UI at `/docs`. How
to call it: [REST API](../clients/rest.md). Each operation needs the permission named (its `x-permission`; see
[Identity and permissions](../security/identity.md)).

"""


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of an app built with default settings."""
    with tempfile.TemporaryDirectory() as data_dir:
        # model_validate skips the environment: the document must not depend on who generated it.
        settings = Settings.model_validate({"data_dir": Path(data_dir)})
        return create_app(settings, prepare=False).openapi()


def openapi_json() -> str:
    """The OpenAPI document as stable, indented JSON."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def openapi_reference() -> str:
    """The Markdown page listing every operation, grouped by tag."""
    document = openapi_document()
    groups: dict[str, list[str]] = {}
    for path, item in document["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            summary = " ".join((operation.get("summary") or "").split()).replace("|", "\\|")
            tag = (operation.get("tags") or ["other"])[0]
            permission = operation.get("x-permission", "")
            groups.setdefault(tag, []).append(f"| `{method.upper()}` | `{path}` | {summary} | `{permission}` |")
    page = HEADER.format(version=document["openapi"])
    for tag, rows in groups.items():
        header = "| Method | Path | Summary | Permission |\n|---|---|---|---|\n"
        page += f"## {tag}\n\n{header}" + "\n".join(rows) + "\n\n"
    return page.rstrip() + "\n"
