"""``/ui/tokens``: a signed-in user lists, makes and revokes their own API tokens. The secret is on the answer of
the form that made it and nowhere else; the token works at once and stops working once revoked; both are
audited like ``/api/v1/tokens``; someone else's token cannot be revoked from here."""

from __future__ import annotations

import re

import pytest
from signed_in import Browser, csrf_of
from sqlalchemy import Engine, select

from headwater.auth.actions import Role
from headwater.auth.models import ApiToken, AuditEntry
from headwater.db import make_sessionmaker

pytestmark = pytest.mark.anyio


async def test_a_token_made_in_the_ui_shows_its_secret_once_works_and_is_revoked(
    browser: Browser, engine: Engine
) -> None:
    alice = await browser("alice", roles=(Role.EDITOR,))
    page = await alice.get("/ui/tokens")
    assert page.status_code == 200 and "no tokens yet" in page.text
    assert 'value="catalog.edit"' in page.text and 'value="jobs.submit"' not in page.text  # only what alice may do

    made = await alice.post(
        "/ui/tokens",
        data={"csrf_token": csrf_of(page.text), "label": "laptop", "expires_days": "30", "scope": ["catalog.read"]},
    )
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    secret = re.search(r'<code class="secret" id="secret">(hw_[A-Za-z0-9_-]+)</code>', made.text)
    assert secret, made.text
    token = secret.group(1)

    listed = (await alice.get("/ui/tokens")).text
    assert "laptop" in listed and token[:10] in listed and token not in listed
    with make_sessionmaker(engine)() as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.token_hash not in listed and row.scopes == ["catalog.read"] and row.expires_at is not None
        token_id = row.id

    me = await alice.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["name"] == "alice" and me.json()["scopes"] == ["catalog.read"]

    revoked = await alice.post(f"/ui/tokens/{token_id}/revoke", data={"csrf_token": csrf_of(listed)})
    assert revoked.status_code == 303 and revoked.headers["location"] == "/ui/tokens"
    assert "revoked" in (await alice.get("/ui/tokens")).text
    assert (await alice.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})).status_code == 401

    with make_sessionmaker(engine)() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.target == f"token:{token_id}")).all()
        assert [(e.actor, e.action, e.outcome) for e in entries] == [("alice", "self", "ok"), ("alice", "self", "ok")]
        assert all(token not in str(e.summary) for e in entries)


async def test_bad_token_forms_make_nothing_and_another_users_token_is_not_revoked(
    browser: Browser, engine: Engine
) -> None:
    bob = await browser("bob", roles=(Role.VIEWER,))
    csrf = csrf_of((await bob.get("/ui/tokens")).text)
    no_name = await bob.post("/ui/tokens", data={"csrf_token": csrf, "label": " ", "expires_days": "30"})
    assert no_name.status_code == 400 and "No token was made" in no_name.text and "label" in no_name.text
    beyond = await bob.post("/ui/tokens", data={"csrf_token": csrf, "label": "x", "scope": ["catalog.edit"]})
    assert beyond.status_code == 403 and "catalog.edit" in beyond.text  # a token never carries more than its maker
    forever = await bob.post("/ui/tokens", data={"csrf_token": csrf, "label": "x", "expires_days": "-1"})
    assert forever.status_code == 400 and "expires_days" in forever.text
    with make_sessionmaker(engine)() as session:
        assert session.scalars(select(ApiToken)).all() == []

    alice = await browser("alice", roles=(Role.VIEWER,))
    alice_page = (await alice.get("/ui/tokens")).text
    made = await alice.post("/ui/tokens", data={"csrf_token": csrf_of(alice_page), "label": "hers"})
    assert made.status_code == 201
    with make_sessionmaker(engine)() as session:
        hers = session.scalars(select(ApiToken)).one().id
    refused = await bob.post(f"/ui/tokens/{hers}/revoke", data={"csrf_token": csrf})
    assert refused.status_code == 404 and "The token was not revoked" in refused.text
    with make_sessionmaker(engine)() as session:
        assert session.get(ApiToken, hers).revoked_at is None  # type: ignore[union-attr]
    assert "hers" not in (await bob.get("/ui/tokens")).text
