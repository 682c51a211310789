"""Users and groups: ``PUT``/``DELETE /api/users/{id}``, ``/api/groups...``.

Both are upserts, as on Orkes: ``PUT`` creates or replaces. Only an ``ADMIN`` may call any of
these (403 otherwise). Reading users (``GET /api/users...``) lives with the application users in
``api_access``. Rules and what members inherit: ``people``.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orkes_provision.sandbox.access import Principal
from orkes_provision.sandbox.db import Database, dumps
from orkes_provision.sandbox.endpoint import caller, state_of
from orkes_provision.sandbox.http import (
    bad_request,
    forbidden,
    json_body,
    json_object,
    not_found,
    now_ms,
    ok,
    param,
)
from orkes_provision.sandbox.people import (
    DEFAULT_ACCESS_TARGETS,
    READ_ONLY,
    find_group,
    find_user,
    group_record,
    groups_of,
    members_of,
    user_record,
    user_roles,
)
from orkes_provision.sandbox.roles import is_role, known_roles
from orkes_provision.sandbox.users import user_record as app_user_record


def admin_only(request: Request, what: str) -> Principal:
    principal = caller(request)
    if not principal.is_admin:
        raise forbidden(f"You don't have permissions to {what}: only an ADMIN may")
    return principal


def _roles(db: Database, body: dict[str, Any], where: str) -> list[str] | None:
    """The roles to hold: system roles, or custom roles that exist (``/api/roles``)."""
    roles = body.get("roles")
    if roles is None:
        return None
    if isinstance(roles, str):
        roles = [roles]  # Jackson's single value as a list of one (binding accepted it)
    unknown = [r for r in roles if not is_role(db, r)]
    if unknown:
        raise bad_request(f"Unknown role '{unknown[0]}'; known roles: {', '.join(known_roles(db))}", f"{where}.roles",
                          unknown[0])
    roles = sorted(set(roles))
    if READ_ONLY in roles and len(roles) > 1:
        raise bad_request(f"{READ_ONLY} cannot be combined with other roles", f"{where}.roles", roles)
    return roles


def _member_id(db: Database, user_id: str) -> str:
    """A user that may join a group: a person, or an application user; 404 otherwise."""
    if user_id.startswith("app:"):
        if db.one("SELECT id FROM applications WHERE id = ?", (user_id[4:],)) is None:
            raise not_found(f"User '{user_id}' not found")
    elif find_user(db, user_id) is None:
        raise not_found(f"User '{user_id}' not found")
    if READ_ONLY in user_roles(db, user_id):
        raise bad_request(f"User '{user_id}' has the role {READ_ONLY} and cannot be added to groups", "userId",
                          user_id)
    return user_id


def _group(db: Database, group_id: str) -> sqlite3.Row:
    row = find_group(db, group_id)
    if row is None:
        raise not_found(f"Group '{group_id}' not found")
    return row


# users --------------------------------------------------------------------------------------

async def upsert_user(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "create or update users")
    user_id = param(request, "id")
    body = await json_object(request)
    if user_id.startswith("app:"):
        raise bad_request("Prefix 'app:' is reserved for applications", "id", user_id)
    if not user_id.strip():
        raise bad_request("user id cannot be blank", "id", user_id)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("name cannot be null or empty", "name", name)
    roles = _roles(st.db, body, "body")
    groups = body.get("groups")
    now = now_ms()
    with st.db.tx() as db:
        existing = find_user(db, user_id)
        wanted_roles = roles if roles is not None else (user_roles(db, user_id) if existing else [])
        wanted_groups = sorted(set(groups)) if groups is not None else groups_of(db, user_id)
        if READ_ONLY in wanted_roles and wanted_groups:
            raise bad_request(f"A user with the role {READ_ONLY} cannot be in groups", "groups", wanted_groups)
        for group_id in wanted_groups:
            if find_group(db, group_id) is None:
                raise not_found(f"Group '{group_id}' not found")
        if existing is None:
            db.execute("INSERT INTO users (id, name, uuid, create_time, update_time) VALUES (?, ?, ?, ?, ?)",
                       (user_id, name, str(uuid.uuid4()), now, now))
        else:
            db.execute("UPDATE users SET name = ?, update_time = ? WHERE id = ?", (name, now, user_id))
        db.execute("DELETE FROM user_roles WHERE user_id = ?", (user_id,))
        for role in wanted_roles:
            db.execute("INSERT INTO user_roles (user_id, role) VALUES (?, ?)", (user_id, role))
        db.execute("DELETE FROM group_members WHERE user_id = ?", (user_id,))
        for group_id in wanted_groups:
            db.execute("INSERT INTO group_members (group_id, user_id) VALUES (?, ?)", (group_id, user_id))
        row = find_user(db, user_id)
        assert row is not None
        return ok(user_record(db, row))


async def delete_user(request: Request) -> Response:
    st = state_of(request)
    user_id = param(request, "id")
    if user_id.startswith("app:"):
        raise bad_request("Application users are deleted with their application (DELETE /api/applications/{id})",
                          "id", user_id)
    admin_only(request, "delete users")
    with st.db.tx() as db:
        if find_user(db, user_id) is None:
            raise not_found(f"User '{user_id}' not found")
        for sql in ("DELETE FROM user_roles WHERE user_id = ?", "DELETE FROM group_members WHERE user_id = ?",
                    "DELETE FROM users WHERE id = ?"):
            db.execute(sql, (user_id,))
        db.execute("DELETE FROM grants WHERE subject_type = 'USER' AND subject_id = ?", (user_id,))
    return ok({"message": f"Deleted user '{user_id}'"})


def person(request: Request, user_id: str) -> dict[str, Any]:
    """``GET /api/users/{id}`` of a person (``api_access`` serves application users)."""
    st = state_of(request)
    admin_only(request, f"read user {user_id}")
    row = find_user(st.db, user_id)
    if row is None:
        raise not_found(f"User '{user_id}' not found")
    return user_record(st.db, row)


def people(db: Database) -> list[dict[str, Any]]:
    return [user_record(db, r) for r in db.all("SELECT * FROM users ORDER BY id")]


# groups -------------------------------------------------------------------------------------

def _default_access(body: dict[str, Any]) -> dict[str, list[str]]:
    raw = body.get("defaultAccess") or {}
    out: dict[str, list[str]] = {}
    for target, accesses in raw.items():
        if target not in DEFAULT_ACCESS_TARGETS:
            raise bad_request(f"Unsupported target type {target}, supported: {', '.join(DEFAULT_ACCESS_TARGETS)}",
                              f"defaultAccess.{target}", target)
        out[target] = sorted(set(accesses or []))
    return out


async def upsert_group(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "create or update groups")
    group_id = param(request, "id")
    body = await json_object(request)
    if not group_id.strip():
        raise bad_request("group id cannot be blank", "id", group_id)
    description = body.get("description")
    if not isinstance(description, str):
        raise bad_request("description is required", "description", description)
    roles = _roles(st.db, body, "body")
    default_access = _default_access(body)
    if READ_ONLY in (roles or []) and default_access:
        raise bad_request(f"A group with the role {READ_ONLY} cannot have defaultAccess", "defaultAccess",
                          default_access)
    now = now_ms()
    with st.db.tx() as db:
        if find_group(db, group_id) is None:
            db.execute("INSERT INTO user_groups (id, description, default_access, create_time, update_time) "
                       "VALUES (?, ?, ?, ?, ?)", (group_id, description, dumps(default_access), now, now))
        else:
            db.execute("UPDATE user_groups SET description = ?, default_access = ?, update_time = ? WHERE id = ?",
                       (description, dumps(default_access), now, group_id))
        if roles is not None:
            db.execute("DELETE FROM group_roles WHERE group_id = ?", (group_id,))
            for role in roles:
                db.execute("INSERT INTO group_roles (group_id, role) VALUES (?, ?)", (group_id, role))
        return ok(group_record(db, _group(db, group_id)))


async def get_group(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "read groups")
    return ok(group_record(st.db, _group(st.db, param(request, "id"))))


async def list_groups(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "list groups")
    return ok([group_record(st.db, r) for r in st.db.all("SELECT * FROM user_groups ORDER BY id")])


async def delete_group(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "delete groups")
    group_id = param(request, "id")
    with st.db.tx() as db:
        _group(db, group_id)
        for sql in ("DELETE FROM group_roles WHERE group_id = ?", "DELETE FROM group_members WHERE group_id = ?",
                    "DELETE FROM user_groups WHERE id = ?"):
            db.execute(sql, (group_id,))
        db.execute("DELETE FROM grants WHERE subject_type = 'GROUP' AND subject_id = ?", (group_id,))
    return ok({"message": f"Deleted group '{group_id}'"})


async def group_users(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "read groups")
    group_id = param(request, "id")
    _group(st.db, group_id)
    out = []
    for user_id in members_of(st.db, group_id):
        if user_id.startswith("app:"):
            app = st.db.one("SELECT * FROM applications WHERE id = ?", (user_id[4:],))
            if app is not None:
                out.append(app_user_record(st, app))
        elif (row := find_user(st.db, user_id)) is not None:
            out.append(user_record(st.db, row))
    return ok(out)


def _user_list(body: Any) -> list[str]:
    if not isinstance(body, list) or not all(isinstance(u, str) and u for u in body):
        raise bad_request("body must be a list of user ids", "body", body)
    return list(dict.fromkeys(body))


def _add(db: Database, group_id: str, user_ids: list[str]) -> None:
    _group(db, group_id)
    for user_id in user_ids:
        _member_id(db, user_id)
    for user_id in user_ids:
        db.execute("INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?, ?)", (group_id, user_id))


def _remove(db: Database, group_id: str, user_ids: list[str]) -> None:
    _group(db, group_id)
    for user_id in user_ids:
        if not user_id.startswith("app:") and find_user(db, user_id) is None:
            raise not_found(f"User '{user_id}' not found")
    for user_id in user_ids:
        db.execute("DELETE FROM group_members WHERE group_id = ? AND user_id = ?", (group_id, user_id))


async def add_users(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "change group members")
    user_ids = _user_list(await json_body(request))
    with st.db.tx() as db:
        _add(db, param(request, "groupId"), user_ids)
    return ok({})


async def remove_users(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "change group members")
    user_ids = _user_list(await json_body(request))
    with st.db.tx() as db:
        _remove(db, param(request, "groupId"), user_ids)
    return ok({})


async def add_user(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "change group members")
    with st.db.tx() as db:
        _add(db, param(request, "groupId"), [param(request, "userId")])
    return ok({})


async def remove_user(request: Request) -> Response:
    st = state_of(request)
    admin_only(request, "change group members")
    with st.db.tx() as db:
        _remove(db, param(request, "groupId"), [param(request, "userId")])
    return ok({})


ROUTES = [
    Route("/api/users/{id}", upsert_user, methods=["PUT"]),
    Route("/api/users/{id}", delete_user, methods=["DELETE"]),
    Route("/api/groups", list_groups, methods=["GET"]),
    Route("/api/groups/{groupId}/users/{userId}", add_user, methods=["POST"]),
    Route("/api/groups/{groupId}/users/{userId}", remove_user, methods=["DELETE"]),
    Route("/api/groups/{groupId}/users", add_users, methods=["POST"]),
    Route("/api/groups/{groupId}/users", remove_users, methods=["DELETE"]),
    Route("/api/groups/{id}/users", group_users, methods=["GET"]),
    Route("/api/groups/{id}", get_group, methods=["GET"]),
    Route("/api/groups/{id}", upsert_group, methods=["PUT"]),
    Route("/api/groups/{id}", delete_group, methods=["DELETE"]),
]
