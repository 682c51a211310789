"""A stand-in for an SDK worker, for supervisor tests: fast to start, tells what it saw.

It appends one line per event to the file named by FAKE_WORKER_LOG:
``start <key id> <pid> <replica>``, ``child <pid>``, ``stop <key id> <pid>`` and
``id <pid> <conductor-python worker id> <ORKES_PROVISION_WORKER_ID>`` ("-" when unset).
Behaviour by environment: FAKE_WORKER_CHILD=1 forks a child that sleeps (like the Python SDK's
task processes); FAKE_WORKER_IGNORE_TERM=1 ignores SIGTERM; FAKE_WORKER_EXIT=N exits with N
after FAKE_WORKER_EXIT_AFTER seconds (default 0); FAKE_WORKER_FAIL_KEY=ID exits 3 at once when
started with that key id; FAKE_WORKER_DRAIN=S takes S seconds after SIGTERM before it stops (a task
being finished), then logs ``stop``. It never runs longer than 120 s.
"""

from __future__ import annotations

import os
import signal
import sys
import time

LOG = os.environ["FAKE_WORKER_LOG"]
KEY = os.environ.get("CONDUCTOR_AUTH_KEY", "-")


def note(line: str) -> None:
    fd = os.open(LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def on_term(signum: int, frame: object) -> None:
    time.sleep(float(os.environ.get("FAKE_WORKER_DRAIN", "0")))
    note(f"stop {KEY} {os.getpid()}")
    sys.exit(0)


def main() -> None:
    if os.environ.get("FAKE_WORKER_FAIL_KEY") == KEY:
        note(f"refused {KEY} {os.getpid()}")
        sys.exit(3)
    if os.environ.get("FAKE_WORKER_IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, on_term)
    if os.environ.get("FAKE_WORKER_CHILD") == "1":
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            time.sleep(120)
            os._exit(0)
        note(f"child {pid}")
    note(f"id {os.getpid()} {os.environ.get('CONDUCTOR_WORKER_ALL_WORKER_ID', '-')} "
         f"{os.environ.get('ORKES_PROVISION_WORKER_ID', '-')}")
    note(f"start {KEY} {os.getpid()} {os.environ.get('ORKES_PROVISION_REPLICA', '-')}")
    exit_code = os.environ.get("FAKE_WORKER_EXIT")
    deadline = time.monotonic() + (float(os.environ.get("FAKE_WORKER_EXIT_AFTER", "0")) if exit_code else 120)
    while time.monotonic() < deadline:
        time.sleep(0.05)
    sys.exit(int(exit_code or 0))


if __name__ == "__main__":
    main()
