"""On a server that refuses task search to a WORKER key (the Orkes docs; the default sandbox), a worker
stopped under 'provision worker run --no-agent' cannot have its task handed back by the supervisor: it
says so in one line, names the way that works (the agent, the default), and leaves the task to its
timeout. With the agent, the hand-back needs no search: tests/agent/test_agent_handback.py."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.orkes import serverfacts
from orkes_provision.orkes.client import OrkesClient
from tests.cli import process_group
from tests.rotation.helpers import PROVISION, WorkerApp
from tests.rotation.test_rotate_held_task import TASK, WORKER, env, events, held, until, workflow

pytestmark = pytest.mark.slow
__all__ = ["env", "workflow"]


def test_worker_run_on_a_strict_server_says_in_one_line_why_the_task_waits(
        admin: OrkesClient, worker_app: Callable[..., WorkerApp], workflow: str, env: dict[str, str],
        tmp_path: Path) -> None:
    store = EnvFileStore(tmp_path / "worker.env")
    app = worker_app([store], tasks=(TASK,))
    project = tmp_path / "project"
    project.mkdir()
    (project / "worker.py").write_text(WORKER)
    (project / "orkes-provision.toml").write_text(
        f'[application]\nname = "{app.name}"\ngrants = ["{TASK}"]\nstore = "{store.spec}"\n\n'
        f'[[workers]]\nname = "slow"\nruntime = "python"\ncommand = ["{sys.executable}", "worker.py"]\n'
        f'tasks = ["{TASK}"]\n')
    Path(env["HOLD_FILE"]).touch()
    log = tmp_path / "run.log"
    with process_group([PROVISION, "--json", "worker", "run", "slow", "--no-preflight", "--no-agent"], env=env,
                       cwd=project, log=log) as run:
        workflow_id = admin.start_workflow(workflow, {})
        [holding] = until(lambda: held(env), 60, "the worker to hold the task")
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=30) == 0
    warnings = [e for e in events(log) if e["event"] == "warning" and "search" in e["message"]]
    assert len(warnings) == 1, events(log)
    assert warnings[0]["message"].startswith("this server does not let a WORKER key search tasks")
    assert "credential agent" in warnings[0]["message"]
    assert not [e for e in events(log) if e["event"] == "requeued"]
    [task] = admin.get_workflow(workflow_id)["tasks"]
    assert (task["status"], task["workerId"]) == ("IN_PROGRESS", holding["workerId"])
    # Remembered for this server: the next stop does not ask again.
    facts = (Path(env["ORKES_PROVISION_STATE_DIR"]) / "servers.json").read_text()
    assert f'"{serverfacts.WORKER_TASK_SEARCH}": {{' in facts and '"refused"' in facts
