"""A conductor-python worker for task 'greetings' that also starts a child, for the environ tests.

With ``HOLD_FILE`` set, the task writes its id there and sleeps instead of answering (a worker
killed while it holds a task); a task whose input has ``"quick": true`` is answered at once.
"""

import os
import subprocess
import sys
import time

from conductor.client.automator.task_handler import TaskHandler
from conductor.client.configuration.configuration import Configuration
from conductor.client.worker.worker_task import worker_task


@worker_task(task_definition_name="greetings", poll_interval_millis=50)
def greetings(name: str) -> dict:
    hold = os.environ.get("HOLD_FILE")
    if hold and name == "hold":
        with open(hold, "a") as out:
            out.write(f"{os.getpid()}\n")
        time.sleep(600)
    return {"greeting": f"Hello, {name}", "pid": os.getpid()}


def main() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    pids = os.environ.get("PIDS_FILE")
    if pids:
        with open(pids, "a") as out:
            out.write(f"{os.getpid()} {child.pid}\n")
    with TaskHandler(configuration=Configuration(), scan_for_annotated_workers=True) as handler:
        handler.start_processes()
        handler.join_processes()


if __name__ == "__main__":
    main()
