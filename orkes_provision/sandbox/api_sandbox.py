"""The sandbox's own endpoints: ``/health`` and the admin-only fault plan (see ``faults``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orkes_provision.sandbox.endpoint import caller, state_of
from orkes_provision.sandbox.faults import FaultSpecError
from orkes_provision.sandbox.http import bad_request, forbidden, json_object, ok


async def health(request: Request) -> Response:
    return ok({"healthy": True})


def _admin(request: Request) -> None:
    if not caller(request).is_admin:
        raise forbidden("Only an ADMIN can change the sandbox fault plan")


async def add_fault(request: Request) -> Response:
    _admin(request)
    try:
        fault = state_of(request).faults.add(await json_object(request))
    except FaultSpecError as err:
        raise bad_request(str(err), err.field) from err
    return ok(fault.to_dict())


async def list_faults(request: Request) -> Response:
    _admin(request)
    return ok(state_of(request).faults.list())


async def clear_faults(request: Request) -> Response:
    _admin(request)
    state_of(request).faults.clear()
    return ok({"message": "Cleared faults"})


ROUTES = [
    Route("/health", health, methods=["GET", "HEAD"]),
    Route("/api/sandbox/faults", add_fault, methods=["POST"]),
    Route("/api/sandbox/faults", list_faults, methods=["GET"]),
    Route("/api/sandbox/faults", clear_faults, methods=["DELETE"]),
]
