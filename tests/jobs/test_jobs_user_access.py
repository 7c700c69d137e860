"""Who a job runs as and how many a user may have active, below the HTTP edge: the per-user limit holds when two
submissions race (each on its own connection), local mode is as before, the limit's settings resolve as
documented, and Spark clusters pass --proxy-user when asked; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import job_body, shell_setup

from headwater.auth.actions import Role
from headwater.auth.principal import LOCAL_ADMIN, Principal, PrincipalKind
from headwater.db import session_scope
from headwater.errors import TooManyRequests
from headwater.jobs import access, service
from headwater.jobs.engines import JobContext, SparkEngine
from headwater.jobs.schemas import JobSubmit
from headwater.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def job_settings(app: FastAPI) -> Iterator[Callable[..., None]]:
    """Change the app's jobs settings for one test: job_settings(jobs_user_active_limit=1)."""
    original = app.state.settings

    def change(**update: Any) -> None:
        app.state.settings = original.model_copy(update=update)

    yield change
    app.state.settings = original


async def test_two_submissions_racing_at_the_limit_do_not_both_pass(client: httpx.AsyncClient, app: FastAPI) -> None:
    await shell_setup(client)
    olive = Principal(name="olive", kind=PrincipalKind.USER, roles=frozenset({Role.OPERATOR}))
    submitter = access.Submitter(user="olive", principal=olive, active_limit=1)
    request = JobSubmit.model_validate(job_body("true"))
    factory = app.state.sessionmaker
    first = factory()
    outcome: list[str] = []

    def second() -> None:
        try:
            with session_scope(factory) as session:
                service.submit_job(session, data=request, submitter=submitter)
            outcome.append("accepted")
        except TooManyRequests as exc:
            outcome.append(exc.message)

    try:
        service.submit_job(first, data=request, submitter=submitter)  # counted 0, not yet committed
        racer = threading.Thread(target=second)
        racer.start()
        racer.join(1.0)
        assert racer.is_alive(), f"the second submission did not wait for the first: {outcome}"
        first.commit()
    finally:
        first.close()
    racer.join(30)
    assert len(outcome) == 1 and "limit of 1" in outcome[0], outcome
    page = (await client.get("/api/v1/jobs", params={"user": "olive"})).json()
    assert page["total"] == 1


async def test_local_mode_runs_jobs_as_named_or_as_local_without_a_limit(
    client: httpx.AsyncClient, job_settings: Callable[..., None]
) -> None:
    job_settings(jobs_user_active_limit=1)
    await shell_setup(client)
    named = await client.post("/api/v1/jobs", json=job_body("true"))
    assert named.status_code == 202 and named.json()["user"] == "alice"  # as before: the body names the user
    unnamed = {key: value for key, value in job_body("true").items() if key != "user"}
    for _ in range(2):
        r = await client.post("/api/v1/jobs", json=unnamed)
        assert r.status_code == 202, r.text  # no per-user limit in local mode
        assert r.json()["user"] == "local"
    mine = (await client.get("/api/v1/jobs", params={"user": "me"})).json()
    assert [job["user"] for job in mine["items"]] == ["local", "local"]


def _user(name: str, *groups: str, kind: PrincipalKind = PrincipalKind.USER) -> Principal:
    return Principal(name=name, kind=kind, groups=frozenset(groups), roles=frozenset({Role.OPERATOR}))


@pytest.mark.parametrize(
    ("principal", "user", "expected"),
    [
        (_user("ann"), "ann", 5),  # the default
        (_user("ann", "batch"), "ann", 50),  # a group's override
        (_user("ann", "batch", "etl"), "ann", None),  # the most generous group's: etl's 0 is no limit
        (_user("vip", "batch"), "vip", 2),  # the user's own entry wins over its groups'
        (_user("bot", kind=PrincipalKind.SERVICE), "bot", 7),  # a service account's entry
        (_user("admin", "batch"), "someone", 5),  # submitting as another: that user's limit, not the groups'
        (LOCAL_ADMIN, "local", None),  # local mode: none
    ],
)
def test_the_active_limit_resolves_as_documented(principal: Principal, user: str, expected: int | None) -> None:
    settings = Settings(
        jobs_user_active_limit=5,
        jobs_user_limits=["group:batch=50", "group:etl=0", "user:vip=2", "service:bot=7"],
    )
    assert access.active_limit_of(principal, user, settings) == expected


def test_limit_overrides_are_checked_when_settings_load() -> None:
    with pytest.raises(ValueError, match="HEADWATER_JOBS_USER_LIMITS"):
        Settings(jobs_user_limits=["batch=5"])


def test_spark_clusters_pass_the_jobs_user_as_proxy_user_only_when_configured() -> None:
    def argv(config: dict[str, Any]) -> list[str]:
        context = JobContext(
            job_id="j",
            job_name="n",
            run_uuid="00000000-0000-0000-0000-000000000000",
            args=["job.py"],
            command=["spark-submit"],
            cluster_config=config,
            user="alice",
        )
        return SparkEngine().launch(context).argv

    assert "--proxy-user" not in argv({})
    launched = argv({"proxy_user": True})
    assert launched[launched.index("--proxy-user") + 1] == "alice"
    assert launched.index("--proxy-user") < launched.index("job.py")
