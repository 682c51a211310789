"""A conductor-python worker for task 'greetings' that also starts a child, for the environ tests.

With ``HOLD_FILE`` set, the first task named "hold" writes its pid there and sleeps instead of
answering (a worker to kill while it holds a task); later ones are answered at once.
"""

import os
import signal
import subprocess
import sys
import time

from conductor.client.automator.task_handler import TaskHandler
from conductor.client.configuration.configuration import Configuration
from conductor.client.worker.worker_task import worker_task


@worker_task(task_definition_name="greetings", poll_interval_millis=50)
def greetings(name: str) -> dict:
    hold = os.environ.get("HOLD_FILE")
    if hold and name == "hold" and not os.path.exists(hold):  # the first worker to get it holds it
        with open(hold, "a") as out:
            out.write(f"{os.getpid()}\n")
        time.sleep(600)
    return {"greeting": f"Hello, {name}", "pid": os.getpid()}


def main() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])

    def stop(signum: int, frame: object) -> None:
        # Leave through the 'with' block, which stops the task processes, as the template does.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    pids = os.environ.get("PIDS_FILE")
    if pids:
        with open(pids, "a") as out:
            out.write(f"{os.getpid()} {child.pid}\n")
    with TaskHandler(configuration=Configuration(), scan_for_annotated_workers=True) as handler:
        handler.start_processes()
        handler.join_processes()


if __name__ == "__main__":
    main()
