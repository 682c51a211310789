"""On Kubernetes: the tasks the replaced pods held go back to the queue after the rotation's rollout.

A pod's host name is its name, and SDK workers poll under their host name by default, so the
pods a rollout replaced are the worker ids whose tasks nobody will answer. The stand-in kubectl
names pods after the pod template (``fake_kubectl.list_pods``), so a rollout replaces them.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from conductor.client.orkes_clients import OrkesClients

from orkes_provision.kube import rollout
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision
from tests.kube.conftest import Kubectl
from tests.kube.test_k8s_flow import PROJECT, STORE
from tests.kube.test_rollout import deploy
from tests.sandbox.conformance.sdk_support import sdk_clients

WORKFLOW = {"name": "greet", "version": 1, "timeoutSeconds": 3600, "schemaVersion": 2,
            "tasks": [{"name": "greetings", "taskReferenceName": "g", "type": "SIMPLE"}]}


def test_a_rollout_reports_the_pods_it_replaced_once_they_are_gone(kubectl: Kubectl) -> None:
    deploy(kubectl, "greetings", "creds", key_id="key-1")
    before = rollout.pods_of("workers", "greetings")
    assert len(before) == 1 and before[0].startswith("greetings-")

    [done] = rollout.roll_deployments("workers", ["greetings"], "key-2", timeout=30)

    assert done.replaced_pods == tuple(before)
    assert rollout.pods_of("workers", "greetings") != before
    selector = ",".join(f"{k}={v}" for k, v in sorted(_deployment(kubectl)["spec"]["selector"]["matchLabels"].items()))
    assert ["get", "pods", "-n", "workers", "-l", selector, "-o", "json"] in [c.argv for c in kubectl.calls()]


def test_a_pod_still_terminating_is_not_reported(kubectl: Kubectl, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollout, "POD_EXIT_WAIT", 1.0)
    monkeypatch.setattr(rollout, "POD_POLL", 0.2)
    deploy(kubectl, "greetings", "creds", key_id="key-1")
    [old] = rollout.pods_of("workers", "greetings")
    kubectl.set(terminating=[old])  # its process may still answer its task itself

    [done] = rollout.roll_deployments("workers", ["greetings"], "key-2", timeout=30)

    assert done.replaced_pods == ()


def test_a_resumed_rollout_onto_the_same_key_replaces_nothing(kubectl: Kubectl) -> None:
    deploy(kubectl, "greetings", "creds", key_id="key-1")
    rollout.roll_deployments("workers", ["greetings"], "key-2", timeout=30)
    [again] = rollout.roll_deployments("workers", ["greetings"], "key-2", timeout=30)
    assert (again.changed, again.replaced_pods) == (False, ())


def test_rotation_hands_the_tasks_of_the_replaced_pods_to_the_new_ones(
        sandbox: SandboxProcess, kubectl: Kubectl, tmp_path: Path) -> None:
    (tmp_path / "orkes-provision.toml").write_text(PROJECT)
    env = dict(sandbox.admin_env)
    created = provision(["app", "greetings-app", "--worker", "--grant", "greetings", "--register-tasks",
                         "--store", STORE], env=env, cwd=tmp_path)
    assert created.returncode == 0, output(created)
    deploy(kubectl, "greetings", "greetings-creds", key_id=_secret_env(kubectl)["CONDUCTOR_AUTH_KEY"], replicas=2)
    pods = rollout.pods_of("workers", "greetings")
    assert len(pods) == 2
    admin = OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret))
    admin.register_workflow_def(WORKFLOW)
    flows = [admin.start_workflow("greet", {}) for _ in range(3)]
    # Two pods each hold a task, as their SDK workers would (worker id = host name = pod name); a
    # worker elsewhere holds the third one, and must keep it.
    secret = _secret_env(kubectl)
    worker: OrkesClients = sdk_clients(sandbox.url, secret["CONDUCTOR_AUTH_KEY"], secret["CONDUCTOR_AUTH_SECRET"])
    tasks = worker.get_task_client()
    held = {pod: tasks.batch_poll_tasks("greetings", worker_id=pod, count=1)[0].task_id for pod in pods}
    elsewhere = tasks.batch_poll_tasks("greetings", worker_id="another-host", count=1)[0].task_id

    rotated = provision(["keys", "rotate", "greetings-app", "--grace", "0s", "--switch-wait", "0"], env=env,
                        cwd=tmp_path)

    assert rotated.returncode == 0, output(rotated)
    assert "handed 2 task(s) held by replaced workers back to the queue" in rotated.stdout + rotated.stderr
    for task_id in held.values():
        task = admin.get_task(task_id)
        assert (task["status"], task.get("workerId")) == ("SCHEDULED", None)
    assert admin.get_task(elsewhere)["status"] == "IN_PROGRESS"
    assert {admin.get_task(t)["workflowInstanceId"] for t in [*held.values(), elsewhere]} == set(flows)
    admin.close()


def _deployment(kubectl: Kubectl) -> dict[str, Any]:
    found = kubectl.object("Deployment", "workers", "greetings")
    assert found is not None
    return found


def _secret_env(kubectl: Kubectl) -> dict[str, str]:
    secret = kubectl.object("Secret", "workers", "greetings-creds")
    assert secret is not None
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}



def test_without_rbac_to_list_pods_the_rollout_goes_on_and_reports_no_pod(kubectl: Kubectl) -> None:
    deploy(kubectl, "greetings", "creds", key_id="key-1")
    kubectl.set(fail={"get": 'Error from server (Forbidden): pods is forbidden: User "ci" cannot list resource'})

    [done] = rollout.roll_deployments("workers", ["greetings"], "key-2", timeout=30)

    assert (done.changed, done.replaced_pods) == (True, ())
    assert kubectl.state()["rolled"] == ["greetings"]
