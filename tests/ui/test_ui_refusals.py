"""A UI page refused by its permission, for a browser, answers the UI's error page, not the API's JSON: 403
naming the permission missing, in the page's frame (the header saying who is signed in). A job's page is its
user's without a role, and shows its logs to its user and admins only."""

from __future__ import annotations

import pytest
from owned import make_job
from signed_in import Browser
from sqlalchemy import Engine

from headwater.auth.actions import Role

pytestmark = pytest.mark.anyio


async def test_a_ui_page_refused_by_its_permission_is_an_html_403_naming_it(browser: Browser) -> None:
    nora = await browser("nora")  # signed in, but no role grants her anything
    for path, permission in [
        ("/ui", "search.read"),
        ("/ui/sources", "catalog.read"),
        ("/ui/jobs", "jobs.read"),
        ("/ui/impact?dataset_id=1", "lineage.read"),
    ]:
        page = await nora.get(path)
        assert page.status_code == 403, (path, page.text)
        assert page.headers["content-type"].startswith("text/html"), path
        assert "<h1>Not allowed</h1>" in page.text, path
        assert f'id="missing-permission">This needs the permission <code>{permission}</code>' in page.text, path
        assert "&#39;nora&#39;" in page.text, path  # the message names who was refused
        assert 'id="who"' in page.text and "Sign out" in page.text  # the UI's own frame: who, and a way out
        assert 'id="sign-in"' not in page.text  # she is signed in: signing in again would not help


async def test_a_jobs_page_is_its_users_without_a_role_and_anothers_is_an_html_403(
    browser: Browser, engine: Engine
) -> None:
    mine, theirs = make_job(engine, "nora-job", user="nora"), make_job(engine, "bob-job", user="bob")
    nora = await browser("nora")
    own = await nora.get(f"/ui/jobs/{mine}")
    assert own.status_code == 200 and 'id="logs-hidden"' not in own.text and "<h2>stdout" in own.text
    refused = await nora.get(f"/ui/jobs/{theirs}")
    assert refused.status_code == 403 and "<code>jobs.read</code>" in refused.text
    missing = await nora.get("/ui/jobs/no-such-job")
    assert missing.status_code == 404 and "<h1>Not found</h1>" in missing.text
    too_long = await nora.get(f"/ui/jobs/{'x' * 300}")
    assert too_long.status_code == 400 and "<h1>Cannot show that</h1>" in too_long.text


async def test_a_viewer_sees_anothers_job_without_its_logs_and_a_line_saying_why(
    browser: Browser, engine: Engine
) -> None:
    theirs = make_job(engine, "olive-job", user="olive")
    vera = await browser("vera", roles=(Role.VIEWER,))
    page = await vera.get(f"/ui/jobs/{theirs}")
    assert page.status_code == 200 and "olive-job" in page.text
    assert 'id="logs-hidden"' in page.text and "<code>jobs.logs</code>" in page.text
    assert "<h2>stdout" not in page.text and f"/api/v1/jobs/{theirs}/output" not in page.text
    root = await browser("root", roles=(Role.ADMIN,))
    shown = await root.get(f"/ui/jobs/{theirs}")
    assert 'id="logs-hidden"' not in shown.text and "<h2>stdout" in shown.text
