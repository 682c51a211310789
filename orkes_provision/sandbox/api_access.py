"""Tokens, reading users and grants: ``/api/token``, ``/api/users``, ``/api/auth``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orkes_provision.sandbox import api_people
from orkes_provision.sandbox.access import (
    ACCESS_TYPES,
    SUBJECT_TYPES,
    TARGET_TYPES,
    Principal,
    app_roles,
    granted_access,
    has_grant,
    tag_targets,
)
from orkes_provision.sandbox.api_applications import find_app, may_read
from orkes_provision.sandbox.endpoint import caller, state_of
from orkes_provision.sandbox.hashing import hash_secret, verify_secret
from orkes_provision.sandbox.http import (
    ApiError,
    AuthError,
    bad_request,
    forbidden,
    json_object,
    not_found,
    ok,
    param,
    query_flag,
)
from orkes_provision.sandbox.people import effective_roles, find_group, groups_of
from orkes_provision.sandbox.state import SandboxState
from orkes_provision.sandbox.users import user_record

# A wrong key id or secret, or an INACTIVE key. Deliberately NOT "INVALID_TOKEN": conductor-python
# 2.0.0 answers a 401/403 carrying INVALID_TOKEN by minting a new token and retrying, and it does
# that for /token itself, recursing once per failed exchange until Python's recursion limit.
BAD_CREDENTIALS = ("Invalid access key or secret", "INVALID_CREDENTIALS")
_DUMMY_SALT, _DUMMY_HASH = hash_secret("not-a-real-secret")


async def generate_token(request: Request) -> Response:
    st = state_of(request)
    body = await json_object(request)
    key_id, secret = body.get("keyId"), body.get("keySecret")
    if not isinstance(key_id, str) or not key_id or not isinstance(secret, str) or not secret:
        raise ApiError(400, "keyId and keySecret are required", validation_errors=[
            {"path": name, "message": "must not be blank", "invalidValue": None}
            for name, value in (("keyId", key_id), ("keySecret", secret)) if not isinstance(value, str) or not value])
    row = st.db.one("SELECT * FROM access_keys WHERE id = ?", (key_id,))
    salt, digest = (row["salt"], row["hash"]) if row is not None else (_DUMMY_SALT, _DUMMY_HASH)
    matches = await asyncio.to_thread(verify_secret, secret, salt, digest)
    if row is None or not matches or row["status"] != "ACTIVE":
        raise AuthError(*BAD_CREDENTIALS)
    ttl: int | None = st.config.token_ttl_seconds
    expiration = body.get("expiration")
    if isinstance(expiration, int) and not isinstance(expiration, bool) and expiration != 0:
        # Orkes semantics: milliseconds; negative means a token that never expires.
        ttl = None if expiration < 0 else max(1, expiration // 1000)
    sub = f"app:{row['app_id']}"
    log = request.scope.get("sandbox.log")
    if isinstance(log, dict):
        log["caller"] = sub
    return ok({"token": st.tokens.issue(sub, key_id, ttl)})


async def user_info(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    row = find_app(st, principal.app_id)
    user = user_record(st, row)
    if query_flag(request, "claims"):
        header = next((v for k, v in request.headers.items() if k.lower() == "x-authorization"), "")
        claims = st.tokens.verify(header)
        return ok({"user": user, "claims": {"sub": claims.sub, "iat": claims.iat, "exp": claims.exp,
                                            "keyId": claims.key_id}})
    return ok(user)


def _app_of_user(st: SandboxState, user_id: str) -> sqlite3.Row:
    if not user_id.startswith("app:"):
        raise not_found(f"User '{user_id}' not found")
    row = st.db.one("SELECT * FROM applications WHERE id = ?", (user_id[4:],))
    if row is None:
        raise not_found(f"User '{user_id}' not found")
    return row


def _readable_user(request: Request, user_id: str) -> sqlite3.Row:
    row = _app_of_user(state_of(request), user_id)
    if not may_read(caller(request), row):
        raise forbidden(f"You don't have permissions to read user: {user_id}")
    return row


async def get_user(request: Request) -> Response:
    st = state_of(request)
    user_id = param(request, "id")
    if not user_id.startswith("app:"):
        return ok(api_people.person(request, user_id))
    return ok(user_record(st, _readable_user(request, user_id)))


async def list_users(request: Request) -> Response:
    st = state_of(request)
    api_people.admin_only(request, "list users")
    users = api_people.people(st.db)
    if query_flag(request, "apps"):
        users += [user_record(st, r) for r in st.db.all("SELECT * FROM applications ORDER BY create_time, id")]
    return ok(users)


def _grants_of(st: SandboxState, subject_type: str, subject_id: str,
               resource_type: str | None = None) -> list[dict[str, Any]]:
    """A subject's grants as Orkes lists them: one entry per target, and a grant on a ``TAG`` as one
    entry per resource carrying the tag, with ``"tag": "key:value"``.

    The tag shape is the Orkes docs' (get-group-permissions.mdx and users/get-user-permissions.mdx
    show ``{"target": {"type": "WORKFLOW_DEF", ...}, "access": [...], "tag": "dev:automation"}``).
    UNCONFIRMED: a tag no resource carries yet is listed as its raw ``TAG`` target (the docs show no
    such case; listing nothing would hide a grant that exists).
    """
    params: list[str] = [subject_type, subject_id]
    grouped: dict[tuple[str, str, str], list[str]] = {}
    tagged = _tagged_resources(st)
    for r in st.db.all("SELECT target_type, target_id, access FROM grants WHERE subject_type = ? "
                       "AND subject_id = ? ORDER BY target_type, target_id, access", params):
        target_type, target_id, access = str(r["target_type"]), str(r["target_id"]), str(r["access"])
        if target_type == "TAG" and tagged.get(target_id):
            for resource in tagged[target_id]:
                if resource_type in (None, resource[0]):
                    grouped.setdefault((*resource, target_id), []).append(access)
        elif resource_type in (None, target_type):
            grouped.setdefault((target_type, target_id, ""), []).append(access)
    out: list[dict[str, Any]] = []
    for (t, i, tag), a in sorted(grouped.items()):
        entry: dict[str, Any] = {"target": {"type": t, "id": i}, "access": sorted(set(a), key=ACCESS_TYPES.index)}
        if tag:
            entry["tag"] = tag
        out.append(entry)
    return out


def _tagged_resources(st: SandboxState) -> dict[str, list[tuple[str, str]]]:
    """``key:value`` -> the task and workflow definitions carrying that tag."""
    out: dict[str, list[tuple[str, str]]] = {}
    for target_type, sql in (("TASK_DEF", "SELECT name, body FROM task_defs ORDER BY name"),
                             ("WORKFLOW_DEF", "SELECT name, body FROM workflow_defs ORDER BY name, version")):
        for row in st.db.all(sql):
            for _type, tag in tag_targets(json.loads(str(row["body"])).get("tags")):
                resources = out.setdefault(tag, [])
                if (target_type, str(row["name"])) not in resources:
                    resources.append((target_type, str(row["name"])))
    return out


def _checked_user(request: Request, user_id: str) -> tuple[str, list[str]]:
    """The app id ("" for a person) and own roles of a user whose permissions the caller may read."""
    if user_id.startswith("app:"):
        row = _readable_user(request, user_id)
        return str(row["id"]), app_roles(state_of(request).db, str(row["id"]))
    person = api_people.person(request, user_id)
    return "", [str(r["name"]) for r in person["roles"]]


async def user_permissions(request: Request) -> Response:
    st = state_of(request)
    user_id = param(request, "userId")
    # Admin-only, also for an application reading its own: the Orkes docs (users/get-user-permissions.mdx)
    # say a non-admin caller gets 403.
    api_people.admin_only(request, "read the permissions of users")
    _checked_user(request, user_id)
    return ok({"grantedAccess": _grants_of(st, "USER", user_id)})


async def group_permissions(request: Request) -> Response:
    st = state_of(request)
    api_people.admin_only(request, "read groups")
    group_id = param(request, "groupId")
    if find_group(st.db, group_id) is None:
        raise not_found(f"Group '{group_id}' not found")
    return ok({"grantedAccess": _grants_of(st, "GROUP", group_id)})


async def check_permissions(request: Request) -> Response:
    st = state_of(request)
    user_id = param(request, "userId")
    app_id, own_roles = _checked_user(request, user_id)
    target_type, target_id = _upper(request.query_params.get("type")), request.query_params.get("id") or ""
    # What the user may do includes what its groups hold: their roles and their grants.
    subject = Principal(user_id=user_id, app_id=app_id, key_id="", roles=effective_roles(st.db, own_roles, user_id),
                        groups=frozenset(groups_of(st.db, user_id)))
    held = set(ACCESS_TYPES) if subject.is_admin else granted_access(st.db, subject, [(target_type, target_id)])
    return ok({access: access in held for access in ACCESS_TYPES})


def _upper(value: object) -> str:
    return value.upper() if isinstance(value, str) else ""


def _parse_authorization(body: dict[str, Any]) -> tuple[tuple[str, str], tuple[str, str], list[str]]:
    subject, target, access = body.get("subject"), body.get("target"), body.get("access")
    if not isinstance(subject, dict) or not isinstance(subject.get("id"), str) or not subject["id"]:
        raise bad_request("subject.id is required", "subject.id", subject)
    subject_type = _upper(subject.get("type") or "USER")
    if subject_type not in SUBJECT_TYPES:
        raise bad_request(f"subject.type must be one of {', '.join(SUBJECT_TYPES)}", "subject.type",
                          subject.get("type"))
    if not isinstance(target, dict) or not isinstance(target.get("id"), str) or not target["id"]:
        raise bad_request("target.id is required", "target.id", target)
    target_type = _upper(target.get("type"))
    if target_type not in TARGET_TYPES:
        raise bad_request("target.type is not a known target type", "target.type", target.get("type"))
    if not isinstance(access, list) or not access:
        raise bad_request("access must be a non-empty list", "access", access)
    accesses = [_upper(a) for a in access]
    for original, value in zip(access, accesses, strict=True):
        if value not in ACCESS_TYPES:
            raise bad_request(f"access must be among {', '.join(ACCESS_TYPES)}", "access", original)
    return (subject_type, subject["id"]), (target_type, target["id"]), sorted(set(accesses))


def creator_of(st: SandboxState, target_type: str, target_id: str) -> str | None:
    if target_type == "TASK_DEF":
        row = st.db.one("SELECT created_by FROM task_defs WHERE name = ?", (target_id,))
    elif target_type == "WORKFLOW_DEF":
        row = st.db.one("SELECT created_by FROM workflow_defs WHERE name = ? ORDER BY version LIMIT 1", (target_id,))
    elif target_type == "APPLICATION":
        row = st.db.one("SELECT created_by FROM applications WHERE id = ?", (target_id,))
    else:
        return None
    return None if row is None else row["created_by"]


def may_share(st: SandboxState, principal: Principal, target_type: str, target_id: str) -> bool:
    if principal.is_admin:
        return True
    if target_type in ("TASK_DEF", "WORKFLOW_DEF") and "METADATA_MANAGER" in principal.roles:
        return True
    if target_type == "APPLICATION" and "APPLICATION_MANAGER" in principal.roles:
        return True
    creator = creator_of(st, target_type, target_id)
    return creator is not None and creator == principal.user_id


async def grant(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    subject, target, accesses = _parse_authorization(await json_object(request))
    if not may_share(st, principal, *target):
        raise forbidden(f"You don't have permissions to grant access on {target[0]}: {target[1]}")
    with st.db.tx() as db:
        for access in accesses:
            db.execute("INSERT OR IGNORE INTO grants (subject_type, subject_id, target_type, target_id, access) "
                       "VALUES (?, ?, ?, ?, ?)", (*subject, *target, access))
    return ok({"message": "Granted permission"})


async def revoke(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    subject, target, accesses = _parse_authorization(await json_object(request))
    if not may_share(st, principal, *target):
        raise forbidden(f"You don't have permissions to revoke access on {target[0]}: {target[1]}")
    with st.db.tx() as db:
        for access in accesses:
            db.execute("DELETE FROM grants WHERE subject_type = ? AND subject_id = ? AND target_type = ? "
                       "AND target_id = ? AND access = ?", (*subject, *target, access))
    return ok({"message": "Removed permission"})


async def get_permissions(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    target_type, target_id = _upper(param(request, "type")), param(request, "id")
    if target_type not in TARGET_TYPES:
        raise bad_request("type is not a known target type", "type", param(request, "type"))
    if not (may_share(st, principal, target_type, target_id)
            or has_grant(st.db, principal, [(target_type, target_id)], None)):
        raise forbidden(f"You don't have permissions to read access on {target_type}: {target_id}")
    rows = st.db.all("SELECT subject_type, subject_id, access FROM grants WHERE target_type = ? AND target_id = ? "
                     "ORDER BY subject_type, subject_id, access", (target_type, target_id))
    if (request.query_params.get("groupBy") or "access").lower() == "subject":
        by_subject: dict[str, list[str]] = {}
        for r in rows:
            by_subject.setdefault(f"{r['subject_type']}:{r['subject_id']}", []).append(str(r["access"]))
        return ok(by_subject)
    # Every access type is a key, an empty list where nothing is granted: clients read
    # ``response["EXECUTE"]``, and an empty object after the last revoke would break them.
    by_access: dict[str, list[dict[str, str]]] = {access: [] for access in ACCESS_TYPES}
    for r in rows:
        by_access.setdefault(str(r["access"]), []).append({"type": r["subject_type"], "id": r["subject_id"]})
    return ok(by_access)


def _subject_path(request: Request) -> tuple[str, str]:
    subject_type = _upper(param(request, "subjectType"))
    if subject_type not in SUBJECT_TYPES:
        raise bad_request(f"subjectType must be one of {', '.join(SUBJECT_TYPES)}", "subjectType",
                          param(request, "subjectType"))
    return subject_type, param(request, "subjectId")


async def subject_grants(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    subject = _subject_path(request)
    if not principal.is_admin and subject != ("USER", principal.user_id):
        raise forbidden("Only an ADMIN can list the grants of another subject")
    return ok(_grants_of(st, *subject, resource_type=_upper(request.query_params.get("resourceType")) or None))


async def revoke_subject_grants(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    subject = _subject_path(request)
    if not principal.is_admin:
        raise forbidden("Only an ADMIN can revoke all grants of a subject")
    with st.db.tx() as db:
        db.execute("DELETE FROM grants WHERE subject_type = ? AND subject_id = ?", subject)
    return ok({"message": "Revoked grants"})


ROUTES = [
    Route("/api/token", generate_token, methods=["POST"]),
    Route("/api/token/userInfo", user_info, methods=["GET"]),
    Route("/api/users", list_users, methods=["GET"]),
    Route("/api/users/{userId}/permissions", user_permissions, methods=["GET"]),
    Route("/api/users/{userId}/checkPermissions", check_permissions, methods=["GET"]),
    Route("/api/groups/{groupId}/permissions", group_permissions, methods=["GET"]),
    Route("/api/users/{id}", get_user, methods=["GET"]),
    Route("/api/auth/authorization", grant, methods=["POST"]),
    Route("/api/auth/authorization", revoke, methods=["DELETE"]),
    Route("/api/auth/authorization/{type}/{id}", get_permissions, methods=["GET"]),
    Route("/api/auth/subjects/{subjectType}/{subjectId}/grants", subject_grants, methods=["GET"]),
    Route("/api/auth/subjects/{subjectType}/{subjectId}/grants", revoke_subject_grants, methods=["DELETE"]),
]
