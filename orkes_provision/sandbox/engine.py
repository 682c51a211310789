"""The workflow engine: linear sequences of SIMPLE tasks, run by whoever polls for them.

A workflow schedules its first task when it starts; each task completed schedules the next with
its inputs resolved (see ``expressions``); after the last one the workflow is COMPLETED with its
``outputParameters`` resolved (or, without them, the last task's output). A FAILED task is retried
while its retry count allows (``retryCount`` of the workflow task, else of the task definition),
after ``retryDelaySeconds`` (FIXED, LINEAR_BACKOFF or EXPONENTIAL_BACKOFF); then, or at once for
FAILED_WITH_TERMINAL_ERROR, the workflow is FAILED. A task polled but not updated within its
``responseTimeoutSeconds`` is TIMED_OUT and retried the same way; the check runs whenever its
task type is polled or its workflow read. An IN_PROGRESS update sets a task back to SCHEDULED in
its queue, handed out again after its ``callbackAfterSeconds`` (0: to the next poll), as Conductor
does for worker tasks; with ``extendLease`` it only restarts the response-timeout clock. Updates to
tasks that are already finished are ignored, so a worker's retried update is harmless.

Queue rules as on Conductor: a task scheduled in a domain (``taskToDomain``, by task name or
``*``) is given only to polls for that domain, and a task without one only to polls without one.
"""

from __future__ import annotations

import uuid
from typing import Any

from orkes_provision.sandbox.db import Database, dumps, loads_obj
from orkes_provision.sandbox.expressions import resolve
from orkes_provision.sandbox.http import ApiError, bad_request, not_found

TERMINAL_TASK_STATUSES = frozenset({"COMPLETED", "FAILED", "FAILED_WITH_TERMINAL_ERROR", "TIMED_OUT", "CANCELED",
                                    "SKIPPED", "COMPLETED_WITH_ERRORS"})
UPDATE_STATUSES = ("IN_PROGRESS", "COMPLETED", "FAILED", "FAILED_WITH_TERMINAL_ERROR")
TASK_DEF_DEFAULTS: dict[str, Any] = {
    "retryCount": 3, "retryLogic": "FIXED", "retryDelaySeconds": 60, "backoffScaleFactor": 1,
    "timeoutPolicy": "TIME_OUT_WF", "timeoutSeconds": 3600, "totalTimeoutSeconds": 0,
    "responseTimeoutSeconds": 600, "pollTimeoutSeconds": 3600, "rateLimitPerFrequency": 0,
    "rateLimitFrequencyInSeconds": 1, "concurrentExecLimit": 0, "inputKeys": [], "outputKeys": [],
    "inputTemplate": {}, "enforceSchema": False,
}


def task_type_of(workflow_task: dict[str, Any]) -> str:
    return str(workflow_task.get("type") or workflow_task.get("workflowTaskType") or "SIMPLE").upper()


def check_runnable(wf_def: dict[str, Any]) -> list[dict[str, Any]]:
    """The definition's tasks, or 400 when it has one this engine cannot run."""
    tasks = wf_def.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise bad_request(f"Workflow '{wf_def.get('name')}' has no tasks", "tasks")
    for i, task in enumerate(tasks):
        kind = task_type_of(task)
        if kind != "SIMPLE":
            raise bad_request(f"The sandbox runs only SIMPLE tasks; task '{task.get('taskReferenceName')}' "
                              f"of workflow '{wf_def.get('name')}' has type {kind}", f"tasks[{i}].type", kind)
    return tasks


def start_workflow(db: Database, wf_def: dict[str, Any], *, workflow_input: dict[str, Any],
                   correlation_id: str | None, priority: int, task_to_domain: dict[str, str],
                   created_by: str, now: int) -> str:
    check_runnable(wf_def)
    workflow_id = str(uuid.uuid4())
    workflow: dict[str, Any] = {
        "workflowId": workflow_id, "workflowName": wf_def["name"], "workflowVersion": int(wf_def.get("version") or 1),
        "status": "RUNNING", "input": workflow_input, "output": {}, "correlationId": correlation_id,
        "priority": priority, "taskToDomain": task_to_domain, "createTime": now, "startTime": now,
        "updateTime": now, "endTime": 0, "createdBy": created_by, "ownerApp": created_by, "variables": {},
        "failedReferenceTaskNames": [], "failedTaskNames": [], "workflowDefinition": wf_def,
    }
    _drop_nulls(workflow)
    with db.tx():
        db.execute("INSERT INTO workflows (id, name, version, status, body, created_by, create_time) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", (workflow_id, workflow["workflowName"],
                                                   workflow["workflowVersion"], "RUNNING", dumps(workflow),
                                                   created_by, now))
        _schedule(db, workflow, index=0, retry_count=0, retried_from=None, delay_ms=0, now=now)
    return workflow_id


def load_workflow(db: Database, workflow_id: str) -> dict[str, Any] | None:
    row = db.one("SELECT body FROM workflows WHERE id = ?", (workflow_id,))
    return None if row is None else loads_obj(str(row["body"]))


def _drop_nulls(doc: dict[str, Any]) -> dict[str, Any]:
    """Leave unset fields out, as Orkes (Jackson NON_NULL) does; the schemas have no nullable fields."""
    for key in [k for k, v in doc.items() if v is None]:
        del doc[key]
    return doc


def _save_workflow(db: Database, workflow: dict[str, Any]) -> None:
    _drop_nulls(workflow)
    db.execute("UPDATE workflows SET status = ?, body = ? WHERE id = ?",
               (workflow["status"], dumps(workflow), workflow["workflowId"]))


def load_task(db: Database, task_id: str) -> dict[str, Any] | None:
    row = db.one("SELECT body FROM tasks WHERE id = ?", (task_id,))
    return None if row is None else loads_obj(str(row["body"]))


def _save_task(db: Database, task: dict[str, Any], *, queued: bool, visible_at: int) -> None:
    _drop_nulls(task)
    db.execute("UPDATE tasks SET status = ?, queued = ?, visible_at = ?, body = ? WHERE id = ?",
               (task["status"], int(queued), visible_at, dumps(task), task["taskId"]))


def tasks_of(db: Database, workflow_id: str) -> list[dict[str, Any]]:
    rows = db.all("SELECT body FROM tasks WHERE workflow_id = ? ORDER BY seq", (workflow_id,))
    return [loads_obj(str(r["body"])) for r in rows]


def task_def(db: Database, name: str) -> dict[str, Any]:
    row = db.one("SELECT body FROM task_defs WHERE name = ?", (name,))
    return {**TASK_DEF_DEFAULTS, "name": name, **(loads_obj(str(row["body"])) if row is not None else {})}


def _context(db: Database, workflow: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {"workflow": {
        "input": workflow.get("input") or {}, "output": workflow.get("output") or {},
        "workflowId": workflow["workflowId"], "correlationId": workflow.get("correlationId"),
        "workflowType": workflow["workflowName"], "workflowVersion": workflow["workflowVersion"]}}
    for task in tasks_of(db, workflow["workflowId"]):
        # Later attempts of a retried task replace earlier ones.
        context[task["referenceTaskName"]] = {"input": task.get("inputData") or {},
                                              "output": task.get("outputData") or {}, "status": task["status"]}
    return context


def _schedule(db: Database, workflow: dict[str, Any], *, index: int, retry_count: int, retried_from: str | None,
              delay_ms: int, now: int) -> None:
    workflow_task = workflow["workflowDefinition"]["tasks"][index]
    name = str(workflow_task["name"])
    definition = task_def(db, name)
    domains = workflow.get("taskToDomain") or {}
    domain = domains.get(name) or domains.get("*") or None
    seq_row = db.one("SELECT COALESCE(MAX(seq), 0) AS s FROM tasks WHERE workflow_id = ?", (workflow["workflowId"],))
    seq = int(seq_row["s"]) + 1 if seq_row is not None else 1
    task: dict[str, Any] = {
        "taskId": str(uuid.uuid4()), "taskType": name, "taskDefName": name,
        "referenceTaskName": workflow_task["taskReferenceName"], "status": "SCHEDULED",
        "inputData": resolve(workflow_task.get("inputParameters") or {}, _context(db, workflow)),
        "outputData": {}, "workflowInstanceId": workflow["workflowId"], "workflowType": workflow["workflowName"],
        "correlationId": workflow.get("correlationId"), "workflowPriority": workflow.get("priority", 0),
        "seq": seq, "retryCount": retry_count, "retried": False, "retriedTaskId": retried_from,
        "pollCount": 0, "scheduledTime": now, "startTime": 0, "endTime": 0, "updateTime": now,
        "callbackAfterSeconds": 0, "startDelayInSeconds": 0, "responseTimeoutSeconds":
            int(definition.get("responseTimeoutSeconds") or 0),
        "rateLimitPerFrequency": int(definition.get("rateLimitPerFrequency") or 0),
        "rateLimitFrequencyInSeconds": int(definition.get("rateLimitFrequencyInSeconds") or 0),
        "domain": domain, "workerId": None, "reasonForIncompletion": None, "executed": False,
        "callbackFromWorker": True, "iteration": 0, "loopOverTask": False, "queueWaitTime": 0,
        "workflowTask": workflow_task, "subworkflowChanged": False,
    }
    _drop_nulls(task)
    db.execute("INSERT INTO tasks (id, workflow_id, seq, task_def_name, status, domain, visible_at, queued, body) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
               (task["taskId"], workflow["workflowId"], seq, name, "SCHEDULED", domain, now + delay_ms, dumps(task)))


def poll(db: Database, task_type: str, domain: str | None, worker_id: str | None, count: int,
         now: int) -> list[dict[str, Any]]:
    """Hand out up to ``count`` queued tasks of ``task_type``, marking them IN_PROGRESS."""
    sweep_timeouts(db, now, task_type=task_type)
    out: list[dict[str, Any]] = []
    with db.tx():
        rows = db.all("SELECT id FROM tasks WHERE task_def_name = ? AND queued = 1 AND visible_at <= ? "
                      "AND domain IS ? ORDER BY visible_at, seq LIMIT ?", (task_type, now, domain or None, count))
        for row in rows:
            task = load_task(db, str(row["id"]))
            if task is None:
                continue
            if task["status"] == "SCHEDULED":
                task["queueWaitTime"] = max(0, now - int(task.get("scheduledTime") or now))
            task["status"] = "IN_PROGRESS"
            task["pollCount"] = int(task.get("pollCount") or 0) + 1
            task["startTime"] = task.get("startTime") or now
            task["updateTime"] = now
            task["workerId"] = worker_id
            task["callbackAfterSeconds"] = 0
            _save_task(db, task, queued=False, visible_at=now)
            out.append(task)
    return out


def update_task(db: Database, result: dict[str, Any], now: int) -> dict[str, Any]:
    """Apply a TaskResult; answers the task as stored afterwards."""
    task_id, workflow_id, status = _checked_result(result)
    with db.tx():
        task = load_task(db, task_id)
        if task is None or task["workflowInstanceId"] != workflow_id:
            raise not_found(f"No such task found by taskId: {task_id} in workflow: {workflow_id}")
        workflow = load_workflow(db, workflow_id)
        if workflow is None:
            raise not_found(f"Workflow with id: {workflow_id} not found")
        if task["status"] in TERMINAL_TASK_STATUSES or workflow["status"] != "RUNNING":
            return task  # already finished: a repeated update changes nothing
        if status == "IN_PROGRESS" and result.get("extendLease") is True:
            # A heartbeat: the worker still has the task; only the response-timeout clock restarts.
            task["updateTime"] = now
            db.execute("UPDATE tasks SET body = ? WHERE id = ?", (dumps(_drop_nulls(task)), task_id))
            return task
        _merge_result(task, result, now)
        if status == "IN_PROGRESS":
            # Back to SCHEDULED in its queue, handed out again after callbackAfterSeconds (0: to the
            # next poll), held by whoever the update names (nobody if it names no worker).
            callback = max(0, int(result.get("callbackAfterSeconds") or 0))
            task.update(status="SCHEDULED", callbackAfterSeconds=callback, workerId=result.get("workerId") or None)
            _save_task(db, task, queued=True, visible_at=now + callback * 1000)
            return task
        task["status"] = status
        task["endTime"] = now
        task["executed"] = True
        _save_task(db, task, queued=False, visible_at=now)
        if status == "COMPLETED":
            _advance(db, workflow, task, now)
        else:
            _fail_or_retry(db, workflow, task, now, retryable=status == "FAILED")
        return task


def _checked_result(result: dict[str, Any]) -> tuple[str, str, str]:
    """The task id, workflow id and status of a TaskResult, or the server's 400 for a missing one."""
    task_id, workflow_id = result.get("taskId"), result.get("workflowInstanceId")
    if not isinstance(task_id, str) or not task_id:
        raise bad_request("taskId cannot be null or empty", "taskId", task_id)
    if not isinstance(workflow_id, str) or not workflow_id:
        raise bad_request("workflowInstanceId cannot be null or empty", "workflowInstanceId", workflow_id)
    status = str(result.get("status") or "")
    if status not in UPDATE_STATUSES:
        raise bad_request(f"status must be one of {', '.join(UPDATE_STATUSES)}", "status", result.get("status"))
    return task_id, workflow_id, status


def _merge_result(task: dict[str, Any], result: dict[str, Any], now: int) -> None:
    """What a TaskResult says about its task: output (merged), reason, worker, update time."""
    output = result.get("outputData")
    if isinstance(output, dict):
        task["outputData"] = {**(task.get("outputData") or {}), **output}
    if result.get("reasonForIncompletion"):
        task["reasonForIncompletion"] = str(result["reasonForIncompletion"])
    if result.get("workerId"):
        task["workerId"] = result["workerId"]
    task["updateTime"] = now


def _index_of(workflow: dict[str, Any], task: dict[str, Any]) -> int:
    for i, wt in enumerate(workflow["workflowDefinition"]["tasks"]):
        if wt["taskReferenceName"] == task["referenceTaskName"]:
            return i
    raise ApiError(500, f"task {task['referenceTaskName']} is not in its workflow definition")


def _advance(db: Database, workflow: dict[str, Any], task: dict[str, Any], now: int) -> None:
    index = _index_of(workflow, task)
    if index + 1 < len(workflow["workflowDefinition"]["tasks"]):
        _schedule(db, workflow, index=index + 1, retry_count=0, retried_from=None, delay_ms=0, now=now)
        workflow["updateTime"] = now
        _save_workflow(db, workflow)
        return
    output_parameters = workflow["workflowDefinition"].get("outputParameters")
    if output_parameters:
        workflow["output"] = resolve(output_parameters, _context(db, workflow))
    else:
        workflow["output"] = task.get("outputData") or {}
    workflow.update(status="COMPLETED", endTime=now, updateTime=now)
    _save_workflow(db, workflow)


def _retry_limit(db: Database, workflow: dict[str, Any], task: dict[str, Any]) -> tuple[int, int]:
    """(allowed retries, delay in ms before the next attempt)."""
    definition = task_def(db, task["taskDefName"])
    workflow_task = workflow["workflowDefinition"]["tasks"][_index_of(workflow, task)]
    limit = workflow_task.get("retryCount")
    if not isinstance(limit, int):
        limit = int(definition.get("retryCount") or 0)
    attempt = int(task.get("retryCount") or 0) + 1
    delay = int(definition.get("retryDelaySeconds") or 0)
    logic = str(definition.get("retryLogic") or "FIXED")
    scale = max(1, int(definition.get("backoffScaleFactor") or 1))
    if logic == "LINEAR_BACKOFF":
        delay = delay * scale * attempt
    elif logic == "EXPONENTIAL_BACKOFF":
        delay = delay * 2 ** (attempt - 1)
    return limit, delay * 1000


def _fail_or_retry(db: Database, workflow: dict[str, Any], task: dict[str, Any], now: int, *,
                   retryable: bool) -> None:
    limit, delay_ms = _retry_limit(db, workflow, task)
    if retryable and int(task.get("retryCount") or 0) < limit:
        task["retried"] = True
        _save_task(db, task, queued=False, visible_at=now)
        _schedule(db, workflow, index=_index_of(workflow, task), retry_count=int(task.get("retryCount") or 0) + 1,
                  retried_from=task["taskId"], delay_ms=delay_ms, now=now)
        workflow["updateTime"] = now
        _save_workflow(db, workflow)
        return
    reason = task.get("reasonForIncompletion") or f"Task {task['referenceTaskName']} {task['status']}"
    workflow.update(status="FAILED", endTime=now, updateTime=now, reasonForIncompletion=reason,
                    failedReferenceTaskNames=[task["referenceTaskName"]], failedTaskNames=[task["taskDefName"]])
    _save_workflow(db, workflow)


def sweep_timeouts(db: Database, now: int, *, task_type: str | None = None, workflow_id: str | None = None) -> None:
    """Time out polled tasks whose worker went quiet for longer than responseTimeoutSeconds."""
    sql = "SELECT id FROM tasks WHERE status = 'IN_PROGRESS' AND queued = 0"
    params: list[Any] = []
    if task_type is not None:
        sql += " AND task_def_name = ?"
        params.append(task_type)
    if workflow_id is not None:
        sql += " AND workflow_id = ?"
        params.append(workflow_id)
    with db.tx():
        for row in db.all(sql, params):
            task = load_task(db, str(row["id"]))
            if task is None:
                continue
            timeout_s = int(task.get("responseTimeoutSeconds") or 0)
            if timeout_s <= 0 or int(task["updateTime"]) + timeout_s * 1000 > now:
                continue
            workflow = load_workflow(db, task["workflowInstanceId"])
            if workflow is None or workflow["status"] != "RUNNING":
                continue
            task.update(status="TIMED_OUT", endTime=now, updateTime=now,
                        reasonForIncompletion=f"responseTimeout: {timeout_s}s exceeded")
            _save_task(db, task, queued=False, visible_at=now)
            _fail_or_retry(db, workflow, task, now, retryable=True)


def terminate(db: Database, workflow_id: str, reason: str | None, now: int) -> None:
    with db.tx():
        workflow = load_workflow(db, workflow_id)
        if workflow is None:
            raise not_found(f"Workflow with id: {workflow_id} not found")
        if workflow["status"] != "RUNNING":
            return
        for task in tasks_of(db, workflow_id):
            if task["status"] not in TERMINAL_TASK_STATUSES:
                task.update(status="CANCELED", endTime=now, updateTime=now)
                _save_task(db, task, queued=False, visible_at=now)
        workflow.update(status="TERMINATED", endTime=now, updateTime=now, reasonForIncompletion=reason)
        _save_workflow(db, workflow)
