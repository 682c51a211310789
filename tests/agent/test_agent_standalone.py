"""``provision agent`` in the foreground: a conductor-python worker served through it completes a
workflow while neither it nor its child holds the application's key id or secret."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import httpx
import pytest

from tests.agent.conftest import APP, PY_WORKER, AgentLab, environ_of
from tests.workers.launch_helpers import PROVISION, wait_for

pytestmark = pytest.mark.slow


def _read_env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


def test_a_worker_served_by_the_standalone_agent_completes_a_workflow_without_the_key_in_any_environ(
        lab: AgentLab) -> None:
    key = lab.make_app()
    env_file = lab.tmp / "local.env"
    agent = lab.spawn([str(PROVISION), "agent", "--app", APP, "--store", lab.store, "--env-file", str(env_file),
                       "--json"])
    assert agent.stdout is not None
    text = ""
    while not text.endswith("}\n"):  # the JSON document printed once the agent listens
        line = agent.stdout.readline()
        assert line, agent.stderr.read() if agent.stderr else ""
        text += line
    started = json.loads(text)
    assert started["keyId"] == key.key_id and started["url"].startswith("http://127.0.0.1:")
    assert env_file.stat().st_mode & 0o777 == 0o600
    local = _read_env_file(env_file)
    assert local["CONDUCTOR_SERVER_URL"] == started["url"]
    assert local["CONDUCTOR_AUTH_KEY"] != key.key_id
    worker_env = {k: v for k, v in lab.env.items() if not k.startswith("CONDUCTOR_")}
    worker_env.update(local)
    worker_env["PIDS_FILE"] = str(lab.tmp / "pids")
    worker = lab.spawn([sys.executable, str(PY_WORKER)], env=worker_env)

    workflow = lab.run_workflow("Ada")

    assert workflow["status"] == "COMPLETED", workflow
    assert workflow["output"] == {"greeting": "Hello, Ada"}
    pids = [int(p) for p in wait_for(lambda: (lab.tmp / "pids").read_text().split(), what="pids")]
    assert worker.pid in pids and len(pids) == 2
    for pid in pids:
        environ = environ_of(pid)
        assert key.key_id.encode() not in environ
        assert key.secret.get_secret_value().encode() not in environ
        assert local["CONDUCTOR_AUTH_KEY"].encode() in environ
    root = started["url"].removesuffix("/api")
    health = httpx.get(root + "/health", trust_env=False)
    assert health.status_code == 200 and health.json()["state"] == "ready"
    metrics = httpx.get(root + "/metrics", trust_env=False).text
    assert "orkes_agent_polls_total" in metrics
    assert key.secret.get_secret_value() not in metrics + health.text
    agent.send_signal(signal.SIGTERM)
    _, err = agent.communicate(timeout=20)
    assert agent.returncode == 0, err
    assert key.secret.get_secret_value() not in err
    assert list((lab.tmp / "state" / "agents").glob("*.json")) == []


def test_the_agent_refuses_to_listen_anywhere_but_loopback(lab: AgentLab) -> None:
    lab.make_app()
    result = lab.provision("agent", "--app", APP, "--store", lab.store, "--listen", "0.0.0.0:0")
    assert result.returncode == 2
    assert "error: the agent listens on loopback only, not 0.0.0.0" in result.stderr
