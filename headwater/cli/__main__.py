"""``python -m headwater.cli``: the ``headwater`` command."""

from __future__ import annotations

from headwater.cli import app

app()
