"""The real OpenID Connect provider of the identity tests: oidc-provider (npm) run by Node from tests/oidc/provider.mjs,
on 127.0.0.1 and a free port, started and stopped by its PID. Installed by scripts/install-oidc-provider.sh."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import RSAKey
from live_http import free_port
from pydantic import SecretStr
from sqlalchemy import Engine
from suite_tables import empty_tables

from headwater.app import create_app
from headwater.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_DIR = ROOT / "tests" / "oidc"
AUDIENCE = "https://headwater.test/api"
UI_CLIENT = "headwater-ui"
UI_SECRET = "ui-secret-" + "x" * 32
SERVICE_CLIENT = "etl-bot"
SERVICE_SECRET = "etl-secret-" + "y" * 32
SERVICE_GROUPS = ["etl-writers"]
ACCOUNTS = {"alice": {"groups": ["data-eng"]}, "bob": {"groups": []}}
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def new_key(kid: str) -> RSAKey:
    """A fresh RSA signing key (private) with key id ``kid``."""
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"}, private=True)


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message}; CI needs it (make test runs scripts/install-oidc-provider.sh)")
    pytest.skip(message)


class OidcTestProvider:
    """One oidc-provider process: its issuer, its keys (which tests may sign with), start/stop by PID."""

    def __init__(self, workdir: Path, *, port: int | None = None, redirect_uris: list[str] | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.redirect_uris = redirect_uris or ["http://headwater.test/ui/auth/callback"]
        self.keys = [new_key("key-1")]
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"provider-{self.port}.log"

    @property
    def key(self) -> RSAKey:
        """The key the provider signs with now."""
        return self.keys[0]

    def start(self) -> OidcTestProvider:
        """Start it and wait until discovery answers."""
        if shutil.which("node") is None:
            _unavailable("node is not on PATH")
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            _unavailable("oidc-provider is not installed in tests/oidc (run scripts/install-oidc-provider.sh)")
        config = {
            "port": self.port,
            "audience": AUDIENCE,
            "jwks": {"keys": [k.as_dict(private=True) for k in self.keys]},
            "ui_client": {"client_id": UI_CLIENT, "client_secret": UI_SECRET, "redirect_uris": self.redirect_uris},
            "service_clients": [
                {"client_id": SERVICE_CLIENT, "client_secret": SERVICE_SECRET, "groups": SERVICE_GROUPS}
            ],
            "accounts": ACCOUNTS,
        }
        config_file = self.workdir / f"provider-{self.port}.json"
        config_file.write_text(json.dumps(config))
        config_file.chmod(0o600)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                ["node", str(PROVIDER_DIR / "provider.mjs"), str(config_file)],
                cwd=PROVIDER_DIR,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                _unavailable(f"the OIDC provider did not start: {self.log.read_text()[-800:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop it by PID (SIGTERM, then SIGKILL)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def rotate(self) -> RSAKey:
        """Restart on the same port signing with a new key (the old one no longer published)."""
        self.stop()
        self.keys = [new_key(f"key-{int(time.time() * 1000)}")]
        self.start()
        return self.key

    def client_credentials(self, client: str = SERVICE_CLIENT, secret: str = SERVICE_SECRET) -> str:
        """A JWT access token for Headwater's audience, from the real token endpoint."""
        response = httpx.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "resource": AUDIENCE},
            auth=(client, secret),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def sign(self, claims: dict[str, Any], *, key: RSAKey | None = None, header: dict[str, Any] | None = None) -> str:
        """A JWT signed with the provider's key (or ``key``): tests of claims the provider itself would not issue."""
        key = key or self.key
        now = int(time.time())
        body = {"iss": self.issuer, "aud": AUDIENCE, "sub": "mallory", "iat": now, "exp": now + 300, **claims}
        return jwt.encode({"alg": "RS256", "kid": key.kid, **(header or {})}, body, key)


class _Forms(HTMLParser):
    """The forms of a page: action, method and their inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": values.get("action", ""), "method": values.get("method", "get"), "inputs": {}})
        elif tag in ("input", "button") and self.forms and values.get("name"):
            self.forms[-1]["inputs"][values["name"]] = values.get("value", "")


def forms_of(page: str) -> list[dict[str, Any]]:
    """The forms on an HTML page."""
    parser = _Forms()
    parser.feed(page)
    return parser.forms


def csrf_token_of(page: str) -> str:
    """The CSRF token a Headwater page's forms carry."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page carries no CSRF token"
    return found.group(1)


async def sign_in_at_provider(client: httpx.AsyncClient, url: str, *, login: str) -> httpx.Response:
    """Follow the provider's dev login and consent forms from its authorization URL, as a browser would, until it
    redirects back to Headwater; the answer holding that redirect."""
    response = await client.get(url)
    for _ in range(12):
        if response.status_code in (302, 303) and response.headers["location"].startswith("http://headwater.test"):
            return response
        if response.status_code in (302, 303):
            response = await client.get(httpx.URL(str(response.url)).join(response.headers["location"]))
            continue
        assert response.status_code == 200, response.text[:500]
        form = forms_of(response.text)[0]
        data = dict(form["inputs"])
        if "login" in data or "login" in response.text and "password" in response.text:
            data.update({"login": login, "password": "any"})
        response = await client.post(httpx.URL(str(response.url)).join(form["action"]), data=data)
    raise AssertionError("the provider never sent the browser back to Headwater")


# ------------------------------------------------------------------------------------------------ fixtures


def oidc_settings_for(settings: Settings, provider: OidcTestProvider) -> Settings:
    """``settings`` with OIDC pointed at ``provider``."""
    return settings.model_copy(
        update={
            "oidc_issuer": provider.issuer,
            "oidc_audience": AUDIENCE,
            "oidc_client_id": UI_CLIENT,
            "oidc_client_secret": SecretStr(UI_SECRET),
        }
    )


def in_process_client(app: FastAPI) -> httpx.AsyncClient:
    """A client that reaches ``app`` in-process at http://headwater.test and everything else (the provider) over
    the network, like a browser: cookies of each kept apart, redirects followed by the test."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(mounts={"http://headwater.test": transport}, base_url="http://headwater.test")


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcTestProvider]:
    """The suite's OIDC provider, one per test process."""
    provider = OidcTestProvider(tmp_path_factory.mktemp("oidc-provider")).start()
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def oidc_app(auth_settings: Settings, oidc_provider: OidcTestProvider) -> FastAPI:
    """The application with OIDC (and API tokens) on, trusting the suite's provider."""
    return create_app(oidc_settings_for(auth_settings, oidc_provider), prepare=False)


@pytest.fixture
async def oidc_client(oidc_app: FastAPI, engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the OIDC app (in-process) and of the provider (over the network)."""
    async with in_process_client(oidc_app) as client:
        yield client
    oidc_app.state.authenticator.forget()
    empty_tables(engine)


# A provider of the test's own and an app trusting it: stack(port=..., start=False) -> (provider, app).
Stack = Callable[..., tuple[OidcTestProvider, FastAPI]]


@pytest.fixture
def oidc_stack(auth_settings: Settings, tmp_path: Path, engine: Engine) -> Iterator[Stack]:
    """Providers (and apps trusting them) a test may stop, restart and rotate; all stopped by PID at the end."""
    made: list[OidcTestProvider] = []

    def make(*, start: bool = True, redirect_uris: list[str] | None = None) -> tuple[OidcTestProvider, FastAPI]:
        provider = OidcTestProvider(tmp_path, redirect_uris=redirect_uris)
        made.append(provider)
        if start:
            provider.start()
        return provider, create_app(oidc_settings_for(auth_settings, provider), prepare=False)

    yield make
    for provider in made:
        provider.stop()
    empty_tables(engine)
