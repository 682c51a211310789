"""The ASGI application: every endpoint module's routes behind the sandbox middleware."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from orkes_provision.sandbox import api_access, api_applications, api_sandbox, binding
from orkes_provision.sandbox.http import ApiError, AuthError
from orkes_provision.sandbox.middleware import SandboxMiddleware
from orkes_provision.sandbox.state import SandboxState

logger = logging.getLogger(__name__)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    missing = binding.unimplemented(request.method, request.url.path) if exc.status_code in (404, 405) else None
    if missing is not None:
        return missing.response()
    if exc.status_code == 404:
        message = f"No such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not supported on {request.url.path}"
    else:
        message = str(exc.detail)
    return ApiError(exc.status_code, message).response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return ApiError(500, f"Internal error: {type(exc).__name__}").response()


def _routes() -> list[Route]:
    from orkes_provision.sandbox import api_execution, api_metadata, api_people, api_polldata, api_roles, api_search

    # Search before execution: /api/tasks/{taskId} would otherwise take /api/tasks/search.
    routes: list[Route] = [*api_sandbox.ROUTES, *api_access.ROUTES, *api_applications.ROUTES, *api_metadata.ROUTES,
                           *api_search.ROUTES, *api_polldata.ROUTES, *api_execution.ROUTES, *api_people.ROUTES,
                           *api_roles.ROUTES]
    served = [(method, route.path) for route in routes for method in (route.methods or ()) if method != "HEAD"]
    # An operation the sandbox lacks answers 501 by its own route, before a template that would
    # take its path as a parameter ("test" as a workflow name, "tags" as a version).
    missing = [Route(op.template, _not_implemented, methods=[op.method])
               for op in binding.shadowed_operations(served)]
    return [*missing, *routes]


async def _not_implemented(request: Request) -> Response:
    found = binding.unimplemented(request.method, request.url.path)
    assert found is not None
    return found.response()


def create_app(state: SandboxState) -> ASGIApp:
    app = Starlette(routes=_routes(), exception_handlers={
        ApiError: _api_error, AuthError: _auth_error, HTTPException: _http_error, Exception: _unexpected})
    app.state.sandbox = state
    return SandboxMiddleware(app, state)
