"""Editing a dataset and killing a job from the UI, signed in: the forms appear for whoever the REST route would
let do it (an owner, an editor; a job's user), post with the session's CSRF token and the version the page was
rendered at, write through the REST route's service function, are audited, and refuse (writing nothing) a viewer,
a form without its CSRF token, a form from another site, a stale form and bad input."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from owned import make_dataset, make_job
from signed_in import Browser, csrf_of
from sqlalchemy import Engine, select

from headwater.auth.actions import Role
from headwater.auth.models import AuditEntry, SubjectKind
from headwater.auth.tokens import create_token
from headwater.catalog import service as catalog
from headwater.db import make_sessionmaker
from headwater.jobs import service as jobs

pytestmark = pytest.mark.anyio


def description_of(engine: Engine, dataset_id: int) -> str | None:
    with make_sessionmaker(engine)() as session:
        return catalog.get_dataset(session, dataset_id=dataset_id).user_description


def tags_of(engine: Engine, dataset_id: int) -> list[str]:
    with make_sessionmaker(engine)() as session:
        return sorted(t.tag for t in catalog.get_dataset(session, dataset_id=dataset_id).tags)


def audit_of(engine: Engine, target: str) -> list[tuple[str, str, str, str, str]]:
    with make_sessionmaker(engine)() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.target == target).order_by(AuditEntry.id))
        return [(e.actor, e.action, e.method, e.target_kind, e.outcome) for e in rows]


def version_of(page: str) -> str:
    marker = 'name="version" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)].replace("&#34;", '"')


async def open_dataset(client: httpx.AsyncClient, dataset_id: int) -> tuple[str, str, str]:
    """The dataset's page, its CSRF token and the version its forms carry."""
    page = await client.get(f"/ui/datasets/{dataset_id}")
    assert page.status_code == 200, page.text
    return page.text, csrf_of(page.text), version_of(page.text)


async def test_an_owner_without_the_editor_role_edits_the_description_and_the_change_is_audited(
    browser: Browser, engine: Engine
) -> None:
    dataset_id, _ = make_dataset(engine, owners=("alice",))
    alice = await browser("alice", roles=(Role.VIEWER,))
    page, csrf, version = await open_dataset(alice, dataset_id)
    assert f'action="/ui/datasets/{dataset_id}/description"' in page
    assert version.startswith(f'"{dataset_id}.')

    saved = await alice.post(
        f"/ui/datasets/{dataset_id}/description",
        data={"csrf_token": csrf, "version": version, "description": "Orders <as> placed\r\nby shoppers"},
    )
    assert saved.status_code == 303 and saved.headers["location"] == f"/ui/datasets/{dataset_id}"
    assert description_of(engine, dataset_id) == "Orders <as> placed\nby shoppers"
    shown = (await alice.get(f"/ui/datasets/{dataset_id}")).text
    assert "Orders &lt;as&gt; placed" in shown
    # Recorded as its REST twin is: the dataset's API resource, catalog.edit, by alice.
    assert audit_of(engine, f"/api/v1/datasets/{dataset_id}") == [("alice", "catalog.edit", "POST", "datasets", "ok")]


async def test_an_editor_who_owns_nothing_edits_tags_and_owners(browser: Browser, engine: Engine) -> None:
    dataset_id, _ = make_dataset(engine, owners=("team-core",))
    eddie = await browser("eddie", roles=(Role.EDITOR,))
    _, csrf, version = await open_dataset(eddie, dataset_id)
    tagged = await eddie.post(
        f"/ui/datasets/{dataset_id}/tags", data={"csrf_token": csrf, "version": version, "tags": "gold, pii  daily"}
    )
    assert tagged.status_code == 303, tagged.text
    assert tags_of(engine, dataset_id) == ["daily", "gold", "pii"]

    page, csrf, version = await open_dataset(eddie, dataset_id)  # the page of the new version
    assert 'value="daily, gold, pii"' in page
    owned = await eddie.post(
        f"/ui/datasets/{dataset_id}/owners",
        data={
            "csrf_token": csrf,
            "version": version,
            "owner": ["team-core", "", "bob"],
            "role": ["technical_owner", "technical_owner", "data_steward"],
        },
    )
    assert owned.status_code == 303, owned.text
    answer = (await eddie.get(f"/api/v1/datasets/{dataset_id}")).json()
    assert answer["owners"] == [
        {"name": "bob", "role": "data_steward"},
        {"name": "team-core", "role": "technical_owner"},
    ]


async def test_a_viewer_who_owns_nothing_sees_no_forms_and_a_forged_post_is_refused_with_the_error_page(
    browser: Browser, engine: Engine
) -> None:
    dataset_id, _ = make_dataset(engine, owners=("alice",))
    vera = await browser("vera", roles=(Role.VIEWER,))
    page = (await vera.get(f"/ui/datasets/{dataset_id}")).text
    assert "/description" not in page and 'name="version"' not in page
    csrf = csrf_of(page)  # the sign-out form's: a valid token of vera's session
    forged = await vera.post(
        f"/ui/datasets/{dataset_id}/description",
        data={"csrf_token": csrf, "version": f'"{dataset_id}.1"', "description": "vera was here"},
    )
    assert forged.status_code == 403
    assert forged.headers["content-type"].startswith("text/html")
    assert "lacks the permission" in forged.text and "catalog.edit" in forged.text
    assert description_of(engine, dataset_id) is None
    assert audit_of(engine, f"/ui/datasets/{dataset_id}/description") == [
        ("vera", "catalog.edit", "POST", "ui", "refused")
    ]


async def test_a_form_without_the_sessions_csrf_token_or_from_another_site_changes_nothing(
    browser: Browser, engine: Engine
) -> None:
    dataset_id, _ = make_dataset(engine, owners=("alice",))
    alice = await browser("alice", roles=(Role.VIEWER,))
    _, csrf, version = await open_dataset(alice, dataset_id)
    url = f"/ui/datasets/{dataset_id}/description"
    missing = await alice.post(url, data={"version": version, "description": "x"})
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "csrf_failed"
    forged = csrf[:-1] + ("y" if csrf.endswith("x") else "x")  # never the token itself
    wrong = await alice.post(url, data={"csrf_token": forged, "version": version, "description": "x"})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "csrf_failed"
    # Another session's token is no better: it does not match this session's.
    other = await browser("mallory", roles=(Role.VIEWER,))
    theirs = csrf_of((await other.get("/ui/sources")).text)
    assert (
        await alice.post(url, data={"csrf_token": theirs, "version": version, "description": "x"})
    ).status_code == 403
    cross_site = await alice.post(
        url,
        data={"csrf_token": csrf, "version": version, "description": "x"},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert cross_site.status_code == 403 and cross_site.json()["error"]["code"] == "cross_origin_refused"
    assert description_of(engine, dataset_id) is None
    # Same origin, with the token: the one that goes through.
    same_origin = await alice.post(
        url,
        data={"csrf_token": csrf, "version": version, "description": "mine"},
        headers={"Origin": f"http://{alice.base_url.host}", "Sec-Fetch-Site": "same-origin"},
    )
    assert same_origin.status_code == 303
    assert description_of(engine, dataset_id) == "mine"


async def test_a_stale_form_is_refused_with_a_reload_link_and_never_overwrites(
    browser: Browser, engine: Engine
) -> None:
    dataset_id, _ = make_dataset(engine, owners=("alice",))
    alice = await browser("alice", roles=(Role.VIEWER,))
    eddie = await browser("eddie", roles=(Role.EDITOR,))
    _, alice_csrf, alice_version = await open_dataset(alice, dataset_id)
    _, eddie_csrf, eddie_version = await open_dataset(eddie, dataset_id)
    first = await eddie.post(
        f"/ui/datasets/{dataset_id}/description",
        data={"csrf_token": eddie_csrf, "version": eddie_version, "description": "eddie's"},
    )
    assert first.status_code == 303

    stale = await alice.post(
        f"/ui/datasets/{dataset_id}/description",
        data={"csrf_token": alice_csrf, "version": alice_version, "description": "alice's"},
    )
    assert stale.status_code == 412
    assert "Changed by someone else" in stale.text
    assert f'href="/ui/datasets/{dataset_id}"' in stale.text
    assert description_of(engine, dataset_id) == "eddie's"
    # The tags form of the same stale page is refused too: a version is of the whole dataset.
    stale_tags = await alice.post(
        f"/ui/datasets/{dataset_id}/tags", data={"csrf_token": alice_csrf, "version": alice_version, "tags": "x"}
    )
    assert stale_tags.status_code == 412 and tags_of(engine, dataset_id) == []


@pytest.mark.parametrize(
    ("form", "data", "expected"),
    [
        ("tags", {"tags": "good bad!tag"}, "tags.1"),
        ("owners", {"owner": ["alice"], "role": ["chief"]}, "chief"),
        ("owners", {"owner": ["alice", "bob"], "role": ["technical_owner"]}, "a name and a role"),
        ("description", {"description": "nul \x00 inside"}, "description"),
        ("description", {"description": "no version"}, "no version of the dataset"),
    ],
)
async def test_bad_input_answers_the_error_page_with_a_400_and_writes_nothing(
    form: str, data: dict[str, object], expected: str, browser: Browser, engine: Engine
) -> None:
    dataset_id, _ = make_dataset(engine, owners=("alice",))
    alice = await browser("alice", roles=(Role.VIEWER,))
    _, csrf, version = await open_dataset(alice, dataset_id)
    fields = {"csrf_token": csrf, **data}
    if data.get("description") != "no version":
        fields["version"] = version
    refused = await alice.post(f"/ui/datasets/{dataset_id}/{form}", data=fields)
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"].startswith("text/html")
    assert "Nothing was changed" in refused.text and expected in refused.text
    with make_sessionmaker(engine)() as session:
        dataset = catalog.get_dataset(session, dataset_id=dataset_id)
        assert dataset.user_description is None and [o.owner for o in dataset.owners] == ["alice"]
    assert tags_of(engine, dataset_id) == []


async def test_a_malformed_or_missing_dataset_answers_the_error_page(browser: Browser, engine: Engine) -> None:
    eddie = await browser("eddie", roles=(Role.EDITOR,))
    csrf = csrf_of((await eddie.get("/ui/sources")).text)
    missing = await eddie.post("/ui/datasets/999999/description", data={"csrf_token": csrf, "version": '"1.1"'})
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    malformed = await eddie.post("/ui/datasets/abc/description", data={"csrf_token": csrf, "version": '"1.1"'})
    assert malformed.status_code == 400 and malformed.headers["content-type"].startswith("text/html")


def status_of(engine: Engine, job_id: str) -> str:
    with make_sessionmaker(engine)() as session:
        return str(jobs.get_job(session, job_id=job_id).status)


async def test_the_jobs_user_kills_it_from_its_page_and_others_see_no_button_and_are_refused(
    browser: Browser, engine: Engine
) -> None:
    job_id = make_job(engine, "alice-job", user="alice")
    bob = await browser("bob", roles=(Role.VIEWER,))
    page = (await bob.get(f"/ui/jobs/{job_id}")).text
    assert "/kill" not in page
    refused = await bob.post(f"/ui/jobs/{job_id}/kill", data={"csrf_token": csrf_of(page)})
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")
    assert "jobs.kill" in refused.text
    assert status_of(engine, job_id) != "KILLED"

    alice = await browser("alice", roles=(Role.VIEWER,))  # no role that kills: the job is hers
    page = (await alice.get(f"/ui/jobs/{job_id}")).text
    assert f'action="/ui/jobs/{job_id}/kill"' in page
    killed = await alice.post(f"/ui/jobs/{job_id}/kill", data={"csrf_token": csrf_of(page)})
    assert killed.status_code == 303 and killed.headers["location"] == f"/ui/jobs/{job_id}"
    assert status_of(engine, job_id) == "KILLED"
    after = (await alice.get(f"/ui/jobs/{job_id}")).text
    assert "KILLED" in after and "/kill" not in after  # an ended job has no button
    assert audit_of(engine, f"/api/v1/jobs/{job_id}") == [("alice", "jobs.kill", "POST", "jobs", "ok")]


async def test_an_admin_sees_the_kill_button_on_anyones_job(browser: Browser, engine: Engine) -> None:
    job_id = make_job(engine, "bob-job", user="bob")
    root = await browser("root", roles=(Role.ADMIN,))
    page = (await root.get(f"/ui/jobs/{job_id}")).text
    assert f'action="/ui/jobs/{job_id}/kill"' in page
    assert (await root.post(f"/ui/jobs/{job_id}/kill", data={"csrf_token": csrf_of(page)})).status_code == 303
    assert status_of(engine, job_id) == "KILLED"


async def test_an_owners_rest_patch_is_audited_with_the_action_the_ui_form_is(
    browser: Browser, engine: Engine, ui_auth_app: FastAPI
) -> None:
    dataset_id, etag = make_dataset(engine, owners=("alice",))
    with make_sessionmaker(engine).begin() as session:
        _, secret = create_token(session, kind=SubjectKind.USER, name="alice", label="test")
    transport = httpx.ASGITransport(app=ui_auth_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://headwater.test") as program:
        patched = await program.patch(
            f"/api/v1/datasets/{dataset_id}",
            json={"description": "by REST"},
            headers={"Authorization": f"Bearer {secret}", "If-Match": etag},
        )
    assert patched.status_code == 200, patched.text
    # The same from a browser that also holds a session: the token's last-used time is no part of the change.
    alice = await browser("alice")
    patched = await alice.patch(
        f"/api/v1/datasets/{dataset_id}",
        json={"description": "by REST again"},
        headers={"Authorization": f"Bearer {secret}", "If-Match": patched.headers["etag"]},
    )
    assert patched.status_code == 200, patched.text
    assert audit_of(engine, f"/api/v1/datasets/{dataset_id}") == [
        ("alice", "catalog.edit", "PATCH", "datasets", "ok"),
        ("alice", "catalog.edit", "PATCH", "datasets", "ok"),
    ]


async def test_a_fields_description_and_tags_are_edited_from_the_fields_table(browser: Browser, engine: Engine) -> None:
    dataset_id, _ = make_dataset(engine, owners=("alice",))
    alice = await browser("alice", roles=(Role.VIEWER,))
    page, csrf, version = await open_dataset(alice, dataset_id)
    assert f'action="/ui/datasets/{dataset_id}/fields"' in page and 'name="path" value="id"' in page
    form = {"csrf_token": csrf, "version": version, "path": "id", "description": "The order's key", "tags": "key gold"}
    saved = await alice.post(f"/ui/datasets/{dataset_id}/fields", data=form)
    assert saved.status_code == 303, saved.text
    field = (await alice.get(f"/api/v1/datasets/{dataset_id}")).json()["fields"][0]
    assert (field["description"], field["tags"]) == ("The order's key", ["key", "gold"])
    assert audit_of(engine, f"/api/v1/datasets/{dataset_id}")[-1] == ("alice", "catalog.edit", "POST", "datasets", "ok")

    # An unknown field is a 400 naming it; a restricting tag on a column needs catalog.restrict (alice owns the
    # dataset, so she may); nothing is written on either refusal of a viewer who owns nothing.
    _, csrf, version = await open_dataset(alice, dataset_id)
    unknown = await alice.post(f"/ui/datasets/{dataset_id}/fields", data={**form, "version": version, "path": "nope"})
    assert unknown.status_code == 400 and "nope" in unknown.text
    viewer = await browser("vera", roles=(Role.VIEWER,))
    page = (await viewer.get(f"/ui/datasets/{dataset_id}")).text
    assert f'action="/ui/datasets/{dataset_id}/fields"' not in page
    forged = await viewer.post(
        f"/ui/datasets/{dataset_id}/fields",
        data={"csrf_token": csrf_of(page), "version": version, "path": "id", "description": "owned", "tags": ""},
    )
    assert forged.status_code == 403 and "text/html" in forged.headers["content-type"]
    field = (await alice.get(f"/api/v1/datasets/{dataset_id}")).json()["fields"][0]
    assert (field["description"], field["tags"]) == ("The order's key", ["key", "gold"])
