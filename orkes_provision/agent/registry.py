"""Registration files: which agents serve which application on this machine, with which key.

Each running agent keeps ``state_dir()/agents/<pid>-<port>.json``: server, application, the key id
it uses, the one it refused (a bad new key), its URL and state. No secret. Rotation reads them
(as it reads the supervisors' files) to wait until every agent runs the new key before retiring
the old one; ``provision doctor`` lists them. A file whose process is gone is ignored and removed.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orkes_provision.credentials.stores.base import canonical_server
from orkes_provision.fileio import atomic_write, live_records, read_json
from orkes_provision.paths import state_dir


@dataclass(frozen=True)
class AgentRecord:
    pid: int
    server: str
    app: str
    key_id: str
    url: str
    state: str  # ready | unauthenticated | upstream-unavailable
    refused_key_id: str | None = None

    @property
    def keys_in_use(self) -> set[str]:
        return {self.key_id}

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "server": self.server, "app": self.app, "keyId": self.key_id, "url": self.url,
                "state": self.state, "refusedKeyId": self.refused_key_id}


def agents_dir() -> Path:
    return state_dir() / "agents"


def record_path(port: int) -> Path:
    return agents_dir() / f"{os.getpid()}-{port}.json"


def write_record(path: Path, record: AgentRecord) -> None:
    atomic_write(path, json.dumps(record.to_dict(), sort_keys=True).encode())


def remove_record(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def serving_agents(server: str, app: str) -> list[AgentRecord]:
    """The live local agents of ``app`` on ``server``."""
    server = canonical_server(server)
    return [record for record in live_records(agents_dir(), _read, lambda record: record.pid)
            if canonical_server(record.server) == server and record.app == app]


def _read(path: Path) -> AgentRecord | None:
    try:
        data: Any = read_json(path, None)  # under the trust rule, as the supervisors' files are
        refused = data.get("refusedKeyId")
        return AgentRecord(pid=int(data["pid"]), server=str(data["server"]), app=str(data["app"]),
                           key_id=str(data["keyId"]), url=str(data["url"]), state=str(data["state"]),
                           refused_key_id=str(refused) if refused else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
