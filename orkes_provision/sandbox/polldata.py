"""Poll data: which worker last polled which task queue, and when.

Every poll the sandbox lets through (batch and single, ``api_execution``) is recorded as
Conductor's ``PollData``: ``queueName`` (the task type), ``domain`` (only for a domain poll),
``workerId`` (the ``workerid`` query parameter the SDKs send; absent when a poll names none) and
``lastPollTime`` (epoch ms). One record per task type, domain and worker id, so every worker of a
queue shows, as in the Orkes UI's queue monitor. A poll refused with 403 is not recorded: on Orkes
it never gets past authorisation either.

The records live in memory: a restart forgets them, and the next poll of a running worker (every
100 ms for an SDK worker) brings its record back. At most ``MAX_RECORDS`` are kept, the least
recently polled dropped first, so a fleet of short-lived worker ids cannot grow it without bound.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

MAX_RECORDS = 10_000

_Key = tuple[str, str | None, str | None]  # task type, domain, worker id


def queue_key(task_type: str, domain: str | None) -> str:
    """The queue's name as the queue endpoints spell it: ``domain:taskType`` for a domain's queue."""
    return f"{domain}:{task_type}" if domain else task_type


class PollDataBook:
    def __init__(self, max_records: int = MAX_RECORDS) -> None:
        self.max_records = max_records
        self._lock = threading.Lock()  # the server uses one thread; Starlette's test client others
        self._records: OrderedDict[_Key, int] = OrderedDict()

    def record(self, task_type: str, domain: str | None, worker_id: str | None, now_ms: int) -> None:
        key = (task_type, domain or None, worker_id or None)
        with self._lock:
            self._records[key] = now_ms
            self._records.move_to_end(key)
            while len(self._records) > self.max_records:
                self._records.popitem(last=False)

    def for_task(self, task_type: str) -> list[dict[str, Any]]:
        """The ``PollData`` of ``task_type`` in every domain, most recent first."""
        return [r for r in self.all() if r["queueName"] == task_type]

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            items = list(reversed(self._records.items()))  # most recently polled first
        out = []
        for (task_type, domain, worker_id), when in items:
            data: dict[str, Any] = {"queueName": task_type, "lastPollTime": when}
            if domain is not None:
                data["domain"] = domain
            if worker_id is not None:
                data["workerId"] = worker_id
            out.append(data)
        return out
