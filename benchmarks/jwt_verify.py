"""p50 of verifying one OIDC bearer JWT with the issuer's keys cached, beside one hashed API-token check, in the same
run (issue 16's "record the p50 of validating a JWT and of a hashed API token").

Both are the uncached path of :class:`~headwater.auth.authenticate.Authenticator` (a credential seen within
``HEADWATER_AUTH_CACHE_SECONDS`` costs neither). The JWT: RS256 (2048-bit key), checked by
:class:`~headwater.auth.oidc.OidcVerifier` for algorithm, signature, iss, aud, exp, with the JWKS already fetched
(no network). The API token: a SHA-256 and one indexed read on the embedded SQLite database. Run::

    PYTHONPATH=. .venv/bin/python benchmarks/jwt_verify.py [--n 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from headwater.auth.models import SubjectKind
from headwater.auth.oidc import OidcProvider, OidcVerifier, ProviderMetadata
from headwater.auth.tokens import create_token, verify_token
from headwater.database import prepare_database
from headwater.db import create_db_engine, make_sessionmaker
from headwater.egress import EgressPolicy
from headwater.settings import Settings

ISSUER = "https://issuer.bench.example"
AUDIENCE = "https://headwater.bench.example"


def p50_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def jwt_samples(n: int) -> list[float]:
    key = RSAKey.generate_key(2048, parameters={"kid": "bench", "use": "sig", "alg": "RS256"}, private=True)
    provider = OidcProvider(ISSUER, EgressPolicy())
    # The keys as a first request would have fetched them: cached, so the measure is verification alone.
    provider._metadata = (time.monotonic() + 3600, ProviderMetadata(issuer=ISSUER, jwks_uri=f"{ISSUER}/jwks"))
    provider._keys = (time.monotonic(), KeySet.import_key_set({"keys": [key.as_dict(private=False)]}))
    verifier = OidcVerifier(provider, audience=AUDIENCE)
    now = int(time.time())
    tokens = [
        jwt.encode(
            {"alg": "RS256", "kid": "bench"},
            {"iss": ISSUER, "aud": AUDIENCE, "sub": f"user-{i}", "groups": ["a", "b"], "iat": now, "exp": now + 3600},
            key,
        )
        for i in range(n)
    ]
    samples = []
    for token in tokens:
        start = time.perf_counter()
        verifier(token)
        samples.append(time.perf_counter() - start)
    return samples


def api_token_samples(n: int) -> list[float]:
    settings = Settings(data_dir=tempfile.mkdtemp(prefix="jwt_verify-"))
    prepare_database(settings)
    factory = make_sessionmaker(create_db_engine(settings.resolved_database_url))
    with factory.begin() as session:
        secret = create_token(session, kind=SubjectKind.USER, name="bench", label="bench")[1]
    samples = []
    for _ in range(n):
        with factory() as session:
            start = time.perf_counter()
            assert verify_token(session, secret) is not None
            samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    token = api_token_samples(args.n)
    bearer = jwt_samples(args.n)
    result = {
        "jwt_p50_us": round(p50_us(bearer), 1),
        "api_token_p50_us": round(p50_us(token), 1),
        "jwt_over_api_token": round(p50_us(bearer) / p50_us(token), 2),
        "n": args.n,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
