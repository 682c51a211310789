"""The supervisors' status files: which key each supervised worker runs, as rotation reads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from orkes_provision.workers.status import SupervisorStatus, status_dir, supervised_workers
from orkes_provision.workers.supervise import SupervisorEvent

SERVER = "http://127.0.0.1:9/api"


def event(kind: str, pid: int | None, key_id: str | None = None) -> SupervisorEvent:
    return SupervisorEvent(kind, "worker", 0, pid, "message", key_id=key_id)  # type: ignore[arg-type]


def test_the_status_follows_starts_switches_and_exits(state_dir: Path) -> None:
    status = SupervisorStatus(SERVER, "greeter")
    status.on_event(event("started", 100, "old"))
    assert [s.key_ids for s in supervised_workers(SERVER, "greeter")] == [{100: "old"}]

    status.on_event(event("key-changed", None, "new"))
    status.on_event(event("started", 101, "new"))
    assert supervised_workers(SERVER, "greeter")[0].keys_in_use == {"old", "new"}
    status.on_event(event("rotated", 100, "new"))
    assert supervised_workers(SERVER, "greeter")[0].key_ids == {101: "new"}

    status.on_event(event("started", 102, "newer"))
    status.on_event(event("error", 102))  # the newer worker failed while starting
    status.on_event(event("exited", 101))
    assert supervised_workers(SERVER, "greeter")[0].key_ids == {}

    status.close()
    assert supervised_workers(SERVER, "greeter") == []


def test_only_live_supervisors_of_that_server_and_application_count(state_dir: Path) -> None:
    mine = SupervisorStatus(SERVER + "/", "greeter")
    mine.on_event(event("started", 100, "k1"))
    # Other live supervisors (any live pid will do: the file is named by it).
    SupervisorStatus("http://127.0.0.1:10/api", "greeter", pid=os.getppid()).on_event(event("started", 200, "k2"))
    SupervisorStatus(SERVER, "other", pid=1).on_event(event("started", 300, "k3"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    stale = SupervisorStatus(SERVER, "greeter", pid=int(dead.stdout))
    stale.on_event(event("started", 400, "k4"))

    found = supervised_workers(SERVER, "greeter")

    assert [s.keys_in_use for s in found] == [{"k1"}]
    assert not stale.path.exists()  # the dead supervisor's file was removed


def test_nothing_but_pids_and_key_ids_is_written(state_dir: Path) -> None:
    status = SupervisorStatus(SERVER, "greeter")
    status.on_event(event("started", 100, "key-id-1"))

    (path,) = status_dir().iterdir()
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == {"pid": os.getpid(), "server": SERVER, "app": "greeter",
                                            "workers": [{"pid": 100, "keyId": "key-id-1"}]}
