"""Workflow executions and the worker protocol (``/api/workflow``, ``/api/tasks``).

Batch poll answers ``[]`` when there is nothing to do, single poll and update-v2 answer 204.
Polls honour the ``timeout`` long-poll briefly (at most 2 s, in 50 ms steps, without blocking
other requests). Permission rules are in ``access``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orkes_provision.sandbox import engine
from orkes_provision.sandbox.access import Principal, execute_denied_message, has_grant, tag_targets
from orkes_provision.sandbox.api_metadata import workflow_def_for_start
from orkes_provision.sandbox.endpoint import caller, state_of
from orkes_provision.sandbox.http import (
    ApiError,
    bad_request,
    forbidden,
    json_body,
    json_object,
    no_content,
    not_found,
    now_ms,
    ok,
    param,
    query_flag,
    query_int,
    text,
)
from orkes_provision.sandbox.state import SandboxState

MAX_LONG_POLL_MS = 2000
MAX_BATCH = 100


# starting and reading workflows -----------------------------------------------------------

def _may_start(st: SandboxState, principal: Principal, wf_def: dict[str, Any], created_by: str | None) -> bool:
    return (principal.has_any("WORKFLOW_MANAGER") or created_by == principal.user_id
            or has_grant(st.db, principal, [("WORKFLOW_DEF", wf_def["name"]), *tag_targets(wf_def.get("tags"))],
                         "EXECUTE"))


def _start(request: Request, name: str, version: int | None, workflow_input: Any, correlation_id: str | None,
           priority: int, task_to_domain: Any) -> Response:
    st, principal = state_of(request), caller(request)
    if workflow_input is None:
        workflow_input = {}
    if not isinstance(workflow_input, dict):
        raise bad_request("workflow input must be a JSON object", "input", workflow_input)
    if task_to_domain is not None and not (isinstance(task_to_domain, dict)
                                           and all(isinstance(v, str) for v in task_to_domain.values())):
        raise bad_request("taskToDomain must map task names to domains", "taskToDomain", task_to_domain)
    wf_def, created_by = workflow_def_for_start(request, name, version)
    if not _may_start(st, principal, wf_def, created_by):
        raise forbidden(f"You don't have permissions to execute workflow: {name}")
    workflow_id = engine.start_workflow(st.db, wf_def, workflow_input=workflow_input, correlation_id=correlation_id,
                                        priority=priority, task_to_domain=task_to_domain or {},
                                        created_by=principal.user_id, now=now_ms())
    return text(workflow_id)


async def start_workflow(request: Request) -> Response:
    body = await json_object(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request("name cannot be null or empty", "name", name)
    if body.get("workflowDef") is not None:
        raise bad_request("the sandbox does not run inline workflow definitions; register it first", "workflowDef")
    version = body.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise bad_request("version must be an integer", "version", version)
    priority = body.get("priority") or 0
    return _start(request, name, version or None, body.get("input"), body.get("correlationId"),
                  int(priority) if isinstance(priority, int) else 0, body.get("taskToDomain"))


async def start_workflow_by_name(request: Request) -> Response:
    version = query_int(request, "version", 0) or None
    return _start(request, param(request, "name"), version, await json_body(request, required=False),
                  request.query_params.get("correlationId") or None, query_int(request, "priority", 0), None)


def _readable_workflow(request: Request, workflow_id: str) -> dict[str, Any]:
    st, principal = state_of(request), caller(request)
    workflow = engine.load_workflow(st.db, workflow_id)
    if workflow is None:
        raise not_found(f"Workflow with id: {workflow_id} not found")
    definition = workflow.get("workflowDefinition") or {}
    if not (principal.has_any("WORKFLOW_MANAGER") or workflow.get("createdBy") == principal.user_id
            or definition.get("createdBy") == principal.user_id
            or has_grant(st.db, principal, [("WORKFLOW_DEF", workflow["workflowName"]),
                                            *tag_targets(definition.get("tags"))], None)):
        raise forbidden(f"You don't have permissions to read workflow: {workflow_id}")
    return workflow


async def get_workflow(request: Request) -> Response:
    st = state_of(request)
    workflow_id = param(request, "workflowId")
    _readable_workflow(request, workflow_id)
    engine.sweep_timeouts(st.db, now_ms(), workflow_id=workflow_id)
    workflow = engine.load_workflow(st.db, workflow_id) or {}
    workflow["tasks"] = engine.tasks_of(st.db, workflow_id) if query_flag(request, "includeTasks", True) else []
    return ok(workflow)


async def terminate_workflow(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    workflow_id = param(request, "workflowId")
    workflow = _readable_workflow(request, workflow_id)
    if not (principal.has_any("WORKFLOW_MANAGER") or workflow.get("createdBy") == principal.user_id
            or has_grant(st.db, principal, [("WORKFLOW_DEF", workflow["workflowName"])], "EXECUTE")):
        raise forbidden(f"You don't have permissions to terminate workflow: {workflow_id}")
    engine.terminate(st.db, workflow_id, request.query_params.get("reason"), now_ms())
    return Response(status_code=200)


# the worker protocol ----------------------------------------------------------------------

def _check_execute(st: SandboxState, principal: Principal, task_type: str, domain: str | None) -> None:
    if principal.has_any("UNRESTRICTED_WORKER"):
        return
    if "WORKER" in principal.roles:
        definition = engine.task_def(st.db, task_type)
        if definition.get("createdBy") == principal.user_id:
            return  # a creator gets access to what it creates
        targets = [("TASK_DEF", task_type), *tag_targets(definition.get("tags"))]
        if domain:
            targets.append(("DOMAIN", domain))
        if has_grant(st.db, principal, targets, "EXECUTE"):
            return
    raise forbidden(execute_denied_message(task_type))


async def _poll(request: Request, task_type: str, count: int) -> list[dict[str, Any]]:
    st, principal = state_of(request), caller(request)
    domain = request.query_params.get("domain") or None
    _check_execute(st, principal, task_type, domain)
    worker_id = request.query_params.get("workerid")
    st.poll_data.record(task_type, domain, worker_id, now_ms())
    wait_ms = min(max(query_int(request, "timeout", 100), 0), MAX_LONG_POLL_MS)
    deadline = now_ms() + wait_ms
    for _ in range(MAX_LONG_POLL_MS // 50 + 1):
        tasks = engine.poll(st.db, task_type, domain, worker_id, count, now_ms())
        if tasks or now_ms() >= deadline:
            return tasks
        await asyncio.sleep(0.05)
    return []


async def batch_poll(request: Request) -> Response:
    count = min(max(query_int(request, "count", 1), 1), MAX_BATCH)
    return ok(await _poll(request, param(request, "tasktype"), count))


async def single_poll(request: Request) -> Response:
    tasks = await _poll(request, param(request, "tasktype"), 1)
    return ok(tasks[0]) if tasks else no_content()


def _apply_update(request: Request, result: dict[str, Any]) -> dict[str, Any]:
    st, principal = state_of(request), caller(request)
    task_id = result.get("taskId")
    stored = engine.load_task(st.db, task_id) if isinstance(task_id, str) else None
    if stored is not None:
        _check_execute(st, principal, stored["taskDefName"], stored.get("domain"))
    return engine.update_task(st.db, result, now_ms())


async def update_task(request: Request) -> Response:
    task = _apply_update(request, await json_object(request))
    return text(str(task["taskId"]))


async def update_task_v2(request: Request) -> Response:
    task = _apply_update(request, await json_object(request))
    st = state_of(request)
    following = engine.poll(st.db, task["taskDefName"], task.get("domain"), task.get("workerId"), 1, now_ms())
    return ok(following[0]) if following else no_content()


async def get_task(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    task_id = param(request, "taskId")
    task = engine.load_task(st.db, task_id)
    if task is None:
        raise not_found(f"No such task found by id: {task_id}")
    try:
        _check_execute(st, principal, task["taskDefName"], task.get("domain"))
    except ApiError:
        _readable_workflow(request, task["workflowInstanceId"])
    return ok(task)


ROUTES = [
    Route("/api/workflow", start_workflow, methods=["POST"]),
    Route("/api/workflow/{workflowId}", get_workflow, methods=["GET"]),
    Route("/api/workflow/{workflowId}", terminate_workflow, methods=["DELETE"]),
    Route("/api/workflow/{name}", start_workflow_by_name, methods=["POST"]),
    Route("/api/tasks", update_task, methods=["POST"]),
    Route("/api/tasks/update-v2", update_task_v2, methods=["POST"]),
    Route("/api/tasks/poll/batch/{tasktype}", batch_poll, methods=["GET"]),
    Route("/api/tasks/poll/{tasktype}", single_poll, methods=["GET"]),
    Route("/api/tasks/{taskId}", get_task, methods=["GET"]),
]
