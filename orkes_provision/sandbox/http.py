"""Orkes-shaped errors and the small request/response helpers every endpoint uses.

Two body shapes, as on Orkes:

- auth-filter errors (401): ``{"message", "error": "INVALID_TOKEN"|"EXPIRED_TOKEN", "timestamp"}``;
- everything else: ``{"status", "message", "instance", "retryable"}`` plus ``validationErrors``
  (``[{path, message, invalidValue}]``) on 400.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

INSTANCE = "orkes-provision-sandbox"


class ApiError(Exception):
    """A business error: 400, 403, 404, 409, 429 or 5xx with the ErrorResponse body."""

    def __init__(self, status: int, message: str, *, validation_errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.validation_errors = validation_errors
        self.headers = headers or {}

    def response(self) -> Response:
        body: dict[str, Any] = {"status": self.status, "message": self.message, "instance": INSTANCE,
                                "retryable": self.status in (429, 503)}
        if self.validation_errors is not None:
            body["validationErrors"] = self.validation_errors
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class AuthError(Exception):
    """401 from the auth filter; ``code`` is what SDKs act on."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def response(self) -> Response:
        return JSONResponse({"message": self.message, "error": self.code, "timestamp": now_ms()}, status_code=401)


def now_ms() -> int:
    return int(time.time() * 1000)


def bad_request(message: str, path: str, invalid_value: Any = None) -> ApiError:
    return ApiError(400, message, validation_errors=[{"path": path, "message": message, "invalidValue": invalid_value}])


def forbidden(message: str) -> ApiError:
    return ApiError(403, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def param(request: Request, name: str) -> str:
    """A path parameter; uvicorn has already percent-decoded the path (``app%3A<id>`` is ``app:<id>``)."""
    return str(request.path_params[name])


# What Spring's StringToBooleanConverter accepts for a ``boolean`` query parameter (case-insensitive);
# anything else (``null``, ``maybe``) fails conversion and Spring answers 400, so the sandbox does too.
_TRUE, _FALSE = ("true", "on", "yes", "1"), ("false", "off", "no", "0")


def query_flag(request: Request, name: str, default: bool = False) -> bool:
    """Query booleans arrive as true/false (httpx) or True/False (the Python SDK's urlencode)."""
    raw = request.query_params.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in _TRUE + _FALSE:
        raise bad_request(f"query parameter '{name}' must be true or false", name, raw)
    return value in _TRUE


def query_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise bad_request(f"query parameter '{name}' must be an integer", name, raw) from err


def path_int(request: Request, name: str) -> int:
    """An ``int`` path parameter as Spring binds it: not a number, or past 32 bits, is 400 (never a 500)."""
    raw = param(request, name)
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not -(2**31) <= value <= 2**31 - 1:
        raise bad_request(f"path parameter '{name}' must be an integer of 32 bits", name, raw)
    return value


async def json_body(request: Request, *, required: bool = True) -> Any:
    """The JSON body; an empty body is None (SDKs send ``{}`` or nothing on bodiless calls)."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise bad_request("request body is required", "body")
        return None
    try:
        return json.loads(raw)
    except ValueError as err:
        raise bad_request("request body is not valid JSON", "body") from err


async def json_object(request: Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object", "body")
    return body


def text(value: str) -> Response:
    return PlainTextResponse(value)


def ok(value: Any) -> Response:
    return JSONResponse(value)


def no_content() -> Response:
    return Response(status_code=204)
