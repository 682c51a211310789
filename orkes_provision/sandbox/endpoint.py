"""Accessors every endpoint uses: the sandbox state and the authenticated caller."""

from __future__ import annotations

from starlette.requests import Request

from orkes_provision.sandbox.access import Principal
from orkes_provision.sandbox.http import AuthError
from orkes_provision.sandbox.state import SandboxState

PRINCIPAL_KEY = "sandbox.principal"


def state_of(request: Request) -> SandboxState:
    st = request.app.state.sandbox
    assert isinstance(st, SandboxState)
    return st


def caller(request: Request) -> Principal:
    principal = request.scope.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        raise AuthError("Token cannot be null or empty", "INVALID_TOKEN")
    return principal
