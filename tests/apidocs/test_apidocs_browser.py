"""``/docs`` (Swagger UI) and ``/graphql`` (GraphiQL) in a real headless Chromium, from ``headwater serve`` on
127.0.0.1, with every request to another host aborted and recorded: both pages must render and work from this
server's files alone, under their Content-Security-Policy (no inline script), as on a network that blocks CDNs.

Chromium is Debian's (``apt-get install chromium``; ``make test`` installs it), driven by playwright without its
own browser download. Missing either skips locally and fails under ``CI=true``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from live_http import headwater_serve
from playwright_chromium import launched_chromium

pytestmark = pytest.mark.integration

WAIT_MS = 60_000  # two shared cores: parsing Swagger UI's 1.5 MB bundle can take a while


class Browser:
    """One page of a headless Chromium whose requests off 127.0.0.1 are aborted and kept in ``outside``; console
    errors (a Content-Security-Policy violation is one) and uncaught exceptions are kept in ``errors``."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.outside: list[str] = []
        self.errors: list[str] = []
        page.route("**/*", self._route)
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _route(self, route: Any) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).hostname != "127.0.0.1":
            self.outside.append(url)
            route.abort()
        else:
            route.continue_()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``headwater serve`` over a fresh embedded database holding one dataset."""
    with headwater_serve(tmp_path_factory.mktemp("apidocs")) as base:
        created = httpx.post(f"{base}/api/v1/datasets", json={"name": "browser.checked"}, timeout=10)
        assert created.status_code == 201, created.text
        yield base


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, through playwright."""
    with launched_chromium() as browser:
        yield browser


@pytest.fixture
def browser(chromium: Any) -> Iterator[Browser]:
    context = chromium.new_context()
    yield Browser(context.new_page())
    context.close()


def _assert_served_under_the_policy(response: Any) -> None:
    policy = response.headers.get("content-security-policy", "")
    assert response.status == 200
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy, policy


def test_swagger_ui_lists_every_operation_with_nothing_fetched_off_the_server(server: str, browser: Browser) -> None:
    _assert_served_under_the_policy(browser.page.goto(f"{server}/docs"))
    browser.page.wait_for_selector(".opblock", timeout=WAIT_MS)
    shown = browser.page.eval_on_selector_all(
        ".opblock",
        "blocks => blocks.map(b => [b.querySelector('.opblock-summary-method').textContent.toLowerCase(),"
        " b.querySelector('.opblock-summary-path').dataset.path])",
    )
    document = httpx.get(f"{server}/openapi.json", timeout=10).json()
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert {(method, path) for method, path in shown} == documented
    assert len(documented) > 50
    assert browser.outside == [] and browser.errors == []


def test_graphiql_runs_a_query_with_nothing_fetched_off_the_server(server: str, browser: Browser) -> None:
    _assert_served_under_the_policy(browser.page.goto(f"{server}/graphql"))
    browser.page.wait_for_selector(".graphiql-query-editor .CodeMirror", timeout=WAIT_MS)
    browser.page.click(".graphiql-execute-button")  # runs the page's example query: the first datasets
    browser.page.wait_for_selector(".result-window :text('browser.checked')", timeout=WAIT_MS)
    answer = browser.page.inner_text(".result-window")
    assert '"total": 1' in answer and '"errors"' not in answer, answer
    assert browser.outside == [] and browser.errors == []


def test_redoc_is_not_served(server: str) -> None:
    assert httpx.get(f"{server}/redoc", timeout=10).status_code == 404


def test_without_graphiqls_files_the_page_says_how_to_install_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from headwater.apidocs import routes

    monkeypatch.setattr(routes, "VENDOR", tmp_path)  # an installation that skipped scripts/install-graphiql.sh
    page = routes.graphiql_page()
    assert page.status_code == 503 and b"scripts/install-graphiql.sh" in page.body
