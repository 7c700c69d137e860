"""The docs site builds with ``mkdocs build --strict``: a broken link, a missing anchor or a page left out of the
nav fails here, in the fast tier, as it fails ``make docs``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def test_the_docs_site_builds_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("material") is None:  # mkdocs-material, from the dev extra
        if IN_CI:
            pytest.fail("mkdocs-material is not installed (pip install -e '.[dev]'); CI needs it", pytrace=False)
        pytest.skip("mkdocs-material is not installed (pip install -e '.[dev]')")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index.html", "adr/index.html", "reference/cli/index.html", "reference/openapi.json"):
        assert (site / page).is_file(), page
