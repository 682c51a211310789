"""A worker id of its own for every process a supervisor starts, so that its tasks can be told apart.

Conductor records on each polled task the ``workerid`` of the poll. SDKs default it to the host
name (conductor-python 2.0.0 ``WorkerInterface.get_identity``, Java ``Worker.getIdentity``, Go's
``os.Hostname()`` in its task runner, JavaScript ``getWorkerId``, C# ``Environment.MachineName``),
so the replicas of one host, and the old and new worker of a key switch, all look alike. Once a
supervised process has stopped, the tasks recorded under its own id are exactly the ones it left
behind, and only those may be handed to another worker (``requeue``).

How a process learns its id, per SDK:

* conductor-python reads ``CONDUCTOR_WORKER_ALL_WORKER_ID`` (``worker/worker_config.py``; the
  environment wins over the code's ``worker_id=``): the supervisor sets it.
* The Java, Go, JavaScript and C# SDKs read no variable for it. Each template's code passes
  ``ORKES_PROVISION_WORKER_ID`` on (``getIdentity()`` in Java, the poll's ``Workerid`` in Go, whose
  task runner cannot take one, ``workerID`` of a ``TaskManager`` in JavaScript, ``WorkerSettings.
  WorkerId`` in C#); ``tests/fixtures/runtime_contract.toml`` cites each SDK. A worker that keeps the
  host name never polls under the supervisor's id, so none of its tasks is ever handed on: they wait
  for their response timeout, as without a supervisor, and no task is handed out twice.

When the environment given to the worker already sets a worker id for the Python SDK (any
``conductor.worker.*worker_id`` / ``CONDUCTOR_WORKER_*WORKER_ID`` variable), that choice is kept
and the process has no id of its own.
"""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import Mapping, MutableMapping

WORKER_ID_VARIABLE = "ORKES_PROVISION_WORKER_ID"
PYTHON_SDK_VARIABLE = "CONDUCTOR_WORKER_ALL_WORKER_ID"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def supervisor_prefix() -> str:
    """``<host>-<random>``: the host keeps poll data readable, the random part tells supervisors apart."""
    host = _UNSAFE.sub("-", socket.gethostname()).strip("-")[:40] or "host"
    return f"{host}-{secrets.token_hex(4)}"


def new_worker_id(prefix: str, replica: int, serial: int) -> str:
    """The id of the ``serial``-th process started for ``replica`` by the supervisor ``prefix``."""
    return f"{prefix}-r{replica}-{serial}"


def pinned_worker_id(env: Mapping[str, str]) -> str | None:
    """The variable through which ``env`` already sets conductor-python's worker id, if any."""
    for name in sorted(env):
        lowered = name.lower()
        if lowered.startswith(("conductor.worker.", "conductor_worker_")) and lowered.endswith("worker_id"):
            return name
    return None


def assign_worker_id(env: MutableMapping[str, str], identity: str) -> str | None:
    """Give the process of ``env`` the worker id ``identity``; ``None`` when ``env`` pins its own (kept).

    ``ORKES_PROVISION_WORKER_ID`` is set either way, for worker code that passes it to its SDK.
    """
    env[WORKER_ID_VARIABLE] = identity
    if pinned_worker_id(env) is not None:
        return None
    env[PYTHON_SDK_VARIABLE] = identity
    return identity
