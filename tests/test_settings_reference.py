"""The committed settings reference matches the code: a new or changed setting is documented."""

from __future__ import annotations

from pathlib import Path

from headwater.settings import Settings
from headwater.settings_reference import settings_reference

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "settings.md"


def test_every_setting_has_a_description() -> None:
    undescribed = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
    assert undescribed == []


def test_the_committed_reference_is_current() -> None:
    assert PAGE.read_text() == settings_reference(), "run scripts/gen-reference.py and commit docs/reference"


def test_the_reference_names_every_setting_with_its_default() -> None:
    page = settings_reference()
    assert "| `HEADWATER_PORT` | `8000` |" in page
    assert "| `HEADWATER_SECRETS_KEY` | unset |" in page
    assert "| `HEADWATER_ALLOWED_HOSTS` | `localhost`, `127.0.0.1`, `[::1]` |" in page
    assert page.count("\n| `HEADWATER_") == len(Settings.model_fields)
