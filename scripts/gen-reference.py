#!/usr/bin/env python3
"""Write the generated reference pages under docs/reference/ (run after changing a setting, a command, the
GraphQL schema or a route): settings, CLI, GraphQL SDL and OpenAPI, all from headwater.reference."""

from __future__ import annotations

from pathlib import Path

from headwater.reference import write_pages

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reference"

if __name__ == "__main__":
    for path in write_pages(DOCS):
        print(f"wrote {path}")
