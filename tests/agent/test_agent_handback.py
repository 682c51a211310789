"""Hand-back through the agent: a worker SIGKILLed while it holds a task (the server's default timeouts)
has that task completed by its replacement within seconds, without any task search."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from tests.agent.conftest import APP, PY_WORKER, AgentLab
from tests.workers.launch_helpers import PROVISION, wait_for

pytestmark = pytest.mark.slow


def test_a_python_worker_killed_holding_a_task_has_it_completed_by_its_replacement(lab: AgentLab) -> None:
    lab.make_app()
    hold = lab.tmp / "held"
    lab.env.update({"HOLD_FILE": str(hold), "PIDS_FILE": str(lab.tmp / "pids")})
    mark = len(lab.sandbox.requests())
    provision = lab.spawn([str(PROVISION), "run", "--app", APP, "--store", lab.store, "--supervise", "--",
                           sys.executable, str(PY_WORKER)])
    leader = int(wait_for(lambda: (lab.tmp / "pids").exists() and (lab.tmp / "pids").read_text().split(),
                          timeout=30, what="the worker")[0])
    with lab.admin() as admin:
        workflow_id = admin.start_workflow("greetings", {"name": "hold"})
    wait_for(hold.exists, timeout=30, what="the worker holding the task")

    killed_at = time.monotonic()
    os.killpg(leader, signal.SIGKILL)
    # The default response timeout is 600 s: without the hand-back it would still be RUNNING.
    workflow = lab.wait_workflow(workflow_id, timeout=30)
    took = time.monotonic() - killed_at

    assert workflow["status"] == "COMPLETED", workflow
    assert workflow["output"] == {"greeting": "Hello, hold"}
    assert [t.get("retryCount", 0) for t in workflow["tasks"]] == [0]  # handed back, not timed out and retried
    paths = [str(r.get("path")) for r in lab.sandbox.requests()[mark:]]
    assert not [p for p in paths if "/search" in p]  # no task search: a WORKER key may not search
    provision.send_signal(signal.SIGTERM)
    _, err = provision.communicate(timeout=30)
    assert "handed 1 task(s) back to the queue" in err
    print(f"hand-back: task completed {took:.2f}s after SIGKILL", file=sys.stderr)
