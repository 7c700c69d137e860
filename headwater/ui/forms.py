"""What the UI's forms share: the 303 back to the page a form was on, form input checked by the API's own
models, and the UI error page for refusals made before a route runs.

A form route declares its action as the REST route it mirrors does (``allow(Action.CATALOG_EDIT,
owned_by=dataset_owners)``), so the same decision refuses it; that refusal happens in a dependency, before the
route's own error handling, so :func:`install_error_pages` answers it (and a malformed path parameter) with the UI
error page when a browser sent it. A program sending ``Authorization`` still gets the API's JSON.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from headwater.api.responses import validation_message
from headwater.errors import HeadwaterError, InvalidInput
from headwater.ui.routes import _error_page, sign_in_link

__all__ = ["checked", "install_error_pages", "see_other"]

M = TypeVar("M", bound=BaseModel)
UI_PREFIX = "/ui/"


def see_other(path: str) -> RedirectResponse:
    """The answer of a form that did its work: back to ``path`` (a GET), so a reload sends nothing again."""
    return RedirectResponse(path, status_code=303)


def checked(model: type[M], data: dict[str, Any]) -> M:
    """``data`` as ``model`` (the REST route's body model, so a form takes exactly what the API takes);
    a refusal is InvalidInput naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(validation_message([dict(e) for e in exc.errors()])) from None


def _from_browser(request: Request) -> bool:
    path = request.url.path
    return (path == "/ui" or path.startswith(UI_PREFIX)) and "authorization" not in request.headers


async def _answer(handler: Callable[[Request, Exception], Any], request: Request, exc: Exception) -> Response:
    answer = handler(request, exc)
    if inspect.isawaitable(answer):
        answer = await answer
    return cast(Response, answer)


def install_error_pages(app: FastAPI) -> None:
    """Answer a UI page's or form's refusal by its declared permission (403 naming it, 401 with a link to sign in
    when OIDC sign-in is configured, or the 404 of a missing or hidden thing) and a malformed path parameter (400)
    with the UI error page, after the API's handlers are installed."""
    domain = app.exception_handlers[HeadwaterError]
    invalid = app.exception_handlers[RequestValidationError]

    async def domain_error(request: Request, exc: Exception) -> Response:
        if _from_browser(request) and isinstance(exc, HeadwaterError):
            return _error_page(exc, sign_in=sign_in_link(request) if exc.status_code == 401 else None)
        return await _answer(domain, request, exc)

    async def invalid_request(request: Request, exc: Exception) -> Response:
        if _from_browser(request) and isinstance(exc, RequestValidationError):
            return _error_page(InvalidInput(validation_message(list(exc.errors()))))
        return await _answer(invalid, request, exc)

    app.add_exception_handler(HeadwaterError, domain_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
