"""A router factory for named resources (clusters, commands, applications): create, list, get, change and
delete, written once. Each resource names its models, its service functions and the sentence each operation's
documentation says; the routes, their operation ids and their OpenAPI document are those written by hand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from headwater.api.auth import Guard
from headwater.api.deps import SessionDep
from headwater.api.pagination import Cursor, Limit, Page, Sort, page_of
from headwater.api.params import NamePath

__all__ = ["NamedResource", "named_resource_router"]


@dataclass(frozen=True)
class NamedResource:
    """One resource addressed by name: its models, service functions and operation docs.

    The service functions take the session first and keywords after (``data=``, ``name=``, ``sort=``,
    ``cursor=``, ``limit=``); with ``egress`` set, create and update also get ``egress=`` (the app's policy).
    ``guard`` names the permission of its reads (list, get) and of its writes (create, change, delete).
    """

    singular: str
    plural: str
    tag: str
    create_model: type[BaseModel]
    update_model: type[BaseModel]
    out: type[BaseModel]
    create: Callable[..., Any]
    list_page: Callable[..., Any]
    get: Callable[..., Any]
    update: Callable[..., Any]
    delete: Callable[..., Any]
    docs: tuple[str, str, str, str, str]  # create, list, get, update, delete
    guard: Guard
    egress: bool = False

    @classmethod
    def of(
        cls,
        module: ModuleType,
        singular: str,
        models: tuple[type[BaseModel], type[BaseModel], type[BaseModel]],
        docs: str,
        *,
        tag: str,
        guard: Guard,
        egress: bool = False,
    ) -> NamedResource:
        """The resource whose service functions in ``module`` are ``create_<singular>``, ``list_<singular>s``,
        ``get_<singular>``, ``update_<singular>`` and ``delete_<singular>``; ``docs``: one line per operation."""
        lines = [line.strip() for line in docs.strip().splitlines()]
        if len(lines) != 5:
            raise ValueError(f"{singular}: document create, list, get, update and delete, one line each")
        return cls(
            singular=singular,
            plural=f"{singular}s",
            tag=tag,
            create_model=models[0],
            update_model=models[1],
            out=models[2],
            create=getattr(module, f"create_{singular}"),
            list_page=getattr(module, f"list_{singular}s"),
            get=getattr(module, f"get_{singular}"),
            update=getattr(module, f"update_{singular}"),
            delete=getattr(module, f"delete_{singular}"),
            docs=(lines[0], lines[1], lines[2], lines[3], lines[4]),
            guard=guard,
            egress=egress,
        )


def named_resource_router(resource: NamedResource) -> APIRouter:
    """``/api/v1/{plural}``: POST and GET on the collection, GET, PATCH and DELETE on ``/{name}``."""
    prefix = f"/api/v1/{resource.plural}"
    router = APIRouter(prefix=prefix, tags=[resource.tag])
    out = resource.out

    def policy(request: Request) -> dict[str, Any]:
        return {"egress": request.app.state.egress} if resource.egress else {}

    def create(body: BaseModel, session: SessionDep, request: Request, response: Response) -> BaseModel:
        row = resource.create(session, data=body, **policy(request))
        response.headers["Location"] = f"{prefix}/{row.name}"
        return out.model_validate(row)

    def list_(session: SessionDep, sort: Sort = "name", cursor: Cursor = None, limit: Limit = 50) -> BaseModel:
        return page_of(out, resource.list_page(session, sort=sort, cursor=cursor, limit=limit))

    def get(name: NamePath, session: SessionDep) -> BaseModel:
        return out.model_validate(resource.get(session, name=name))

    def update(name: NamePath, body: BaseModel, session: SessionDep, request: Request) -> BaseModel:
        return out.model_validate(resource.update(session, name=name, data=body, **policy(request)))

    def delete(name: NamePath, session: SessionDep) -> Response:
        resource.delete(session, name=name)
        return Response(status_code=204)

    # The bodies' models are the resource's own: FastAPI reads them from the annotations.
    create.__annotations__ = {**create.__annotations__, "body": resource.create_model}
    update.__annotations__ = {**update.__annotations__, "body": resource.update_model}
    reads, writes = resource.guard.reads, resource.guard.writes
    _add(router, "", create, "POST", f"create_{resource.singular}", resource.docs[0], out, writes, status_code=201)
    _add(router, "", list_, "GET", f"list_{resource.plural}", resource.docs[1], Page[out], reads)  # type: ignore[valid-type]
    _add(router, "/{name}", get, "GET", f"get_{resource.singular}", resource.docs[2], out, reads)
    _add(router, "/{name}", update, "PATCH", f"update_{resource.singular}", resource.docs[3], out, writes)
    _add(router, "/{name}", delete, "DELETE", f"delete_{resource.singular}", resource.docs[4], None, writes, 204)
    return router


def _add(
    router: APIRouter,
    path: str,
    endpoint: Callable[..., Any],
    method: str,
    name: str,
    doc: str,
    response_model: Any,
    dependencies: list[Any],
    status_code: int | None = None,
) -> None:
    router.add_api_route(
        path,
        endpoint,
        methods=[method],
        name=name,
        description=doc,
        response_model=response_model,
        status_code=status_code,
        dependencies=dependencies,
    )
