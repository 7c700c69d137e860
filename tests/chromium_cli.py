"""Headless Chromium driven by its command line (no extra Python package): load a page, let its scripts run, and
read the resulting DOM and what the browser logged (console messages, Content-Security-Policy violations)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# Skipped locally without Chromium; under CI the test runs and load() fails, naming what is missing.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not IN_CI, reason="no Chromium: apt-get install -y chromium (make test installs it)"
)


def load(url: str, profile: Path, *, settle_ms: int = 3000, flags: tuple[str, ...] = ()) -> tuple[str, str]:
    """The DOM of ``url`` after ``settle_ms`` of (virtual) time, and the browser's log (``flags`` are more
    command-line switches)."""
    if CHROMIUM is None:
        pytest.fail("no Chromium on PATH; CI needs it (make test installs it: apt-get install -y chromium)")
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            f"--virtual-time-budget={settle_ms}",
            *flags,
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    return done.stdout, done.stderr


def csp_violations(log: str) -> list[str]:
    """The lines of a browser log reporting a Content-Security-Policy violation."""
    return [line for line in log.splitlines() if "Content Security Policy" in line]
