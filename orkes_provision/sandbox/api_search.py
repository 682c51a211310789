"""Task search (``GET /api/tasks/search``): a page of ``TaskSummary`` objects, ``{totalHits, results}``.

The query language is the one the Orkes OpenAPI document describes for workflow search, on the
fields of a task summary: ``field = value``, ``field IN (v1, v2)``, and ``<``/``>`` on the times
(epoch milliseconds), joined by ``AND``; ``freeText`` ``*`` (or empty) matches everything, other
text matches summaries that contain it. ``sort`` is ``field`` or ``field:ASC|DESC``. The summary is
OSS Conductor's ``TaskSummary(Task)``: times as UTC ``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`` strings, input
and output as JSON text, no ``workerId`` (a worker's tasks are found by reading each task).

Differences from Orkes, on purpose or unconfirmed: the sandbox answers from its store at once
(Orkes answers from a search index, updated asynchronously: a task changed a moment ago may show
its previous status); a caller sees the tasks it may execute or whose workflow it may read (the
filter Orkes applies is unconfirmed); ``OR`` and parentheses are refused (400).

Routed before ``/api/tasks/{taskId}`` (see ``app._routes``), which would otherwise take ``search``.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orkes_provision.sandbox import engine
from orkes_provision.sandbox.access import Principal, has_grant, tag_targets
from orkes_provision.sandbox.db import loads_obj
from orkes_provision.sandbox.endpoint import caller, state_of
from orkes_provision.sandbox.http import bad_request, forbidden, ok, query_int
from orkes_provision.sandbox.state import SandboxState

MAX_PAGE = 1000
TEXT_FIELDS = ("taskId", "taskType", "taskDefName", "taskReferenceName", "status", "workflowId", "workflowType",
               "correlationId", "domain")
TIME_FIELDS = ("scheduledTime", "startTime", "updateTime", "endTime")
_TOKEN = re.compile(r"\s*(?:(?P<op>=|<|>|\(|\)|,)|(?P<quoted>\"[^\"]*\"|'[^']*')|(?P<word>[^\s=<>(),]+))")

# taskType is the definition's name: the sandbox runs SIMPLE tasks only.
INDEXED_COLUMNS = {"status": "status", "taskDefName": "task_def_name", "taskType": "task_def_name",
                   "workflowId": "workflow_id"}
Clause = tuple[str, str, list[str]]  # (field, operator, values)


def parse_query(query: str) -> list[Clause]:
    """``status IN (SCHEDULED, IN_PROGRESS) AND taskType = greetings`` as clauses; 400 when it is not that."""
    tokens = _tokens(query)
    clauses: list[Clause] = []
    i = 0
    while i < len(tokens):
        if clauses:
            if tokens[i].upper() != "AND":
                raise _bad(query, f"expected AND, found {tokens[i]!r} (the sandbox supports AND only)")
            i += 1
        if len(tokens) - i < 3:
            raise _bad(query, "incomplete condition")
        field, op = tokens[i], tokens[i + 1]
        if field not in TEXT_FIELDS + TIME_FIELDS:
            raise _bad(query, f"unknown field {field!r}")
        if op.upper() == "IN":
            if i + 2 >= len(tokens) or tokens[i + 2] != "(":
                raise _bad(query, "IN needs a parenthesised list")
            values, i = _in_list(tokens, i + 3, query)
            clauses.append((field, "IN", values))
            continue
        if op not in ("=", "<", ">"):
            raise _bad(query, f"unsupported operator {op!r}")
        if op != "=" and field not in TIME_FIELDS:
            raise _bad(query, f"{op} applies to times only ({', '.join(TIME_FIELDS)})")
        clauses.append((field, op, [_unquote(tokens[i + 2])]))
        i += 3
    return clauses


def _tokens(query: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(query):
        if query[pos:].strip() == "":
            break
        match = _TOKEN.match(query, pos)
        if match is None or match.end() == pos:
            raise _bad(query, f"cannot read it from position {pos}")
        out.append(match.group("op") or match.group("quoted") or match.group("word"))
        pos = match.end()
    return out


def _in_list(tokens: list[str], i: int, query: str) -> tuple[list[str], int]:
    values: list[str] = []
    while i < len(tokens):
        token = tokens[i]
        if token == ")":
            if not values:
                raise _bad(query, "IN () lists no value")
            return values, i + 1
        if token != ",":
            values.append(_unquote(token))
        i += 1
    raise _bad(query, "IN list without ')'")


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        return token[1:-1]
    if token in ("(", ")", ",", "=", "<", ">"):
        raise bad_request(f"expected a value, found {token!r}", "query", token)
    return token


def _bad(query: str, why: str) -> Exception:
    return bad_request(f"invalid search query: {why}", "query", query)


def _matches(task: dict[str, Any], summary: dict[str, Any], clauses: list[Clause]) -> bool:
    for field, op, values in clauses:
        if field in TIME_FIELDS:
            actual = int(task.get(field) or 0)
            try:
                wanted = [int(v) for v in values]
            except ValueError:
                return False
            if (op == "<" and not actual < wanted[0]) or (op == ">" and not actual > wanted[0]) \
                    or (op in ("=", "IN") and actual not in wanted):
                return False
        elif str(summary.get(field, "")) not in values:
            return False
    return True


def summary_of(task: dict[str, Any]) -> dict[str, Any]:
    """OSS Conductor's ``TaskSummary(Task)``."""
    summary: dict[str, Any] = {
        "taskId": task["taskId"], "taskDefName": task["taskDefName"], "taskType": task["taskType"],
        "taskReferenceName": task.get("referenceTaskName"), "workflowId": task["workflowInstanceId"],
        "workflowType": task.get("workflowType"), "workflowPriority": int(task.get("workflowPriority") or 0),
        "correlationId": task.get("correlationId"), "status": task["status"],
        "reasonForIncompletion": task.get("reasonForIncompletion"),
        "queueWaitTime": int(task.get("queueWaitTime") or 0),
        "domain": task.get("domain"), "input": json.dumps(task.get("inputData") or {}, separators=(",", ":")),
        "output": json.dumps(task.get("outputData") or {}, separators=(",", ":")),
        **{field: _time(int(task.get(field) or 0)) for field in TIME_FIELDS},
    }
    if int(task.get("endTime") or 0) > 0:
        summary["executionTime"] = int(task["endTime"]) - int(task.get("startTime") or 0)
    return {k: v for k, v in summary.items() if v is not None}


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class _Visibility:
    """Who sees a task: whoever may execute its type (as a worker would) or read its workflow."""

    def __init__(self, st: SandboxState, principal: Principal) -> None:
        self.st, self.principal = st, principal
        self._types: dict[tuple[str, str | None], bool] = {}
        self._workflows: dict[str, bool] = {}

    def __call__(self, task: dict[str, Any]) -> bool:
        if self.principal.has_any("WORKFLOW_MANAGER", "UNRESTRICTED_WORKER"):
            return True
        key = (str(task["taskDefName"]), task.get("domain"))
        if key not in self._types:
            self._types[key] = self._may_execute(*key)
        if self._types[key]:
            return True
        workflow_id = str(task["workflowInstanceId"])
        if workflow_id not in self._workflows:
            self._workflows[workflow_id] = self._may_read_workflow(workflow_id)
        return self._workflows[workflow_id]

    def _may_execute(self, task_type: str, domain: str | None) -> bool:
        if "WORKER" not in self.principal.roles:
            return False
        definition = engine.task_def(self.st.db, task_type)
        if definition.get("createdBy") == self.principal.user_id:
            return True
        targets = [("TASK_DEF", task_type), *tag_targets(definition.get("tags"))]
        if domain:
            targets.append(("DOMAIN", domain))
        return has_grant(self.st.db, self.principal, targets, "EXECUTE")

    def _may_read_workflow(self, workflow_id: str) -> bool:
        workflow = engine.load_workflow(self.st.db, workflow_id)
        if workflow is None:
            return False
        definition = workflow.get("workflowDefinition") or {}
        return (workflow.get("createdBy") == self.principal.user_id
                or definition.get("createdBy") == self.principal.user_id
                or has_grant(self.st.db, self.principal, [("WORKFLOW_DEF", workflow["workflowName"]),
                                                          *tag_targets(definition.get("tags"))], None))


def _sort_keys(request: Request) -> list[tuple[str, bool]]:
    keys: list[tuple[str, bool]] = []
    for raw in request.query_params.getlist("sort"):
        for part in (p.strip() for p in raw.split(",")):
            if not part:
                continue
            field, _, order = part.partition(":")
            if field not in TEXT_FIELDS + TIME_FIELDS or order.upper() not in ("", "ASC", "DESC"):
                raise bad_request(f"cannot sort by {part!r}", "sort", raw)
            keys.append((field, order.upper() == "DESC"))
    return keys


# Roles that may search tasks. The Orkes docs give search to ADMIN, USER and USER_READ_ONLY
# ("Read Only User: read-only permissions over the workflows and tasks", access-control-and-security/
# users-and-groups); WORKER is "poll and update tasks" only (docs/getting-started/concepts/access-control).
SEARCH_ROLES = ("USER", "USER_READ_ONLY")


async def search_tasks(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    if not principal.has_any(*SEARCH_ROLES) and not (st.config.worker_search and "WORKER" in principal.roles):
        raise forbidden("You don't have permissions to search tasks")
    start = max(query_int(request, "start", 0), 0)
    size = min(max(query_int(request, "size", 100), 0), MAX_PAGE)
    clauses = parse_query(request.query_params.get("query") or "")
    free_text = (request.query_params.get("freeText") or "*").strip()
    sort = _sort_keys(request)
    # The indexed columns narrow the scan; every clause is then checked on the summary.
    sql, params = "SELECT body FROM tasks", []
    where = []
    for field, op, values in clauses:
        column = INDEXED_COLUMNS.get(field)
        if column is not None and op in ("=", "IN"):
            where.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
    if where:
        sql += " WHERE " + " AND ".join(where)
    visible = _Visibility(st, principal)
    hits: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for row in st.db.all(sql + " ORDER BY rowid", params):
        task = loads_obj(str(row["body"]))
        summary = summary_of(task)
        if not _matches(task, summary, clauses) or not visible(task):
            continue
        if free_text not in ("", "*") and free_text.lower() not in json.dumps(summary).lower():
            continue
        hits.append((task, summary))
    for field, descending in reversed(sort):  # stable sorts, last key first
        hits.sort(key=functools.partial(_sortable, field=field), reverse=descending)
    return ok({"totalHits": len(hits), "results": [summary for _, summary in hits[start:start + size]]})


def _sortable(hit: tuple[dict[str, Any], dict[str, Any]], field: str) -> tuple[int, str]:
    task, summary = hit
    if field in TIME_FIELDS:
        return int(task.get(field) or 0), ""
    return 0, str(summary.get(field, ""))


ROUTES = [
    Route("/api/tasks/search", search_tasks, methods=["GET"]),
]
