"""Browsers signed in to the UI, for the tests of its forms (the fixture is ``browser`` in conftest.py).

A browser here is an in-process client holding the session cookie the UI's sign-in would have set (made with the
app's own signer, so no identity provider is needed: tests/auth/test_oidc_signin.py covers the sign-in itself),
for a user whose roles are bound through the services. A module of its own: ``from conftest import ...`` is
ambiguous where several conftest.py files exist.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import httpx

__all__ = ["HOST", "Browser", "csrf_of"]

HOST = "headwater.test"
# browser(name, roles=..., groups=...) -> a client signed in to the UI as that user.
Browser = Callable[..., Awaitable[httpx.AsyncClient]]


def csrf_of(page: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)
