"""What happens around every request: latency, the fault plan, authentication, requests.log.

Order: the configured latency (``asyncio.sleep``, so requests overlap), then the fault plan, then
authentication from ``X-Authorization`` (everything but ``GET /health`` and ``POST /api/token``),
then binding the body and query as Orkes binds them (``binding``: a 400 before the endpoint runs),
then the endpoint. The authenticated :class:`~orkes_provision.sandbox.access.Principal` is put in
the ASGI scope under ``"sandbox.principal"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orkes_provision.sandbox import binding
from orkes_provision.sandbox.access import Principal, app_roles, app_user_id
from orkes_provision.sandbox.endpoint import PRINCIPAL_KEY
from orkes_provision.sandbox.faults import Fault
from orkes_provision.sandbox.http import ApiError, AuthError
from orkes_provision.sandbox.people import effective_roles, groups_of
from orkes_provision.sandbox.state import SandboxState
from orkes_provision.sandbox.tokens import TokenExpired, TokenInvalid

PUBLIC = {("GET", "/health"), ("HEAD", "/health"), ("POST", "/api/token")}


class SandboxMiddleware:
    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        method, path = str(scope["method"]).upper(), str(scope["path"])
        outcome: dict[str, Any] = {"status": None, "caller": None, "fault": None}

        logged = False

        def log_once() -> None:
            nonlocal logged
            if not logged:
                logged = True
                self.state.request_log.append(method=method, path=path, status=outcome["status"],
                                              caller=outcome["caller"], fault=outcome["fault"],
                                              duration_ms=(time.monotonic() - started) * 1000)

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Logged before the last byte leaves: a client that has its answer finds the line.
                log_once()
            await send(message)

        try:
            await self._handle(scope, receive, send, send_logged, method, path, outcome)
        finally:
            log_once()

    async def _handle(self, scope: Scope, receive: Receive, send: Send, send_logged: Send,
                      method: str, path: str, outcome: dict[str, Any]) -> None:
        if self.state.config.latency_ms > 0:
            await asyncio.sleep(self.state.config.latency_ms / 1000)
        fault = self.state.faults.take(method, path)
        if fault is not None:
            outcome["fault"] = fault.action
        if fault is not None and fault.action == "status":
            await _fault_response(fault)(scope, receive, send_logged)
            return
        if fault is not None and fault.action == "timeout":
            await asyncio.sleep(fault.hang_seconds)
            await _drop(send)
            return
        principal: Principal | None = None
        # The auth filter guards the API only: a path outside /api (a server URL without /api, so
        # POST /token) is a 404, which is what the SDKs take for "no Orkes API here" (orkes-api.md 1.2).
        if path.startswith("/api/") and (method, path) not in PUBLIC:
            try:
                principal = self.authenticate(scope)
            except AuthError as err:
                await err.response()(scope, receive, send_logged)
                return
            outcome["caller"] = principal.user_id
        scope[PRINCIPAL_KEY] = principal
        scope["sandbox.log"] = outcome
        bound = binding.needs_binding(method, path)
        if bound is not None:
            receive, refused = await _bind(bound, scope, receive)
            if refused is not None:
                await refused.response()(scope, receive, send_logged)
                return
        if fault is not None and fault.action == "drop_after_commit":
            async def swallow(message: Message) -> None:
                if message["type"] == "http.response.start":
                    outcome["committedStatus"] = message["status"]

            await self.app(scope, receive, swallow)
            await _drop(send)
            return
        await self.app(scope, receive, send_logged)

    def authenticate(self, scope: Scope) -> Principal:
        token = None
        for name, value in scope.get("headers", []):
            if name.lower() == b"x-authorization":
                token = value.decode("latin-1").strip()
                break
        if not token:
            raise AuthError("Token cannot be null or empty", "INVALID_TOKEN")
        try:
            claims = self.state.tokens.verify(token)
        except TokenExpired as err:
            raise AuthError("Token has expired", "EXPIRED_TOKEN") from err
        except TokenInvalid as err:
            raise AuthError("Invalid token", "INVALID_TOKEN") from err
        row = self.state.db.one("SELECT app_id, status FROM access_keys WHERE id = ?", (claims.key_id,))
        # Tokens of keys that were deactivated or deleted stop working at once (our choice).
        if row is None or row["status"] != "ACTIVE" or app_user_id(str(row["app_id"])) != claims.sub:
            raise AuthError("Token is no longer valid: its access key is inactive or deleted", "INVALID_TOKEN")
        app_id = str(row["app_id"])
        db = self.state.db
        return Principal(user_id=claims.sub, app_id=app_id, key_id=claims.key_id,
                         roles=effective_roles(db, app_roles(db, app_id), claims.sub),
                         groups=frozenset(groups_of(db, claims.sub)))


async def _bind(op: binding.Operation, scope: Scope, receive: Receive) -> tuple[Receive, ApiError | None]:
    """Read the whole body, bind it; answer a ``receive`` that hands the endpoint the same body again."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    query = urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    try:
        binding.bind(op, query, body)
    except binding.BindingError as err:
        return replay, err.api_error()
    return replay, None


def _fault_response(fault: Fault) -> Any:
    headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else None
    message = "Too many requests (sandbox fault plan)" if fault.status == 429 else \
        f"Injected failure {fault.status} (sandbox fault plan)"
    return ApiError(fault.status, message, headers=headers).response()


async def _drop(send: Send) -> None:
    """Close the connection without a response: the client sees a transport error.

    uvicorn hands the app its per-request cycle's bound ``send``; the cycle owns the transport.
    Aborting it resets the TCP connection. Without that (another server), fall back to a response
    that promises a body it never delivers, which clients also report as a protocol error.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
        # Let uvicorn notice the lost connection so it does not try to answer with a 500.
        for _ in range(3):
            await asyncio.sleep(0)
        return
    with contextlib.suppress(Exception):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"100"), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{", "more_body": False})
