"""Whether a worker process has polled: the proof a rotated-in worker works before the old one stops.

Conductor records for each task queue the last poll of each worker id (``GET
/api/tasks/queue/polldata``, which an application may read for the tasks it executes). Each
supervised process polls under an id of its own (``identity``), so a poll under that id, read
with the new key, proves the new process reached the server and authenticated: no SDK exits on a
key it cannot use, so being alive proves nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from orkes_provision.credentials.stores.base import HeldKey
from orkes_provision.errors import ProvisionError
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.orkes.urls import normalize_server_url


def has_polled(key: HeldKey, worker_id: str, task_types: Sequence[str], *, timeout: float = 5.0) -> bool:
    """True when the poll data of one of ``task_types`` shows a poll under ``worker_id``.

    Read with ``key`` itself; a key that cannot read it (does not authenticate) answers False.
    """
    server = normalize_server_url(key.server, insecure_http=True)  # the policy was applied when it was chosen
    credentials = Credentials(server=server, key_id=key.key_id.strip(), secret=key.secret)
    try:
        with OrkesClient(credentials, timeout=timeout, max_retries=0) as client:
            return any(p.worker_id == worker_id for task in task_types for p in client.get_poll_data(task))
    except ProvisionError:
        return False
