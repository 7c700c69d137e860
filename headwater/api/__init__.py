"""The edge kit every router shares: typed dependencies (``deps``), ``Page[T]`` and its parameters
(``pagination``), shared parameters (``params``), answers and error mapping (``responses``), the security headers
(``headers``), the body-size guard (``middleware``) and the router factory of named resources (``resources``).

Routers import from the submodules; this module re-exports what ``headwater.api`` has always offered.
"""

from __future__ import annotations

from headwater.api.deps import SessionDep, SettingsDep, db_slot, get_session
from headwater.api.headers import CONTENT_SECURITY_POLICY, SECURITY_HEADERS
from headwater.api.middleware import BodySizeLimit
from headwater.api.pagination import Cursor, Limit, Page
from headwater.api.params import parse_id, parse_if_match
from headwater.api.responses import (
    error_body,
    install_error_handlers,
    json_response,
    refusal,
    unstorable_reason,
    validation_message,
)

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "SECURITY_HEADERS",
    "BodySizeLimit",
    "Cursor",
    "Limit",
    "Page",
    "SessionDep",
    "SettingsDep",
    "db_slot",
    "error_body",
    "get_session",
    "install_error_handlers",
    "json_response",
    "parse_id",
    "parse_if_match",
    "refusal",
    "unstorable_reason",
    "validation_message",
]
