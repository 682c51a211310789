"""Workers die with their supervisor, even a SIGKILLed one, and so do the processes they started (issue 20).

Before, a worker outlived a killed supervisor and kept the old key after a rotation. Now the kernel's
parent-death signal ends the worker, and the lifeline (``workers/lifeline.py``) its process group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SUPERVISOR = r"""
import os, sys
from orkes_provision.workers.supervise import Supervisor
out = sys.argv[1]
command = ["sh", "-c", f"sleep 300 & echo $! > {out}/child; echo $$ > {out}/worker; wait"]
class Key:
    key_id = "k"
Supervisor(command, lambda key: {"PATH": os.environ["PATH"]}, initial_key=Key()).run()
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")  # a zombie no one has reaped yet is dead too


def _read_pid(path: Path) -> int:
    for _ in range(300):
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


def test_a_sigkilled_supervisor_takes_its_worker_and_the_workers_children_with_it(tmp_path: Path) -> None:
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(tmp_path)], start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker, child = _read_pid(tmp_path / "worker"), _read_pid(tmp_path / "child")
    try:
        assert not _gone(worker) and not _gone(child)
        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait(timeout=30)
        for _ in range(300):  # bounded: the lifeline sends SIGTERM at once
            if _gone(worker) and _gone(child):
                break
            time.sleep(0.05)
        assert _gone(worker), "the worker outlived its supervisor"
        assert _gone(child), "the worker's child outlived the supervisor"
    finally:
        for pid in (worker, child):
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
