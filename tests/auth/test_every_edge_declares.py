"""Every REST route, UI page, docs page, static mount and GraphQL root field names its permission: exactly one
``allow()`` (or ``public()``), and the OpenAPI document says which. A route added without one fails here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.responses import PlainTextResponse

from headwater.api.auth import allow, declared_actions, routes_of
from headwater.app import create_app
from headwater.auth.actions import Action
from headwater.graphql.schema import schema
from headwater.settings import Settings


def undeclared(app: FastAPI) -> list[str]:
    """The routes of ``app`` that declare no action, or more than one."""
    wrong: list[str] = []
    for route in routes_of(app.routes):
        actions = declared_actions(route)
        if len(actions) != 1:
            wrong.append(f"{sorted(route.methods or [])} {route.path}: {[a.value for a in actions]}")
    return wrong


def root_fields() -> list[tuple[str, Any]]:
    """Every GraphQL root field (queries and mutations) with its resolver."""
    found = []
    for root in (schema.query, schema.mutation):
        definition = root.__strawberry_definition__
        found += [(f"{definition.name}.{f.name}", f.base_resolver) for f in definition.fields]
    return found


def test_every_route_declares_exactly_one_action(app: FastAPI) -> None:
    assert undeclared(app) == []
    paths = {route.path for route in routes_of(app.routes)}
    # The inventory covers every kind of edge: API, GraphQL, UI pages, docs, probes, the document, static files.
    assert {"/api/v1/datasets", "/graphql", "/ui", "/ui/jobs/{job_id}", "/docs", "/healthz", "/openapi.json"} <= paths
    assert {"/ui/static", "/assets/swagger-ui"} <= paths


def test_the_inventory_fails_for_a_route_added_without_a_permission_or_with_two(app_settings: Settings) -> None:
    app = create_app(app_settings, prepare=False)

    @app.get("/api/v1/forgotten")
    def forgotten() -> dict[str, str]:
        return {}

    @app.get("/api/v1/twice", dependencies=[allow(Action.CATALOG_READ), allow(Action.JOBS_READ)])
    def twice() -> dict[str, str]:
        return {}

    app.add_route("/plain", lambda _: PlainTextResponse("x"))
    wrong = undeclared(app)
    assert any("/api/v1/forgotten" in line for line in wrong)
    assert any("/api/v1/twice" in line for line in wrong)
    assert any("/plain" in line for line in wrong)


# Signing in and out is open to anyone: it is how one stops being anonymous.
SIGN_IN_PAGES = {"/ui/login", "/ui/auth/callback", "/ui/logout", "/ui/signed-out"}


def test_only_probes_docs_static_files_sign_in_and_the_home_redirect_are_public(app: FastAPI) -> None:
    public = {route.path for route in routes_of(app.routes) if declared_actions(route) == [Action.PUBLIC]}
    assert public == {
        "/",
        "/healthz",
        "/readyz",
        "/docs",
        "/openapi.json",
        "/ui/static",
        "/assets/swagger-ui",
        "/assets/graphiql",
        "/assets/apidocs",
        *SIGN_IN_PAGES,
    }


def test_every_ui_page_declares_a_reading_action(app: FastAPI) -> None:
    pages = [
        r
        for r in routes_of(app.routes)
        if r.path.startswith("/ui") and r.path not in {"/ui/static", *SIGN_IN_PAGES} and "GET" in (r.methods or ())
    ]
    assert pages
    for page in pages:
        assert declared_actions(page)[0] in {
            Action.SEARCH_READ,
            Action.CATALOG_READ,
            Action.LINEAGE_READ,
            Action.JOBS_READ,
            Action.SELF,  # one's own API tokens
        }, page.path


# Each UI form and the REST route it mirrors: the same permission, so one decision allows or refuses both.
UI_FORMS = {
    "/ui/datasets/{dataset_id}/description": ("PATCH", "/api/v1/datasets/{dataset_id}"),
    "/ui/datasets/{dataset_id}/tags": ("PATCH", "/api/v1/datasets/{dataset_id}"),
    "/ui/datasets/{dataset_id}/owners": ("PATCH", "/api/v1/datasets/{dataset_id}"),
    "/ui/datasets/{dataset_id}/fields": ("PATCH", "/api/v1/datasets/{dataset_id}"),
    "/ui/jobs": ("POST", "/api/v1/jobs"),
    "/ui/jobs/{job_id}/kill": ("DELETE", "/api/v1/jobs/{job_id}"),
    "/ui/tokens": ("POST", "/api/v1/tokens"),
    "/ui/tokens/{token_id}/revoke": ("DELETE", "/api/v1/tokens/{token_id}"),
}


def test_every_ui_form_declares_what_its_rest_twin_declares(app: FastAPI) -> None:
    routes = list(routes_of(app.routes))
    forms = {r.path: r for r in routes if r.path.startswith("/ui") and "POST" in (r.methods or ())}
    assert set(forms) - SIGN_IN_PAGES == set(UI_FORMS)
    for path, (method, twin_path) in UI_FORMS.items():
        (twin,) = [r for r in routes if r.path == twin_path and method in (r.methods or ())]
        assert declared_actions(forms[path]) == declared_actions(twin), path


def test_every_graphql_root_field_declares_its_action() -> None:
    fields = root_fields()
    assert len(fields) > 10
    missing = [
        name for name, resolver in fields if not isinstance(getattr(resolver.wrapped_func, "action", None), Action)
    ]
    assert missing == []
    actions = {name: resolver.wrapped_func.action for name, resolver in fields}
    assert actions["Mutation.update_dataset"] is Action.CATALOG_EDIT
    assert actions["Mutation.kill_job"] is Action.JOBS_KILL


def test_every_operation_names_its_permission_and_documents_401_and_403(app: FastAPI) -> None:
    document = app.openapi()
    declared = {
        (route.path_format, method.lower()): declared_actions(route)[0].value
        for route in routes_of(app.routes)
        for method in route.methods or ()
    }
    operations = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            operations += 1
            assert operation["x-permission"] == declared[path, method], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
    assert operations > 50
    assert document["paths"]["/api/v1/sources"]["post"]["x-permission"] == "sources.admin"
    assert document["paths"]["/api/v1/jobs/{job_id}"]["delete"]["x-permission"] == "jobs.kill"
