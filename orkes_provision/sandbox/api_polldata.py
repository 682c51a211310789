"""``GET /api/tasks/queue/polldata`` and ``.../polldata/all``: who polled which queue, and when.

- ``polldata?taskType=T``: a JSON array of ``PollData`` (``queueName``, ``domain``, ``workerId``,
  ``lastPollTime``) for T in every domain, most recent first; ``[]`` when no worker polled it.
  ``taskType`` is required (400 without it).
- ``polldata/all``: as Orkes documents it (not the list of Conductor OSS), an object
  ``{"queueData": {QUEUE: {"size": N, "pollerCount": K}}, "pollData": [PollData...]}``. QUEUE is
  the task type, or ``domain:taskType`` for a domain's queue; ``size`` counts the tasks waiting in
  it; ``pollerCount`` (present when some worker polled it) the worker ids that did. The filters
  ``workerSize``/``queueSize``/``lastPollTimeSize`` with ``workerOpt``/``queueOpt``/``lastPollTimeOpt``
  (``GT`` or ``LT``) keep the queues whose poller count, size or latest poll time is greater or
  less than the number given; one without the other is a 400.

Who may read a task type's poll data: whoever may read its task definition (the roles
METADATA_MANAGER, METADATA_API, USER, WORKFLOW_MANAGER, its creator, any grant on it or on a tag
it carries), and whoever may poll it (UNRESTRICTED_WORKER, or a grant). ``polldata`` answers 403
otherwise; ``polldata/all`` leaves such queues out. Orkes's own rule is unconfirmed.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orkes_provision.sandbox import engine
from orkes_provision.sandbox.access import Principal, has_grant, tag_targets
from orkes_provision.sandbox.endpoint import caller, state_of
from orkes_provision.sandbox.http import bad_request, forbidden, ok
from orkes_provision.sandbox.polldata import queue_key
from orkes_provision.sandbox.state import SandboxState

_SEE_EVERY_QUEUE = ("METADATA_MANAGER", "METADATA_API", "USER", "WORKFLOW_MANAGER", "UNRESTRICTED_WORKER")
_FILTERS = ("worker", "queue", "lastPollTime")


def _may_see(st: SandboxState, principal: Principal, task_type: str) -> bool:
    if principal.has_any(*_SEE_EVERY_QUEUE):
        return True
    definition = engine.task_def(st.db, task_type)
    return (definition.get("createdBy") == principal.user_id
            or has_grant(st.db, principal, [("TASK_DEF", task_type), *tag_targets(definition.get("tags"))], None))


async def poll_data(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    task_type = request.query_params.get("taskType")
    if not task_type:
        raise bad_request("Required request parameter 'taskType' is not present", "taskType")
    if not _may_see(st, principal, task_type):
        raise forbidden(f"You don't have permissions to read task definition: {task_type}")
    return ok(st.poll_data.for_task(task_type))


def _filters(request: Request) -> list[tuple[str, str, int]]:
    out = []
    for name in _FILTERS:
        size, opt = request.query_params.get(f"{name}Size"), request.query_params.get(f"{name}Opt")
        if size is None and opt is None:
            continue
        if opt not in ("GT", "LT"):
            raise bad_request(f"{name}Opt must be GT or LT when {name}Size is given", f"{name}Opt", opt)
        try:
            out.append((name, opt, int(size or "")))
        except ValueError:
            raise bad_request(f"{name}Size must be an integer", f"{name}Size", size) from None
    return out


async def all_poll_data(request: Request) -> Response:
    st, principal = state_of(request), caller(request)
    filters = _filters(request)
    queues: dict[str, dict[str, Any]] = {}
    for row in st.db.all("SELECT task_def_name, domain, COUNT(*) AS n FROM tasks WHERE queued = 1 "
                         "GROUP BY task_def_name, domain"):
        name = queue_key(str(row["task_def_name"]), row["domain"])
        queues[name] = {"type": str(row["task_def_name"]), "size": int(row["n"]), "workers": set(), "last": 0}
    polls = st.poll_data.all()
    for poll in polls:
        name = queue_key(poll["queueName"], poll.get("domain"))
        queue = queues.setdefault(name, {"type": poll["queueName"], "size": 0, "workers": set(), "last": 0})
        queue["workers"].add(poll.get("workerId"))
        queue["last"] = max(queue["last"], poll["lastPollTime"])
    seen: dict[str, bool] = {}
    kept: dict[str, dict[str, Any]] = {}
    for name, queue in sorted(queues.items()):
        if queue["type"] not in seen:
            seen[queue["type"]] = _may_see(st, principal, queue["type"])
        measured = {"worker": len(queue["workers"]), "queue": queue["size"], "lastPollTime": queue["last"]}
        if seen[queue["type"]] and all(measured[f] > n if opt == "GT" else measured[f] < n for f, opt, n in filters):
            kept[name] = {"size": queue["size"], **({"pollerCount": len(queue["workers"])} if queue["workers"] else {})}
    return ok({"queueData": kept,
               "pollData": [p for p in polls if queue_key(p["queueName"], p.get("domain")) in kept]})


ROUTES = [
    Route("/api/tasks/queue/polldata", poll_data, methods=["GET"]),
    Route("/api/tasks/queue/polldata/all", all_poll_data, methods=["GET"]),
]
