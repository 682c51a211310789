"""Roles: ``/api/roles`` as conductor-python's ``RoleResourceApi`` calls it (not in the OpenAPI document).

- ``GET /api/roles``: every role, system and custom (``list[Role]``).
- ``GET /api/roles/system``: system roles by name (``Dict[str, Role]``).
- ``GET /api/roles/custom``: custom roles (``list[Role]``).
- ``GET /api/roles/permissions``: what a custom role may hold (``roles.catalogue``).
- ``POST /api/roles``, ``PUT /api/roles/{name}``: ``CreateOrUpdateRoleRequest`` ``{name, permissions: [str]}``;
  both answer the ``Role``.
- ``GET``/``DELETE /api/roles/{name}``.

Every one is ADMIN-only (custom-roles.mdx: "only available to Admins"). Where no source says what
the server answers, the sandbox takes the stricter choice (all UNCONFIRMED, docs/reliability.md):
creating a name that exists (custom or system) is 409; changing or deleting a system role is 400;
deleting a custom role that a user, group or application still holds is 409; renaming through
``PUT`` is 400 (the docs: a role cannot be renamed). Rules on names and permissions: ``roles``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orkes_provision.sandbox.access import ROLES
from orkes_provision.sandbox.api_people import admin_only
from orkes_provision.sandbox.db import Database, dumps
from orkes_provision.sandbox.endpoint import state_of
from orkes_provision.sandbox.http import ApiError, bad_request, json_object, not_found, now_ms, ok, param
from orkes_provision.sandbox.roles import (
    IMPLICIT,
    NAME,
    PERMISSIONS,
    catalogue,
    custom_names,
    find_custom,
    holders,
    role_dict,
)


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise bad_request(f"Role name {value!r} is invalid: use uppercase letters, digits and underscores between "
                          "words (e.g. WORKFLOW_OPERATOR)", path, value)
    return value


def _permissions(body: dict[str, Any]) -> list[str]:
    raw = body.get("permissions")
    if raw is None:
        raw = []
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise bad_request("permissions must be a list of permission names", "permissions", raw)
    for index, permission in enumerate(raw):
        if permission not in PERMISSIONS:
            raise bad_request(f"Invalid permission '{permission}': see GET /api/roles/permissions",
                              f"permissions[{index}]", permission)
    # The docs: every custom role includes these, and they cannot be removed.
    return sorted(set(raw) | set(IMPLICIT))


def _custom(db: Database, name: str, doing: str) -> None:
    if name in ROLES:
        raise bad_request(f"{name} is a system role and cannot be {doing}", "name", name)
    if find_custom(db, name) is None:
        raise not_found(f"Role '{name}' not found")


async def list_all(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "list roles")
    return ok([role_dict(st.db, name) for name in (*ROLES, *custom_names(st.db))])


async def list_system(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "list roles")
    return ok({name: role_dict(st.db, name) for name in ROLES})


async def list_custom(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "list roles")
    return ok([role_dict(st.db, name) for name in custom_names(st.db)])


async def list_permissions(request: Request) -> Response:
    admin_only(request, "list permissions")
    return ok(catalogue())


async def create(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "create roles")
    body = await json_object(request)
    name = _name(body.get("name"), "name")
    permissions = _permissions(body)
    now = now_ms()
    with st.db.tx() as db:
        if name in ROLES or find_custom(db, name) is not None:
            raise ApiError(409, f"Role '{name}' already exists")
        db.execute("INSERT INTO custom_roles (name, permissions, create_time, update_time) VALUES (?, ?, ?, ?)",
                   (name, dumps(permissions), now, now))
        return ok(role_dict(db, name))


async def get(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "read roles")
    name = param(request, "name")
    if name not in ROLES and find_custom(st.db, name) is None:
        raise not_found(f"Role '{name}' not found")
    return ok(role_dict(st.db, name))


async def update(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "change roles")
    name = param(request, "name")
    body = await json_object(request)
    given = body.get("name")
    if given is not None and given != name:
        raise bad_request(f"A role cannot be renamed ('{name}' to {given!r}): create the new one and move its holders",
                          "name", given)
    permissions = _permissions(body)
    with st.db.tx() as db:
        _custom(db, name, "changed")
        db.execute("UPDATE custom_roles SET permissions = ?, update_time = ? WHERE name = ?",
                   (dumps(permissions), now_ms(), name))
        return ok(role_dict(db, name))


async def delete(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "delete roles")
    name = param(request, "name")
    with st.db.tx() as db:
        _custom(db, name, "deleted")
        held_by = holders(db, name)
        if held_by:
            raise ApiError(409, f"Role '{name}' is still held by {', '.join(held_by[:5])}"
                                f"{' and more' if len(held_by) > 5 else ''}; take it from them first")
        db.execute("DELETE FROM custom_roles WHERE name = ?", (name,))
        db.execute("DELETE FROM grants WHERE subject_type = 'ROLE' AND subject_id = ?", (name,))
    return ok({"message": f"Deleted role '{name}'"})


ROUTES = [
    Route("/api/roles", list_all, methods=["GET"]),
    Route("/api/roles", create, methods=["POST"]),
    Route("/api/roles/system", list_system, methods=["GET"]),
    Route("/api/roles/custom", list_custom, methods=["GET"]),
    Route("/api/roles/permissions", list_permissions, methods=["GET"]),
    Route("/api/roles/{name}", get, methods=["GET"]),
    Route("/api/roles/{name}", update, methods=["PUT"]),
    Route("/api/roles/{name}", delete, methods=["DELETE"]),
]
