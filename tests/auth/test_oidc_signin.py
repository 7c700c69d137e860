"""The UI's sign-in against the real provider, followed through its dev login form as a browser would: the
authorization-code flow with PKCE, the session cookie, who the header shows, sign-out, CSRF and ``?next=``."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from oidc_provider import UI_CLIENT, OidcTestProvider, csrf_token_of, sign_in_at_provider
from sqlalchemy import Engine
from suite_tables import empty_tables

from headwater.api.session import local_next
from headwater.auth.actions import Role
from headwater.auth.models import SubjectKind
from headwater.auth.roles import bind
from headwater.db import make_sessionmaker

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture(autouse=True)
def alice_may_read(engine: Engine) -> Iterator[None]:
    """The person who signs in here holds the viewer role, so the UI's pages answer her."""
    with make_sessionmaker(engine).begin() as session:
        bind(session, kind=SubjectKind.USER, subject="alice", role=Role.VIEWER, by="test")
    yield
    empty_tables(engine)


async def sign_in(client: httpx.AsyncClient, login: str, next_path: str | None = None) -> httpx.Response:
    """The whole sign-in; Headwater's answer to the callback."""
    start = await client.get("/ui/login", params={"next": next_path} if next_path else None)
    assert start.status_code == 302, start.text
    back = await sign_in_at_provider(client, start.headers["location"], login=login)
    return await client.get(back.headers["location"])


async def test_signing_in_sets_a_session_and_the_header_names_the_user(
    oidc_app: FastAPI, oidc_client: httpx.AsyncClient, oidc_provider: OidcTestProvider
) -> None:
    start = await oidc_client.get("/ui/login", params={"next": "/ui/jobs?status=RUNNING"})
    assert start.status_code == 302
    authorize = urlsplit(start.headers["location"])
    query = parse_qs(authorize.query)
    assert f"{authorize.scheme}://{authorize.netloc}" == oidc_provider.issuer
    assert query["client_id"] == [UI_CLIENT]
    assert query["code_challenge_method"] == ["S256"]
    assert query["response_type"] == ["code"]
    assert all(len(query[name][0]) >= 32 for name in ("state", "nonce", "code_challenge"))

    back = await sign_in_at_provider(oidc_client, start.headers["location"], login="alice")
    done = await oidc_client.get(back.headers["location"])
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/ui/jobs?status=RUNNING"
    cookie = next(v for k, v in done.headers.multi_items() if k == "set-cookie" and v.startswith("headwater_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Max-Age=" in cookie
    assert "Secure" not in cookie  # plain http here; https requests get Secure

    page = await oidc_client.get("/ui/sources")
    assert page.status_code == 200
    assert 'id="who"' in page.text and ">alice<" in page.text and "Sign out" in page.text


async def test_a_forged_or_replayed_callback_does_not_sign_in(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcTestProvider
) -> None:
    no_start = await oidc_client.get("/ui/auth/callback", params={"code": "abc", "state": "xyz"})
    assert no_start.status_code == 400
    assert "not started here" in no_start.text

    start = await oidc_client.get("/ui/login")
    back = await sign_in_at_provider(oidc_client, start.headers["location"], login="bob")
    location = back.headers["location"].replace("state=", "state=tampered")
    wrong_state = await oidc_client.get(location)
    assert wrong_state.status_code == 400
    assert "state does not match" in wrong_state.text

    denied = await oidc_client.get("/ui/auth/callback", params={"error": "access_denied"})
    assert denied.status_code == 401
    assert "access_denied" in denied.text


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "http:/evil.example",
        "/%0d%0aLocation:%20https://evil.example",
        "javascript:alert(1)",
        "\t//evil.example",
    ],
)
async def test_next_never_leaves_the_server(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcTestProvider, target: str
) -> None:
    assert urlsplit(local_next(target)).netloc == ""
    done = await sign_in(oidc_client, "alice", next_path=target)
    assert done.status_code == 303
    location = done.headers["location"]
    assert location.startswith("/") and not location.startswith("//") and "\\" not in location
    assert urlsplit(location).netloc == ""


async def test_sign_out_needs_the_csrf_token_and_ends_the_session(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcTestProvider
) -> None:
    await sign_in(oidc_client, "alice")
    page = await oidc_client.get("/ui/sources")
    token = csrf_token_of(page.text)

    no_token = await oidc_client.post("/ui/logout", data={})
    assert no_token.status_code == 403
    assert no_token.json()["error"]["code"] == "csrf_failed"
    other = "y" if token[0] == "x" else "x"  # a token that starts with x would have been sent back unchanged
    wrong = await oidc_client.post("/ui/logout", data={"csrf_token": other + token[1:]})
    assert wrong.status_code == 403
    cross_site = await oidc_client.post(
        "/ui/logout", data={"csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403
    assert ">alice<" in (await oidc_client.get("/ui/sources")).text  # still signed in

    out = await oidc_client.post("/ui/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert out.headers["location"] == "/ui/signed-out"
    assert "Sign in again" in (await oidc_client.get("/ui/signed-out")).text
    after = await oidc_client.get("/ui/sources")
    assert after.status_code == 303 and after.headers["location"] == "/ui/login?next=%2Fui%2Fsources"


async def test_a_forged_session_cookie_is_no_one(oidc_client: httpx.AsyncClient, oidc_app: FastAPI) -> None:
    from headwater.api.session import SessionSigner, UiSession
    from headwater.auth.authenticate import Identity
    from headwater.auth.principal import PrincipalKind

    forged = SessionSigner(b"not the server's key", max_age=3600).dumps(
        UiSession.fresh(Identity(name="admin", kind=PrincipalKind.USER, groups=frozenset()), lifetime=3600)
    )
    oidc_client.cookies.set("headwater_session", forged, domain="headwater.test")
    page = await oidc_client.get("/ui/sources")
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login?next=")  # anonymous


async def test_a_refused_sign_in_links_to_signing_in_again_back_to_the_page_asked_for(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcTestProvider
) -> None:
    start = await oidc_client.get("/ui/login", params={"next": "/ui/jobs?status=FAILED"})
    assert start.status_code == 302
    denied = await oidc_client.get("/ui/auth/callback", params={"error": "access_denied"})
    assert denied.status_code == 401 and denied.headers["content-type"].startswith("text/html")
    assert "<h1>Not signed in</h1>" in denied.text
    assert 'id="sign-in" href="/ui/login?next=%2Fui%2Fjobs%3Fstatus%3DFAILED"' in denied.text
    again = await oidc_client.get("/ui/login", params={"next": "/ui/jobs?status=FAILED"})
    back = await sign_in_at_provider(oidc_client, again.headers["location"], login="alice")
    done = await oidc_client.get(back.headers["location"])
    assert done.status_code == 303 and done.headers["location"] == "/ui/jobs?status=FAILED"


async def test_a_signed_in_person_without_a_role_gets_the_ui_403_page_naming_the_permission(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcTestProvider
) -> None:
    done = await sign_in(oidc_client, "bob")  # no role binding: HEADWATER_AUTH_DEFAULT_ROLE is none here
    assert done.status_code == 303
    page = await oidc_client.get("/ui/sources")
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "<h1>Not allowed</h1>" in page.text and "<code>catalog.read</code>" in page.text
    assert ">bob<" in page.text and "Sign out" in page.text  # the UI's frame: who is signed in, and a way out
