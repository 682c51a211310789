"""Hand the tasks a stopped worker still held to the next poll, instead of leaving them to time out.

A polled task stays ``IN_PROGRESS`` under the worker's id until that worker answers; when the
worker is gone, nobody else gets it before ``responseTimeoutSeconds`` (600 s by default) has
passed, and then only as a retry, after ``retryDelaySeconds`` (60 s by default). SDK workers do
not finish their tasks on SIGTERM (conductor-python dies at once), so every stop of a worker, for
a key rotation or a crash, would leave its tasks waiting that long.

Once the process has stopped (no update of it can still arrive), ``requeue_held_tasks`` finds the
tasks recorded under its worker id and sends each one an ``IN_PROGRESS`` update with
``callbackAfterSeconds`` 0 (``OrkesClient.return_task_to_queue``). Conductor's rule for such an
update of a worker task (conductor-oss ``WorkflowExecutorOps.updateTask``): status back to
``SCHEDULED``, worker id cleared, queue message postponed by ``callbackAfterSeconds``, i.e. due
now; the same attempt goes on, so no retry is counted and no retry delay applies. Orkes is built
on Conductor and serves the same ``POST /api/tasks`` (its OpenAPI document); that it keeps this
rule is what the sandbox assumes, not something the Orkes documents state.

Finding them needs task search, which the Orkes docs give to ADMIN, USER and USER_READ_ONLY, not to
WORKER: with a worker's own key on such a server, the search answers 403 and ``RequeueImpossible``
says so in one line (remembered per server in ``serverfacts``, so later stops do not ask again).
Whoever learnt the task ids another way (the credential agent sees every poll) passes them as
``task_ids`` and no search is made. Task search answers summaries without the worker id, so the search asks for the
``IN_PROGRESS`` tasks of the worker's task types and each one is read (``GET /api/tasks/{id}``)
to see who holds it. Orkes answers search from an index that is updated asynchronously, so a task
polled a moment before the stop may not show yet: callers search again a few seconds later
(``Supervisor`` does). Only ids that belonged to the stopped process alone may be given here
(``identity``): a shared id (the host name) would hand out tasks another worker is running.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orkes_provision.credentials.stores.base import HeldKey
from orkes_provision.errors import PermissionDenied
from orkes_provision.orkes import serverfacts
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials, app_subject
from orkes_provision.orkes.urls import normalize_server_url

PAGE_SIZE = 100
MAX_CANDIDATES = 1000  # bounds the reads of one pass; the next pass takes the rest
# Names that can stand in the query unquoted; others are matched on the answers instead.
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


# The key to requeue with is the worker's own (a ``StoredKey``), which may execute its tasks.
RequeueKey = HeldKey


class RequeueImpossible(PermissionDenied):
    """The key may not search tasks here, and no task ids were known: the held tasks wait for their timeout."""

    default_hint = ("run the worker under the credential agent ('provision run' starts one), which sees every "
                    "poll and hands back a stopped worker's tasks without search")


SEARCH_REFUSED = ("this server does not let a WORKER key search tasks, so the tasks a stopped worker held "
                  "wait for their response timeout")


@dataclass
class RequeueReport:
    """What one pass did: tasks read, and the ids of the tasks handed back to the queue."""

    worker_ids: list[str]
    examined: int = 0
    requeued: list[str] = field(default_factory=list)
    more: bool = False  # more candidates than one pass reads

    def to_dict(self) -> dict[str, Any]:
        return {"workerIds": self.worker_ids, "examined": self.examined, "requeued": self.requeued,
                "more": self.more}


def held_query(task_types: Sequence[str]) -> str:
    """The search for candidates: ``IN_PROGRESS`` tasks, of ``task_types`` when they can be named."""
    types = sorted(set(task_types))
    if types and all(_PLAIN_NAME.match(t) for t in types):
        return f"status IN (IN_PROGRESS) AND taskType IN ({', '.join(types)})"
    return "status IN (IN_PROGRESS)"


def requeue_held_tasks(client: OrkesClient, worker_ids: Iterable[str], task_types: Sequence[str] = (), *,
                       task_ids: Iterable[str] | None = None, worker_key: bool = False) -> RequeueReport:
    """Return to the queue every ``IN_PROGRESS`` task (of ``task_types``, if given) held under ``worker_ids``.

    Call it only after the processes behind those ids have stopped. ``task_ids``, when known (the
    tasks those workers polled), are checked one by one and no search is made. ``worker_key``: the
    client holds a worker's own key, whose search a server may refuse (``RequeueImpossible``).
    Raises ``ProvisionError`` when the search, a read or an update fails (a task the worker itself
    completed meanwhile is no failure: it is no longer ``IN_PROGRESS`` when read).
    """
    ids = set(worker_ids)
    report = RequeueReport(worker_ids=sorted(ids))
    if not ids:
        return report
    candidates = list(dict.fromkeys(task_ids)) if task_ids is not None else _search_held(client, task_types, report,
                                                                                          worker_key=worker_key)
    for task_id in candidates[:MAX_CANDIDATES]:
        task = client.get_task(task_id)
        report.examined += 1
        if task.get("status") != "IN_PROGRESS" or task.get("workerId") not in ids:
            continue
        client.return_task_to_queue(str(task["workflowInstanceId"]), task_id)
        report.requeued.append(task_id)
    return report


def _search_held(client: OrkesClient, task_types: Sequence[str], report: RequeueReport, *,
                 worker_key: bool) -> list[str]:
    server = client.server
    if worker_key and serverfacts.lookup(server, serverfacts.WORKER_TASK_SEARCH) == "refused":
        raise RequeueImpossible(SEARCH_REFUSED)
    wanted = set(task_types)
    query = held_query(task_types)
    candidates: list[str] = []
    start = 0
    while len(candidates) < MAX_CANDIDATES:
        try:
            total, page = client.search_tasks(query, start=start, size=PAGE_SIZE)
        except PermissionDenied as err:
            if not worker_key:
                raise
            serverfacts.record(server, serverfacts.WORKER_TASK_SEARCH, "refused", source="requeue")
            raise RequeueImpossible(SEARCH_REFUSED) from err
        candidates.extend(str(s["taskId"]) for s in page if isinstance(s.get("taskId"), str)
                          and (not wanted or s.get("taskDefName") in wanted or s.get("taskType") in wanted))
        start += len(page)
        if not page or start >= total:
            break
    else:
        report.more = True
    return candidates


def executable_tasks(client: OrkesClient, app_id: str) -> list[str]:
    """The task definitions application ``app_id`` holds EXECUTE on: the types its workers poll."""
    granted = client.get_user_permissions(app_subject(app_id).id)
    return sorted({g.target.id for g in granted
                   if g.target.type == "TASK_DEF" and "EXECUTE" in {a.upper() for a in g.access}})


def requeue_with_key(key: RequeueKey, worker_ids: Iterable[str], task_types: Sequence[str] = (), *,
                     timeout: float = 5.0) -> RequeueReport:
    """``requeue_held_tasks`` as the application of ``key`` (a worker may read and update its own tasks)."""
    # The http/https policy was applied when the key's server was chosen; only the form matters here.
    server = normalize_server_url(key.server, insecure_http=True)
    credentials = Credentials(server=server, key_id=key.key_id.strip(), secret=key.secret)
    # Short and few retries: a supervisor waits for this between stopping one worker and the next step.
    with OrkesClient(credentials, timeout=timeout, max_retries=1) as client:
        return requeue_held_tasks(client, worker_ids, task_types, worker_key=True)
