"""The ASGI application: every endpoint module's routes behind the sandbox middleware."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
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


def _routes() -> list[object]:
    from orkes_provision.sandbox import api_execution, api_metadata, api_people

    return [*api_sandbox.ROUTES, *api_access.ROUTES, *api_applications.ROUTES, *api_metadata.ROUTES,
            *api_execution.ROUTES, *api_people.ROUTES]


def create_app(state: SandboxState) -> ASGIApp:
    app = Starlette(routes=_routes(), exception_handlers={  # type: ignore[arg-type]
        ApiError: _api_error, AuthError: _auth_error, HTTPException: _http_error, Exception: _unexpected})
    app.state.sandbox = state
    return SandboxMiddleware(app, state)
