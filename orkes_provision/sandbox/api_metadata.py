"""Task and workflow definitions (``/api/metadata/taskdefs``, ``/api/metadata/workflow``).

Definitions are stored as sent (unknown fields kept), with the server-side fields filled in:
``createTime``/``updateTime``/``createdBy``/``updatedBy``, and for task definitions the defaults
Orkes shows (``retryCount`` 3, ``retryDelaySeconds`` 60, ``responseTimeoutSeconds`` 600...).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orkes_provision.sandbox.access import Principal, has_grant, tag_targets
from orkes_provision.sandbox.db import Database, dumps, loads_obj
from orkes_provision.sandbox.endpoint import caller, state_of
from orkes_provision.sandbox.engine import TASK_DEF_DEFAULTS
from orkes_provision.sandbox.http import (
    ApiError,
    bad_request,
    forbidden,
    json_body,
    not_found,
    now_ms,
    ok,
    param,
    path_int,
    query_flag,
    query_int,
)

CREATE_ROLES = ("METADATA_API", "METADATA_MANAGER", "USER")
_INT_FIELDS = ("retryCount", "timeoutSeconds", "totalTimeoutSeconds", "responseTimeoutSeconds", "pollTimeoutSeconds",
               "retryDelaySeconds", "backoffScaleFactor", "rateLimitPerFrequency", "rateLimitFrequencyInSeconds",
               "concurrentExecLimit")


def _may_read(db: Database, principal: Principal, kind: str, name: str, created_by: str | None,
              tags: object) -> bool:
    return (principal.has_any("METADATA_MANAGER", "METADATA_API", "USER", "WORKFLOW_MANAGER")
            or created_by == principal.user_id
            or has_grant(db, principal, [(kind, name), *tag_targets(tags)], None))


def _may_change(db: Database, principal: Principal, kind: str, name: str, created_by: str | None, tags: object,
                access: str) -> bool:
    return (principal.has_any("METADATA_MANAGER") or created_by == principal.user_id
            or has_grant(db, principal, [(kind, name), *tag_targets(tags)], access))


# task definitions -------------------------------------------------------------------------

def _validate_task_def(body: Any, path: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("a task definition must be an object", path)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("TaskDef name cannot be null or empty", f"{path}.name", name)
    for field in _INT_FIELDS:
        value = body.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise bad_request(f"TaskDef {name}: {field} must be a non-negative integer", f"{path}.{field}", value)
    timeout, response_timeout = body.get("timeoutSeconds"), body.get("responseTimeoutSeconds")
    if isinstance(timeout, int) and isinstance(response_timeout, int) and 0 < timeout < response_timeout:
        raise bad_request(f"TaskDef: {name} responseTimeoutSeconds: {response_timeout} must be less than "
                          f"timeoutSeconds: {timeout}", f"{path}.responseTimeoutSeconds", response_timeout)
    return body


def _complete_task_def(body: dict[str, Any], existing: dict[str, Any] | None, principal: Principal,
                       now: int) -> dict[str, Any]:
    out = {key: value for key, value in TASK_DEF_DEFAULTS.items() if key not in ("inputTemplate",)}
    timeout = body.get("timeoutSeconds")
    if isinstance(timeout, int) and 0 < timeout < out["responseTimeoutSeconds"]:
        out["responseTimeoutSeconds"] = timeout
    out.update({k: v for k, v in body.items() if v is not None})
    out["ownerApp"] = principal.user_id if existing is None else existing.get("ownerApp")
    out["createTime"] = now if existing is None else existing.get("createTime", now)
    out["createdBy"] = principal.user_id if existing is None else existing.get("createdBy")
    out["updateTime"] = now
    out["updatedBy"] = principal.user_id
    return out


def _stored_task_def(db: Database, name: str) -> tuple[dict[str, Any], str | None] | None:
    row = db.one("SELECT body, created_by FROM task_defs WHERE name = ?", (name,))
    return None if row is None else (loads_obj(str(row["body"])), row["created_by"])


def _upsert_task_defs(request: Request, defs: list[dict[str, Any]], *, must_exist: bool) -> None:
    st, principal = state_of(request), caller(request)
    now = now_ms()
    with st.db.tx() as db:
        for body in defs:
            name = str(body["name"])
            stored = _stored_task_def(db, name)
            created_by: str | None
            if stored is None:
                if must_exist:
                    raise not_found(f"No such taskType found by name: {name}")
                if not principal.has_any(*CREATE_ROLES):
                    raise forbidden(f"You don't have permissions to create task definition: {name}")
                created_by = principal.user_id
            else:
                existing, created_by = stored
                if not _may_change(db, principal, "TASK_DEF", name, created_by, existing.get("tags"), "UPDATE"):
                    raise forbidden(f"You don't have permissions to update task definition: {name}")
            complete = _complete_task_def(body, None if stored is None else stored[0], principal, now)
            db.execute("INSERT INTO task_defs (name, body, created_by) VALUES (?, ?, ?) "
                       "ON CONFLICT (name) DO UPDATE SET body = excluded.body", (name, dumps(complete), created_by))


async def register_task_defs(request: Request) -> Response:
    body = await json_body(request)
    if isinstance(body, dict):
        body = [body]  # be lenient: a single definition is a list of one
    if not isinstance(body, list) or not body:
        raise bad_request("body must be a non-empty list of task definitions", "body")
    defs = [_validate_task_def(item, f"[{i}]") for i, item in enumerate(body)]
    _upsert_task_defs(request, defs, must_exist=False)
    return ok({})


async def update_task_def(request: Request) -> Response:
    _upsert_task_defs(request, [_validate_task_def(await json_body(request), "body")], must_exist=True)
    return ok({})


def _readable_task_def(request: Request, name: str) -> dict[str, Any]:
    st, principal = state_of(request), caller(request)
    stored = _stored_task_def(st.db, name)
    if stored is None:
        raise not_found(f"No such taskType found by name: {name}")
    body, created_by = stored
    if not _may_read(st.db, principal, "TASK_DEF", name, created_by, body.get("tags")):
        raise forbidden(f"You don't have permissions to read task definition: {name}")
    return body


async def get_task_def(request: Request) -> Response:
    return ok(_readable_task_def(request, param(request, "tasktype")))


async def list_task_defs(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    tag_key, tag_value = request.query_params.get("tagKey"), request.query_params.get("tagValue")
    out = []
    for row in st.db.all("SELECT body, created_by FROM task_defs ORDER BY name"):
        body = loads_obj(str(row["body"]))
        if not _may_read(st.db, principal, "TASK_DEF", body["name"], row["created_by"], body.get("tags")):
            continue
        if tag_key and not any(isinstance(t, dict) and t.get("key") == tag_key
                               and (tag_value is None or t.get("value") == tag_value) for t in body.get("tags") or []):
            continue
        out.append(body)
    return ok(out)


async def delete_task_def(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    name = param(request, "tasktype")
    stored = _stored_task_def(st.db, name)
    if stored is None:
        raise not_found(f"No such taskType found by name: {name}")
    if not _may_change(st.db, principal, "TASK_DEF", name, stored[1], stored[0].get("tags"), "DELETE"):
        raise forbidden(f"You don't have permissions to delete task definition: {name}")
    with st.db.tx() as db:
        db.execute("DELETE FROM task_defs WHERE name = ?", (name,))
    return ok({})


# workflow definitions ---------------------------------------------------------------------

def _validate_workflow_def(body: Any, path: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("a workflow definition must be an object", path)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("WorkflowDef name cannot be null or empty", f"{path}.name", name)
    version = body.get("version", 1)
    if version is None:
        version = 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise bad_request("WorkflowDef version must be a non-negative integer", f"{path}.version", version)
    tasks = body.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise bad_request(f"WorkflowDef {name}: tasks cannot be empty", f"{path}.tasks", tasks)
    refs: set[str] = set()
    for i, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("name"), str) or not task["name"]:
            raise bad_request("WorkflowTask name cannot be empty", f"{path}.tasks[{i}].name")
        ref = task.get("taskReferenceName")
        if not isinstance(ref, str) or not ref:
            raise bad_request("WorkflowTask taskReferenceName cannot be empty", f"{path}.tasks[{i}].taskReferenceName")
        if ref in refs:
            raise bad_request(f"taskReferenceName '{ref}' is used more than once", f"{path}.tasks[{i}]", ref)
        refs.add(ref)
    return {**body, "version": version}


def _stored_workflow_def(db: Database, name: str, version: int | None) -> tuple[dict[str, Any], str | None] | None:
    if version is None:
        row = db.one("SELECT body, created_by FROM workflow_defs WHERE name = ? ORDER BY version DESC LIMIT 1",
                     (name,))
    else:
        row = db.one("SELECT body, created_by FROM workflow_defs WHERE name = ? AND version = ?", (name, version))
    return None if row is None else (loads_obj(str(row["body"])), row["created_by"])


def workflow_def_for_start(request: Request, name: str, version: int | None) -> tuple[dict[str, Any], str | None]:
    stored = _stored_workflow_def(state_of(request).db, name, version)
    if stored is None:
        raise not_found(f"No such workflow found by name: {name}, version: {version}")
    return stored


def _upsert_workflow_defs(request: Request, defs: list[dict[str, Any]], *, overwrite: bool) -> None:
    st, principal = state_of(request), caller(request)
    now = now_ms()
    with st.db.tx() as db:
        for body in defs:
            name, version = str(body["name"]), int(body["version"])
            stored = _stored_workflow_def(db, name, version)
            any_version = _stored_workflow_def(db, name, None)
            created_by: str | None
            if stored is not None and not overwrite:
                raise ApiError(409, f"Workflow with name: {name} and version: {version} already exists")
            if any_version is None:
                if not principal.has_any(*CREATE_ROLES):
                    raise forbidden(f"You don't have permissions to create workflow definition: {name}")
                created_by = principal.user_id
            else:
                created_by = any_version[1]
                if not _may_change(db, principal, "WORKFLOW_DEF", name, created_by, any_version[0].get("tags"),
                                   "UPDATE"):
                    raise forbidden(f"You don't have permissions to update workflow definition: {name}")
            complete = {**{k: v for k, v in body.items() if v is not None},
                        "createTime": stored[0].get("createTime", now) if stored else now, "updateTime": now,
                        "createdBy": created_by, "updatedBy": principal.user_id,
                        "ownerApp": principal.user_id if stored is None else stored[0].get("ownerApp"),
                        "timeoutSeconds": body.get("timeoutSeconds") or 0, "schemaVersion": 2}
            complete.setdefault("timeoutPolicy", "ALERT_ONLY")
            complete.setdefault("inputParameters", [])
            complete.setdefault("outputParameters", {})
            db.execute("INSERT INTO workflow_defs (name, version, body, created_by) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (name, version) DO UPDATE SET body = excluded.body",
                       (name, version, dumps(complete), created_by))


async def create_workflow_def(request: Request) -> Response:
    body = _validate_workflow_def(await json_body(request), "body")
    _upsert_workflow_defs(request, [body], overwrite=query_flag(request, "overwrite"))
    return ok({})


async def update_workflow_defs(request: Request) -> Response:
    body = await json_body(request)
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list) or not body:
        raise bad_request("body must be a non-empty list of workflow definitions", "body")
    defs = [_validate_workflow_def(item, f"[{i}]") for i, item in enumerate(body)]
    _upsert_workflow_defs(request, defs, overwrite=True)
    return ok({})


async def get_workflow_def(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    name = param(request, "name")
    version = query_int(request, "version", 0) or None
    stored = _stored_workflow_def(st.db, name, version)
    if stored is None:
        raise not_found(f"No such workflow found by name: {name}, version: {version}")
    body, created_by = stored
    if not _may_read(st.db, principal, "WORKFLOW_DEF", name, created_by, body.get("tags")):
        raise forbidden(f"You don't have permissions to read workflow definition: {name}")
    return ok(body)


async def list_workflow_defs(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    out = []
    for row in st.db.all("SELECT body, created_by FROM workflow_defs ORDER BY name, version"):
        body = loads_obj(str(row["body"]))
        if _may_read(st.db, principal, "WORKFLOW_DEF", body["name"], row["created_by"], body.get("tags")):
            out.append(body)
    return ok(out)


async def delete_workflow_def(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    name = param(request, "name")
    version = path_int(request, "version")  # an Integer on Orkes: 31 digits are a 400, not an OverflowError
    stored = _stored_workflow_def(st.db, name, version)
    if stored is None:
        raise not_found(f"No such workflow found by name: {name}, version: {version}")
    if not _may_change(st.db, principal, "WORKFLOW_DEF", name, stored[1], stored[0].get("tags"), "DELETE"):
        raise forbidden(f"You don't have permissions to delete workflow definition: {name}")
    with st.db.tx() as db:
        db.execute("DELETE FROM workflow_defs WHERE name = ? AND version = ?", (name, version))
    return ok({})


ROUTES = [
    Route("/api/metadata/taskdefs", register_task_defs, methods=["POST"]),
    Route("/api/metadata/taskdefs", update_task_def, methods=["PUT"]),
    Route("/api/metadata/taskdefs", list_task_defs, methods=["GET"]),
    Route("/api/metadata/taskdefs/{tasktype}", get_task_def, methods=["GET"]),
    Route("/api/metadata/taskdefs/{tasktype}", delete_task_def, methods=["DELETE"]),
    Route("/api/metadata/workflow", create_workflow_def, methods=["POST"]),
    Route("/api/metadata/workflow", update_workflow_defs, methods=["PUT"]),
    Route("/api/metadata/workflow", list_workflow_defs, methods=["GET"]),
    Route("/api/metadata/workflow/{name}", get_workflow_def, methods=["GET"]),
    Route("/api/metadata/workflow/{name}/{version}", delete_workflow_def, methods=["DELETE"]),
]
