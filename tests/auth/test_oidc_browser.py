"""The UI sign-in in a real browser: Debian's Chromium (headless, through playwright) signs in at the real provider's
login form, lands on the page it asked for with its name in the header, and signs out with the header's button."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from live_http import free_port, serve_in_thread
from oidc_provider import Stack
from playwright_chromium import launched_chromium
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


WAIT_MS = 30_000


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, through playwright."""
    with launched_chromium() as browser:
        yield browser


def test_a_person_signs_in_and_out_in_chromium(oidc_stack: Stack, chromium: Any) -> None:
    port = free_port()
    provider, app = oidc_stack(redirect_uris=[f"http://127.0.0.1:{port}/ui/auth/callback"])
    with serve_in_thread(app, port=port) as base:
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
