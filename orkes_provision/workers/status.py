"""Which keys supervised workers run with, so that rotation never deactivates a key still in use.

A supervisor (``provision run --supervise``, ``provision worker run``) keeps one small file,
``state_dir()/workers/<supervisor pid>.json``: server, application, and the key id of each worker
process it runs (during a switch, the old and the new one). Key ids and pids only, no secret.
It is rewritten atomically on every start, exit and switch, and removed when the supervisor
stops; a file whose supervisor is no longer alive is ignored (and removed) by readers.

Rotation reads it after its switch wait: a supervised worker still on an old key means the
switch failed (the new worker would not start, say), and the old key must stay ACTIVE.
Supervisors on other machines are not visible here; the switch wait covers them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orkes_provision.credentials.stores.base import canonical_server
from orkes_provision.fileio import live_records, read_json, write_state
from orkes_provision.paths import state_dir

log = logging.getLogger(__name__)


class _Event(Protocol):
    """What this module needs of a ``supervise.SupervisorEvent``."""

    @property
    def kind(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def key_id(self) -> str | None: ...


@dataclass(frozen=True)
class SupervisedWorkers:
    supervisor_pid: int
    server: str
    app: str
    key_ids: dict[int, str]  # worker pid -> key id

    @property
    def keys_in_use(self) -> set[str]:
        return set(self.key_ids.values())


def status_dir() -> Path:
    return state_dir() / "workers"


class SupervisorStatus:
    """Kept by one supervisor: feed it every event (``on_event``) and ``close`` it at the end."""

    def __init__(self, server: str, app: str, pid: int | None = None) -> None:
        self.server = canonical_server(server)
        self.app = app
        self.pid = os.getpid() if pid is None else pid
        self.path = status_dir() / f"{self.pid}.json"
        self._workers: dict[int, str] = {}

    def on_event(self, event: _Event) -> None:
        before = dict(self._workers)
        if event.kind == "started" and event.pid is not None and event.key_id is not None:
            self._workers[event.pid] = event.key_id
        elif event.kind in ("exited", "rotated", "error") and event.pid is not None:
            # exited: the process is gone; rotated: the pid is the old worker, now stopped;
            # error: the pid (if any) is a new worker that failed while starting.
            self._workers.pop(event.pid, None)
        elif event.kind == "stopped":
            self._workers.clear()
        if self._workers != before or not self.path.exists():
            try:
                self._write()
            except OSError as err:
                # Never let bookkeeping stop a supervisor; rotation then relies on its wait alone.
                log.warning("cannot write %s: %s", self.path, err.strerror or err)

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _write(self) -> None:
        data = {"pid": self.pid, "server": self.server, "app": self.app,
                "workers": [{"pid": pid, "keyId": key_id} for pid, key_id in sorted(self._workers.items())]}
        write_state(self.path, json.dumps(data, sort_keys=True).encode())


def supervised_workers(server: str, app: str) -> list[SupervisedWorkers]:
    """The live local supervisors of ``app`` on ``server`` and the keys their workers use."""
    server = canonical_server(server)
    return [entry for entry in live_records(status_dir(), _read, lambda entry: entry.supervisor_pid)
            if entry.server == server and entry.app == app]


def _read(path: Path) -> SupervisedWorkers | None:
    try:
        data: Any = read_json(path, None)
        workers = {int(w["pid"]): str(w["keyId"]) for w in data["workers"]}
        return SupervisedWorkers(supervisor_pid=int(data["pid"]), server=str(data["server"]), app=str(data["app"]),
                                 key_ids=workers)
    except (OSError, ValueError, KeyError, TypeError):
        return None




@dataclass(frozen=True)
class KeyHolder:
    """A local process whose environment holds a key id (a worker still on that key)."""

    pid: int
    command: str
    key_id: str


def processes_with_key(key_ids: Iterable[str]) -> list[KeyHolder]:
    """The local processes whose environment has one of ``key_ids`` as a whole value (CONDUCTOR_AUTH_KEY=...).

    Read from ``/proc/PID/environ`` where this user may read it (their own processes; every one for
    root); this process and its ancestors (the shell that started the rotation) are not counted.
    Elsewhere than Linux: none found. A worker whose supervisor was SIGKILLed is found this way.
    """
    wanted = {k.encode() for k in key_ids if k}
    proc = Path("/proc")
    if not wanted or not proc.is_dir():
        return []
    skip = _ancestors()
    found: list[KeyHolder] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            environ = (entry / "environ").read_bytes()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip().decode(errors="replace")
        except OSError:
            continue
        for variable in environ.split(b"\0"):
            value = variable.partition(b"=")[2]
            if value in wanted:
                found.append(KeyHolder(int(entry.name), command[:120], value.decode()))
                break
    return sorted(found, key=lambda h: h.pid)


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids
