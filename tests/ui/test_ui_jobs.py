"""Submitting a job from the jobs page, signed in: the form is offered to whoever may submit (an operator), the
job runs as them whatever the form says, is audited like ``POST /api/v1/jobs``, and a viewer, a form without the
CSRF token and bad input submit nothing."""

from __future__ import annotations

import pytest
from owned import make_job
from signed_in import Browser, csrf_of
from sqlalchemy import Engine, func, select

from headwater.auth.actions import Role
from headwater.db import make_sessionmaker
from headwater.jobs import service as jobs
from headwater.jobs.models import Job

pytestmark = pytest.mark.anyio


def job_count(engine: Engine) -> int:
    with make_sessionmaker(engine)() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def form(csrf: str, **changes: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "name": "nightly-check",
        "command": "type:sh",
        "clusters": "sched:nowhere\r\nsched:test",  # the first set matches nothing: the second is tried
        "arguments": "echo checked",
        "description": "a check",
        "timeout": "600",
        **changes,
    }


async def test_an_operator_submits_a_job_that_runs_as_them_from_the_jobs_page(browser: Browser, engine: Engine) -> None:
    make_job(engine, "seed-job", user="someone")  # the shell cluster and command the form's tags choose
    olive = await browser("olive", roles=(Role.OPERATOR,))
    page = (await olive.get("/ui/jobs")).text
    assert 'action="/ui/jobs"' in page
    sent = await olive.post("/ui/jobs", data={**form(csrf_of(page)), "user": "root"})  # a user field is ignored
    assert sent.status_code == 303, sent.text
    job_id = sent.headers["location"].removeprefix("/ui/jobs/")
    with make_sessionmaker(engine)() as session:
        job = jobs.get_job(session, job_id=job_id)
        assert (job.user_name, job.name, job.request["command_args"], job.request["timeout"]) == (
            "olive",
            "nightly-check",
            ["echo checked"],
            600,
        )
        assert job.request["cluster_criteria"] == [["sched:nowhere"], ["sched:test"]]
    shown = await olive.get(sent.headers["location"])
    assert shown.status_code == 200 and "nightly-check" in shown.text
    audit = await browser("root", roles=(Role.ADMIN,))
    entries = (await audit.get("/api/v1/audit", params={"actor": "olive"})).json()["items"]
    assert [(e["action"], e["target"], e["outcome"]) for e in entries] == [
        ("jobs.submit", f"/api/v1/jobs/{job_id}", "ok")
    ]


async def test_a_viewer_gets_no_form_and_bad_or_unprotected_forms_submit_nothing(
    browser: Browser, engine: Engine
) -> None:
    make_job(engine, "seed-job", user="someone")
    before = job_count(engine)
    vera = await browser("vera", roles=(Role.VIEWER,))
    page = (await vera.get("/ui/jobs")).text
    assert 'action="/ui/jobs"' not in page
    refused = await vera.post("/ui/jobs", data=form(csrf_of(page)))
    assert refused.status_code == 403 and "jobs.submit" in refused.text
    olive = await browser("olive", roles=(Role.OPERATOR,))
    csrf = csrf_of((await olive.get("/ui/jobs")).text)
    assert (await olive.post("/ui/jobs", data={**form(csrf), "csrf_token": "forged"})).status_code == 403
    for bad, named in (
        ({"clusters": ""}, "cluster_criteria"),
        ({"timeout": "soon"}, "timeout"),
        ({"name": ""}, "name"),
    ):
        answer = await olive.post("/ui/jobs", data=form(csrf, **bad))
        assert answer.status_code == 400, answer.text
        assert named in answer.text and "text/html" in answer.headers["content-type"]
    assert job_count(engine) == before
