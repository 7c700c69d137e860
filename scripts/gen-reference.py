#!/usr/bin/env python3
"""Write the generated reference pages under docs/reference/ (run after changing a setting)."""

from __future__ import annotations

from pathlib import Path

from headwater.settings_reference import settings_reference

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reference"

if __name__ == "__main__":
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "settings.md").write_text(settings_reference())
    print(f"wrote {DOCS / 'settings.md'}")
