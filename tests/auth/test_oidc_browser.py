"""The UI sign-in in a real browser: Debian's Chromium (headless, through playwright) signs in at the real provider's
login form, lands on the page it asked for with its name in the header, and signs out with the header's button."""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from live_http import free_port
from oidc_provider import Stack
from sqlalchemy import Engine
from suite_tables import empty_tables

from headwater.auth.actions import Role
from headwater.auth.models import SubjectKind
from headwater.auth.roles import bind
from headwater.db import make_sessionmaker

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def alice_may_read(engine: Engine) -> Iterator[None]:
    """The person who signs in here holds the viewer role, so the UI's pages answer her."""
    with make_sessionmaker(engine).begin() as session:
        bind(session, kind=SubjectKind.USER, subject="alice", role=Role.VIEWER, by="test")
    yield
    empty_tables(engine)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
WAIT_MS = 30_000


@contextmanager
def serve_on(app: FastAPI, port: int) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1:``port`` in a thread."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, through playwright (no browser download)."""
    problem = None
    if importlib.util.find_spec("playwright") is None:
        problem = "playwright is not installed (the dev extra has it)"
    elif not CHROMIUM.is_file():
        problem = f"no Chromium at {CHROMIUM} (apt-get install chromium; make test installs it)"
    if problem is not None:
        if IN_CI:
            pytest.fail(f"{problem}; CI needs it", pytrace=False)
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_a_person_signs_in_and_out_in_chromium(oidc_stack: Stack, chromium: Any) -> None:
    port = free_port()
    provider, app = oidc_stack(redirect_uris=[f"http://127.0.0.1:{port}/ui/auth/callback"])
    with serve_on(app, port) as base:
        context = chromium.new_context()
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{base}/ui/login?next=/ui/jobs")
        assert page.url.startswith(provider.issuer)  # at the provider's login form
        page.fill("input[name=login]", "alice")
        page.fill("input[name=password]", "anything")
        page.click("button[type=submit]")
        page.wait_for_load_state()
        if page.url.startswith(provider.issuer):  # the consent form
            page.click("button[type=submit]")
        page.wait_for_url(f"{base}/ui/jobs")
        assert page.locator("#who").inner_text().strip().startswith("alice")
        cookie = next(c for c in context.cookies(base) if c["name"] == "headwater_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

        page.click("form.signout button")
        page.wait_for_url(f"{base}/ui/signed-out")
        assert "Sign in" in page.locator("#who").inner_text()
        context.close()
