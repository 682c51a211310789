"""Which task each instance holds: read from the polls it receives and the updates it sends.

A task is held from the answer of a poll (``GET /api/tasks/poll/{type}``, ``/poll/batch/{type}``,
or the next task ``POST /api/tasks/update-v2`` returns) until the instance sends an update for it
(``POST /api/tasks`` or ``update-v2``) that the server accepts, unless that update only extends
the lease. What an instance still holds when it stops goes back to the queue: ``POST /api/tasks``
with ``IN_PROGRESS`` and ``callbackAfterSeconds`` 0, which Conductor turns into ``SCHEDULED``
again, without counting a retry (see ``workers.requeue``). No task search is needed: the agent saw
the poll, so a key holding only WORKER and EXECUTE is enough.
"""

from __future__ import annotations

import json
import re
from typing import Any

POLL_PATH = re.compile(r"^/api/tasks/poll/(?:batch/)?[^/]+$")
UPDATE_PATHS = frozenset({"/api/tasks", "/api/tasks/update-v2"})
UPDATE_V2 = "/api/tasks/update-v2"


def is_poll(method: str, path: str) -> bool:
    return method == "GET" and POLL_PATH.match(path) is not None


def is_update(method: str, path: str) -> bool:
    return method == "POST" and path in UPDATE_PATHS


def polled_tasks(body: bytes) -> dict[str, str]:
    """Task id -> workflow id of the tasks in a poll's answer (one task, a list, or nothing)."""
    if not body.strip():
        return {}
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    items = data if isinstance(data, list) else [data]
    found: dict[str, str] = {}
    for item in items:
        if isinstance(item, dict):
            task_id, workflow_id = item.get("taskId"), item.get("workflowInstanceId")
            if isinstance(task_id, str) and isinstance(workflow_id, str):
                found[task_id] = workflow_id
    return found


def updated_task(body: bytes) -> str | None:
    """The id of the task an update finishes with the worker, ``None`` when it keeps holding it."""
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("extendLease") is True:
        return None
    task_id = data.get("taskId")
    return task_id if isinstance(task_id, str) else None


def hand_back_body(task_id: str, workflow_id: str) -> bytes:
    return json.dumps({"workflowInstanceId": workflow_id, "taskId": task_id, "status": "IN_PROGRESS",
                       "callbackAfterSeconds": 0}).encode()
