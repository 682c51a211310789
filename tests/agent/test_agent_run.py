"""``provision run`` and ``run --supervise`` start a credential agent by default: the workers, and the
children they spawn, hold only a local key; ``--no-agent`` keeps the real one."""

from __future__ import annotations

import signal
import sys

import pytest

from tests.agent.conftest import APP, PY_WORKER, AgentLab, environ_of
from tests.workers.launch_helpers import PROVISION, alive, wait_for

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", [[], ["--supervise", "--replicas", "2"]], ids=["run", "run --supervise"])
def test_no_worker_process_nor_its_child_holds_the_key_id_or_secret_and_the_workflow_completes(
        lab: AgentLab, mode: list[str]) -> None:
    key = lab.make_app()
    pids_file = lab.tmp / "pids"
    lab.env["PIDS_FILE"] = str(pids_file)
    provision = lab.spawn([str(PROVISION), "run", "--app", APP, "--store", lab.store, *mode, "--",
                           sys.executable, str(PY_WORKER)])
    expected = 2 if mode else 1
    wait_for(lambda: pids_file.exists() and len(pids_file.read_text().split()) == 2 * expected, timeout=30,
             what="the workers and their children")

    workflow = lab.run_workflow("Ada")

    assert workflow["status"] == "COMPLETED", workflow
    assert workflow["output"] == {"greeting": "Hello, Ada"}
    pids = [int(p) for p in pids_file.read_text().split()]
    local_keys = set()
    for pid in pids:
        environ = environ_of(pid)
        assert key.key_id.encode() not in environ
        assert key.secret.get_secret_value().encode() not in environ
        variables = dict(v.split(b"=", 1) for v in environ.split(b"\0") if b"=" in v)
        assert variables[b"CONDUCTOR_SERVER_URL"].startswith(b"http://127.0.0.1:")
        local_keys.add(variables[b"CONDUCTOR_AUTH_KEY"])
    assert len(local_keys) == expected  # one local key per worker process, shared with its children
    provision.send_signal(signal.SIGTERM)
    _, err = provision.communicate(timeout=30)
    assert f"provision: agent: serving {APP} (key {key.key_id})" in err
    assert key.secret.get_secret_value() not in err
    assert not any(alive(pid) for pid in pids[:1])


def test_no_agent_gives_the_worker_the_real_key(lab: AgentLab) -> None:
    key = lab.make_app()
    result = lab.provision("run", "--no-agent", "--app", APP, "--store", lab.store, "--", sys.executable, "-c",
                           "import os; print(os.environ['CONDUCTOR_AUTH_KEY'], os.environ['CONDUCTOR_SERVER_URL'])")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [key.key_id, lab.sandbox.url]
    assert "provision: agent:" not in result.stderr


def test_run_through_the_agent_exits_with_the_command_s_status(lab: AgentLab) -> None:
    lab.make_app()
    result = lab.provision("run", "--app", APP, "--store", lab.store, "--", sys.executable, "-c",
                           "import os, sys; print(os.environ['CONDUCTOR_AUTH_KEY']); sys.exit(7)")
    assert result.returncode == 7, result.stderr
    assert result.stdout.startswith("local-")
