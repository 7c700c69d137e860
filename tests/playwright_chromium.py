"""Debian's Chromium, headless, driven through playwright (no browser download): for tests that click through
pages as a person does. Skipped locally without it; under CI a missing part fails, naming it."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """A playwright Browser of Debian's Chromium, closed on leaving."""
    problem = None
    if importlib.util.find_spec("playwright") is None:
        problem = "playwright is not installed (pip install playwright; the dev extra has it)"
    elif not CHROMIUM.is_file():
        problem = f"no Chromium at {CHROMIUM} (apt-get install chromium; make test installs it)"
    if problem is not None:
        if IN_CI:
            pytest.fail(f"{problem}; CI needs it", pytrace=False)
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
