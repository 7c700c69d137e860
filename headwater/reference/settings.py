"""The settings reference (``docs/reference/settings.md``), generated from :class:`~headwater.settings.Settings`.

The page is written by ``scripts/gen-reference.py`` with the other references (:mod:`headwater.reference`);
``tests/test_settings_reference.py`` fails when the committed page no longer matches the code, so a new setting
cannot go undocumented.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_core import PydanticUndefined

from headwater.settings import Settings

__all__ = ["settings_reference"]

HEADER = """# Settings reference

<!-- Generated from headwater/settings/ by scripts/gen-reference.py: do not edit by hand. -->

Every setting is an environment variable with the `HEADWATER_` prefix (`data_dir` is `HEADWATER_DATA_DIR`).
Lists are comma-separated. `HEADWATER_ENV=production` refuses the unsafe defaults it names on start.

| Variable | Default | Meaning |
|---|---|---|
"""


def _default(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None or isinstance(value, SecretStr):
        return "unset"
    if isinstance(value, list):
        return ", ".join(f"`{item}`" for item in value) if value else "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    return f"`{value}`"


def settings_reference() -> str:
    """The Markdown page listing every setting, its default and its description."""
    rows = []
    # The general settings first, then the groups Settings inherits (the jobs' own), as the docs read best.
    own = [name for name in Settings.model_fields if name in Settings.__annotations__]
    fields = Settings.model_fields
    for name in [*own, *(name for name in fields if name not in own)]:
        field = fields[name]
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `HEADWATER_{name.upper()}` | {_default(field)} | {meaning} |")
    return HEADER + "\n".join(rows) + "\n"
