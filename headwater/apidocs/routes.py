"""``/docs`` (Swagger UI over ``/openapi.json``), the GraphiQL page, and the static files both load.

The files are mounted under ``/assets/``: ``swagger-ui/`` (the ``swagger_ui_bundle`` package's copy of Swagger
UI's dist), ``graphiql/`` (GraphiQL and React from ``vendor/``) and ``apidocs/`` (this package's scripts that
start each page).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from headwater.api.auth import allow, public
from headwater.api.headers import CONTENT_SECURITY_POLICY
from headwater.auth.actions import Action

__all__ = ["PAGE_CSP", "graphiql_page", "install_api_docs"]

STATIC = Path(__file__).parent / "static"
VENDOR = Path(__file__).parent / "vendor"
_GRAPHIQL_FILES = ("react.production.min.js", "react-dom.production.min.js", "graphiql.min.js", "graphiql.min.css")

# The pages keep the policy every Headwater answer carries (headwater.api.headers) even if the middleware changes.
PAGE_CSP = CONTENT_SECURITY_POLICY


def _document(title: str, *, head: list[str], body: str, scripts: list[str], meta: tuple[str, ...] = ()) -> str:
    """A page of its own: meta tags, title, head tags, its body, then its scripts (each a file of this server)."""
    start = ["<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">', *meta]
    end = [*(f'<script src="{src}"></script>' for src in scripts), "</body>", "</html>", ""]
    return "\n".join([*start, f"<title>Headwater: {title}</title>", *head, "</head>", "<body>", body, *end])


_SWAGGER_UI_PAGE = _document(
    "REST API",
    head=[
        '<link rel="icon" type="image/png" href="/assets/swagger-ui/favicon-32x32.png">',
        '<link rel="stylesheet" href="/assets/swagger-ui/swagger-ui.css">',
    ],
    body='<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>',
    scripts=["/assets/swagger-ui/swagger-ui-bundle.js", "/assets/apidocs/swagger-ui-init.js"],
    meta=('<meta name="viewport" content="width=device-width, initial-scale=1">',),
)

_GRAPHIQL_PAGE = _document(
    "GraphiQL",
    head=[
        '<link rel="icon" href="data:,">',
        '<link rel="stylesheet" href="/assets/graphiql/graphiql.min.css">',
        '<link rel="stylesheet" href="/assets/apidocs/graphiql-page.css">',
    ],
    body='<div id="graphiql">Loading GraphiQL…</div>',
    scripts=[f"/assets/graphiql/{name}" for name in _GRAPHIQL_FILES[:3]] + ["/assets/apidocs/graphiql-init.js"],
)

_GRAPHIQL_MISSING = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Headwater: GraphiQL is not installed</title></head>
<body>
<h1>GraphiQL is not installed</h1>
<p>This Headwater was installed without GraphiQL's files ({missing}). Run <code>scripts/install-graphiql.sh</code>
(<code>make setup</code> does) and restart the server. The GraphQL API itself works: POST a JSON body
<code>{{"query": "..."}}</code> to <code>/graphql</code>.</p>
</body>
</html>
"""


def _page(html: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status_code, headers={"Content-Security-Policy": PAGE_CSP})


def graphiql_page() -> HTMLResponse:
    """The GraphiQL IDE, from this server's files; 503 naming the install step when they are missing."""
    missing = [name for name in _GRAPHIQL_FILES if not (VENDOR / name).is_file()]
    if missing:
        return _page(_GRAPHIQL_MISSING.format(missing=", ".join(missing)), status_code=503)
    return _page(_GRAPHIQL_PAGE)


def install_api_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and the pages' files on ``app`` (built with ``docs_url=None, redoc_url=None``)."""
    # The documentation is public: it shows what the API offers, never what it holds.
    app.mount("/assets/swagger-ui", public(StaticFiles(directory=swagger_ui_path)), name="swagger-ui")
    # check_dir=False: without the setup step the folder is absent, and the GraphiQL page says so.
    app.mount("/assets/graphiql", public(StaticFiles(directory=VENDOR, check_dir=False)), name="graphiql")
    app.mount("/assets/apidocs", public(StaticFiles(directory=STATIC)), name="apidocs")
    swagger_ui = _SWAGGER_UI_PAGE.format(openapi_url=app.openapi_url)

    @app.api_route("/docs", methods=["GET", "HEAD"], include_in_schema=False, dependencies=[allow(Action.PUBLIC)])
    def docs() -> HTMLResponse:
        """Swagger UI over the OpenAPI document."""
        return _page(swagger_ui)
