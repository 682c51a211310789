"""Hand-back for another SDK: the JavaScript template, built for real, served by the agent of
'provision worker run'. SIGKILLed while it holds a task (the server's default timeouts), its task is
completed by its replacement within seconds, and no task search is made."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.workers.launch_helpers import wait_for
from tests.workers.runtimes.e2e import APP, Lab, init_and_build, lab, provision_app

LANGUAGE = "javascript"
pytestmark = pytest.mark.slow
__all__ = ["lab"]

EXECUTE = "execute: async (task) => {\n"
# The first "hold" task writes a marker and never answers; the replacement worker answers it.
HOLDING = """    if (task.inputData?.name === "hold" && !fs.existsSync("held")) {
      fs.writeFileSync("held", String(process.pid));
      await new Promise(() => {});
    }
"""


def test_a_javascript_worker_killed_holding_a_task_has_it_completed_by_its_replacement(lab: Lab) -> None:
    init_and_build(lab)
    source = (lab.project / "worker.js").read_text()
    assert source.count(EXECUTE) == 1
    source = source.replace(EXECUTE, EXECUTE + HOLDING)
    (lab.project / "worker.js").write_text('import fs from "node:fs";\n' + source)
    provision_app(lab)
    run = lab.start_worker()
    wait_for(lambda: run.events("started") or run.proc.poll() is not None, 60, "the worker to start")
    mark = len(lab.sandbox.requests())
    with lab.admin() as admin:
        workflow_id = admin.start_workflow("greetings", {"name": "hold"})
    held = lab.project / "held"
    wait_for(held.exists, 60, "the worker holding the task")
    worker_pid = run.events("started")[0]["pid"]

    killed_at = time.monotonic()
    os.killpg(worker_pid, signal.SIGKILL)
    with lab.admin() as admin:
        # The default response timeout is 600 s: without the hand-back it would still be RUNNING.
        deadline = time.monotonic() + 60
        workflow = admin.get_workflow(workflow_id)
        while workflow.get("status") == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.2)
            workflow = admin.get_workflow(workflow_id)
    took = time.monotonic() - killed_at

    assert workflow["status"] == "COMPLETED", run.output()[-4000:]
    assert workflow["output"] == {"greeting": "Hello, hold"}
    assert [t.get("retryCount", 0) for t in workflow["tasks"]] == [0]  # handed back, not timed out and retried
    assert [e for e in run.events("requeued") if workflow["tasks"][0]["taskId"] in e["taskIds"]]
    assert not [r for r in lab.sandbox.requests()[mark:] if "/search" in str(r.get("path"))]
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=60) == 0
    print(f"hand-back (javascript): task completed {took:.2f}s after SIGKILL ({APP})")
