"""Rotation without restart: the agent follows the key in its store; ``keys rotate`` waits for it."""

from __future__ import annotations

import json
import signal
import sys

import httpx
import pytest
from pydantic import SecretStr

from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from tests.agent.conftest import APP, PY_WORKER, AgentLab, environ_of
from tests.workers.launch_helpers import PROVISION, alive, wait_for

pytestmark = pytest.mark.slow


def _agent_root(pid: int) -> str:
    variables = dict(v.split(b"=", 1) for v in environ_of(pid).split(b"\0") if b"=" in v)
    return variables[b"CONDUCTOR_SERVER_URL"].decode().removesuffix("/api")


def _auth_failures(root: str) -> list[str]:
    metrics = httpx.get(root + "/metrics", trust_env=False).text
    return [line for line in metrics.splitlines()
            if (line.startswith("orkes_agent_requests_total") and ('"401"' in line or '"403"' in line))
            or (line.startswith("orkes_agent_upstream_auth_failures_total") and not line.endswith(" 0"))]


@pytest.mark.parametrize("mode", [["--supervise"], []], ids=["run --supervise", "run (one-shot)"])
def test_keys_rotate_under_running_workers_keeps_their_pids_shows_them_no_401_and_the_new_key_serves(
        lab: AgentLab, mode: list[str]) -> None:
    old = lab.make_app()
    pids_file = lab.tmp / "pids"
    lab.env["PIDS_FILE"] = str(pids_file)
    provision = lab.spawn([str(PROVISION), "run", "--app", APP, "--store", lab.store, *mode, "--",
                           sys.executable, str(PY_WORKER)])
    wait_for(lambda: pids_file.exists() and len(pids_file.read_text().split()) == 2, timeout=30, what="the worker")
    before = [int(p) for p in pids_file.read_text().split()]
    assert lab.run_workflow("before")["status"] == "COMPLETED"

    rotated = lab.provision("keys", "rotate", APP, "--store", lab.store, "--grace", "0s", "--switch-wait", "30",
                            timeout=90)

    assert rotated.returncode == 0, rotated.stderr
    new = lab.key()
    assert new.key_id != old.key_id
    assert f"the credential agent of {APP}" not in rotated.stderr  # no agent lagged behind
    with lab.admin() as admin:  # --grace 0s: the old key is deleted already
        app = next(a for a in admin.list_applications() if a.name == APP)
        assert old.key_id not in {k.id for k in admin.list_keys(app.id)}
    after = lab.run_workflow("after")
    assert after["status"] == "COMPLETED", after
    assert after["output"] == {"greeting": "Hello, after"}
    assert all(alive(pid) for pid in before)
    assert [int(p) for p in pids_file.read_text().split()] == before  # nothing was restarted
    assert _auth_failures(_agent_root(before[0])) == []
    provision.send_signal(signal.SIGTERM)
    _, err = provision.communicate(timeout=30)
    assert f"switched from key {old.key_id} to key {new.key_id}; workers keep running" in err
    assert old.secret.get_secret_value() not in err and new.secret.get_secret_value() not in err


def test_a_new_key_the_server_rejects_is_refused_and_the_agent_keeps_serving_with_the_old_one(
        lab: AgentLab) -> None:
    good = lab.make_app()
    lab.env["PIDS_FILE"] = str(lab.tmp / "pids")
    provision = lab.spawn([str(PROVISION), "run", "--app", APP, "--store", lab.store, "--supervise", "--",
                           sys.executable, str(PY_WORKER)])
    wait_for(lambda: (lab.tmp / "pids").exists(), timeout=30, what="the worker")
    EnvFileStore(lab.store_path).save(StoredKey(good.server, APP, "bogus-key", SecretStr("not-the-secret-123")))
    records = lab.tmp / "state" / "agents"
    wait_for(lambda: any('"refusedKeyId": "bogus-key"' in p.read_text() for p in records.glob("*.json")),
             timeout=20, what="the agent refusing the key")

    assert lab.run_workflow("still")["status"] == "COMPLETED"
    doctor = lab.provision("doctor", APP, "--store", lab.store, "--task", "greetings", "--json")
    agents = [f for f in json.loads(doctor.stdout)["findings"] if f["check"] == "agent"]
    assert len(agents) == 1 and agents[0]["warning"]
    assert f"agent pid {provision.pid} on http://127.0.0.1:" in agents[0]["message"]
    assert f"refused the new key bogus-key (the server rejects it) and serves with key {good.key_id}" \
        in agents[0]["message"]

    provision.send_signal(signal.SIGTERM)
    _, err = provision.communicate(timeout=30)
    assert "the new key bogus-key does not authenticate" in err
    assert f"keeping key {good.key_id}" in err
    assert "not-the-secret-123" not in err


def test_keys_rotate_fails_with_11_and_keeps_the_old_key_when_an_agent_cannot_switch(lab: AgentLab) -> None:
    old = lab.make_app()
    # The agent watches a copy of the store that the rotation does not write: it cannot switch.
    copy = lab.tmp / "copy.env"
    EnvFileStore(copy).save(old)
    lab.env["PIDS_FILE"] = str(lab.tmp / "pids")
    provision = lab.spawn([str(PROVISION), "run", "--app", APP, "--store", f"env-file:{copy}", "--supervise", "--",
                           sys.executable, str(PY_WORKER)])
    wait_for(lambda: (lab.tmp / "pids").exists(), timeout=30, what="the worker")

    refused = lab.provision("keys", "rotate", APP, "--store", lab.store, "--grace", "0s", "--switch-wait", "3",
                            timeout=90)

    assert refused.returncode == 11, refused.stderr
    assert f"the credential agent of {APP} (pid {provision.pid}" in refused.stderr
    assert f"still runs the old key {old.key_id}; the old key stays ACTIVE" in refused.stderr
    with lab.admin() as admin:
        app = next(a for a in admin.list_applications() if a.name == APP)
        statuses = {k.id: k.status for k in admin.list_keys(app.id)}
    assert statuses[old.key_id] == "ACTIVE"
    assert lab.run_workflow("served")["status"] == "COMPLETED"
    provision.send_signal(signal.SIGTERM)
    provision.communicate(timeout=30)
