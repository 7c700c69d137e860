"""What an attacker without a valid credential tries, refused with a clear 4xx and never a 500: forged, garbled,
expired and revoked tokens, tokens in the query string, a cached answer asked for without the permission, header
case and whitespace tricks, and very long Authorization headers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from owned import make_dataset
from sqlalchemy import Engine, select

from headwater.auth.actions import Action, Role
from headwater.auth.models import ApiToken, SubjectKind
from headwater.auth.tokens import create_token, hash_token
from headwater.db import make_sessionmaker, utcnow

pytestmark = pytest.mark.anyio

Mint = Callable[..., str]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize(
    "credential",
    [
        "hw_" + "A" * 43,  # the shape of a token, never issued
        "hw_",
        "hw_%00%ff<script>",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",  # alg none: there is no issuer to trust anyway
        "not a token at all",
        "\u00e9\u00e8\u00ff",
    ],
)
async def test_forged_and_garbled_tokens_are_401_with_a_challenge(
    auth_client: httpx.AsyncClient, credential: str
) -> None:
    for path in ("/api/v1/datasets", "/graphql", "/ui", "/healthz"):
        answer = await auth_client.get(path, headers={"Authorization": f"Bearer {credential}".encode("latin-1")})  # type: ignore[dict-item]
        assert answer.status_code == 401, (path, credential, answer.text)
        assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="headwater"')


async def test_expired_and_revoked_tokens_are_401(
    auth_app: FastAPI, auth_client: httpx.AsyncClient, engine: Engine, mint: Mint
) -> None:
    factory = make_sessionmaker(engine)
    with factory.begin() as session:
        old, expired = create_token(
            session, kind=SubjectKind.USER, name="old", label="t", expires_at=utcnow() + dt.timedelta(days=1)
        )
        old.expires_at = utcnow() - dt.timedelta(seconds=1)  # issued yesterday for a day
    assert (await auth_client.get("/api/v1/datasets", headers=bearer(expired))).status_code == 401
    revoked = mint("rex", roles=(Role.ADMIN,))
    assert (await auth_client.get("/api/v1/datasets", headers=bearer(revoked))).status_code == 200
    with factory.begin() as session:
        token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(revoked)))
        assert token is not None
        token.revoked_at = utcnow()
        token_id = token.id
    auth_app.state.authenticator.forget(token_id)
    answer = await auth_client.get("/api/v1/datasets", headers=bearer(revoked))
    assert answer.status_code == 401 and 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


async def test_a_token_in_the_query_string_is_not_a_credential(auth_client: httpx.AsyncClient, mint: Mint) -> None:
    secret = mint("quinn", roles=(Role.ADMIN,))
    for name in ("access_token", "token", "api_key", "Authorization"):
        answer = await auth_client.get("/api/v1/datasets", params={name: secret})
        assert answer.status_code == 401, name
        assert secret not in answer.text
    assert (
        await auth_client.post("/graphql", params={"access_token": secret}, json={"query": "{ __typename }"})
    ).status_code == 401


async def test_a_cached_answer_is_served_only_to_who_may_read_it(
    auth_client: httpx.AsyncClient, engine: Engine, mint: Mint
) -> None:
    dataset_id, _ = make_dataset(engine)
    admin = bearer(mint("root", roles=(Role.ADMIN,)))
    producer = bearer(mint("airflow", roles=(Role.ADMIN,), scopes=(Action.LINEAGE_WRITE,)))
    nobody = bearer(mint("nobody"))  # signed in, no role
    url = f"/api/v1/datasets/{dataset_id}"
    for target in (url, "/api/v1/datasets?limit=5"):
        first, second = await auth_client.get(target, headers=admin), await auth_client.get(target, headers=admin)
        assert first.status_code == second.status_code == 200 and first.content == second.content  # now cached
        anonymous = await auth_client.get(target)
        assert anonymous.status_code == 401 and b"shop.orders" not in anonymous.content
        for refused in (producer, nobody):
            answer = await auth_client.get(target, headers=refused)
            assert answer.status_code == 403 and b"shop.orders" not in answer.content
            assert answer.json()["error"]["detail"] == {"permission": "catalog.read"}
        etag = first.headers.get("etag")
        if etag:  # a revalidation is no way around it either
            assert (await auth_client.get(target, headers={"If-None-Match": etag})).status_code == 401


async def test_header_case_and_whitespace_tricks_never_grant_more_than_the_token(
    auth_client: httpx.AsyncClient, mint: Mint
) -> None:
    secret = mint("wendy", roles=(Role.VIEWER,))
    # The scheme is case-insensitive and surrounding blanks are no part of the token (RFC 7235).
    for value in (f"bearer {secret}", f"BEARER {secret}", f"Bearer   {secret}", f"Bearer {secret}  "):
        assert (await auth_client.get("/api/v1/datasets", headers={"authorization": value})).status_code == 200, value
    for value in (
        f"Bearer\t{secret}",
        f"Bearer{secret}",
        f"Bearer {secret[:-1]}",
        f"Bearer {secret.upper()}",
        f"Token {secret}",
        f"Basic {secret}",
        f"{secret}",
        "Bearer",
        "Bearer ",
    ):
        answer = await auth_client.get("/api/v1/datasets", headers={"Authorization": value})
        assert answer.status_code == 401, value
    # A viewer's token, however written, is still a viewer's.
    refused = await auth_client.post(
        "/api/v1/clusters", json={"name": "c", "type": "shell"}, headers={"AUTHORIZATION": f"bearer {secret}"}
    )
    assert refused.status_code == 403
    # Two Authorization headers (a proxy may read the first, the server the last) are refused, whichever is good.
    for pair in ((secret, "hw_forged"), ("hw_forged", secret), (secret, secret)):
        doubled = [("Authorization", f"Bearer {pair[0]}"), ("Authorization", f"Bearer {pair[1]}")]
        answer = await auth_client.get("/api/v1/datasets", headers=doubled)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request"
    # An empty header is no credential at all.
    assert (await auth_client.get("/api/v1/datasets", headers={"Authorization": ""})).status_code == 401


@pytest.mark.parametrize("size", [8 * 1024, 64 * 1024, 1024 * 1024])
async def test_very_long_authorization_headers_are_a_4xx_never_a_500(auth_client: httpx.AsyncClient, size: int) -> None:
    for value in (
        "Bearer hw_" + "a" * size,
        "Bearer " + "x." * (size // 2),
        "Bearer " + " " * size + "hw_x",
        "B" * size,
    ):
        answer = await auth_client.get("/api/v1/datasets", headers={"Authorization": value})
        assert 400 <= answer.status_code < 500, answer.status_code
        assert len(answer.content) < 4096  # the header is never echoed back


async def test_anonymous_reaches_only_public_routes(auth_client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/docs", "/openapi.json", "/ui/static/search.js"):
        assert (await auth_client.get(path)).status_code == 200, path
    assert (await auth_client.get("/")).status_code == 307
    for path in ("/no/such/path", "/api/v1/nothing", "/graphql", "/api/v1/datasets/1/../../jobs"):
        assert (await auth_client.get(path)).status_code == 401, path
    page = await auth_client.get("/ui/datasets/1", params={"tab": "fields"})
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=%2Fui%2Fdatasets%2F1%3Ftab%3Dfields"
    assert (await auth_client.head("/ui/jobs")).status_code == 303
