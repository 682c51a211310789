"""The whole flow against the sandbox, with the stand-in kubectl as the cluster.

``provision app --store k8s-secret:NS/NAME`` writes the key into a Secret through ``kubectl apply``
on stdin, a Deployment reads it (put there directly: ``deploy kubernetes`` refuses the loopback
sandbox's URL, which no pod could reach), and ``provision keys rotate``
writes the new key and rolls the Deployment (its checksum annotation changes) before it
deactivates the old key. No secret is ever in kubectl's argv.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision
from tests.kube.conftest import Kubectl, validate_strict
from tests.kube.test_rollout import deploy

STORE = "k8s-secret:workers/greetings-creds"
PROJECT = """\
[application]
name = "greetings-app"
grants = ["greetings"]
store = "k8s-secret:workers/greetings-creds"

[[workers]]
name = "greetings"
runtime = "python"
command = ["python3", "main.py"]
"""


def secret_values(kubectl: Kubectl) -> dict[str, str]:
    secret = kubectl.object("Secret", "workers", "greetings-creds")
    assert secret is not None
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def checksum(kubectl: Kubectl) -> str:
    deployment = kubectl.object("Deployment", "workers", "greetings")
    assert deployment is not None
    return str(deployment["spec"]["template"]["metadata"]["annotations"]["orkes-provision/key-id-checksum"])


def assert_no_secret_in_argv(kubectl: Kubectl, *secrets: str) -> None:
    argv = kubectl.argv_text()
    for secret in secrets:
        assert secret not in argv
        assert base64.b64encode(secret.encode()).decode() not in argv
    assert all(not c.leaked_env for c in kubectl.calls())


@pytest.fixture
def env(sandbox: SandboxProcess, kubectl: Kubectl, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "orkes-provision.toml").write_text(PROJECT)
    return dict(sandbox.admin_env)


def test_app_writes_the_key_into_the_secret_and_a_rerun_writes_nothing(
        sandbox: SandboxProcess, kubectl: Kubectl, env: dict[str, str], tmp_path: Path) -> None:
    card = ["app", "greetings-app", "--worker", "--grant", "greetings", "--register-tasks", "--store", STORE]
    first = provision(card, env=env, cwd=tmp_path)
    assert first.returncode == 0, output(first)
    applied = kubectl.applied()
    assert [d["kind"] for d in applied] == ["Secret", "ConfigMap"]
    for document in applied:
        validate_strict(document)
    values = secret_values(kubectl)
    configmap = kubectl.object("ConfigMap", "workers", "greetings-creds")
    assert configmap is not None
    assert configmap["data"] == {"CONDUCTOR_SERVER_URL": sandbox.url}
    credentials = Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret)
    with OrkesClient(credentials) as client:
        assert client.exchange_token(values["CONDUCTOR_AUTH_KEY"], SecretStr(values["CONDUCTOR_AUTH_SECRET"]))
    assert f"Key:         {values['CONDUCTOR_AUTH_KEY']} in Kubernetes Secret workers/greetings-creds" in first.stdout
    assert values["CONDUCTOR_AUTH_SECRET"] not in output(first)
    assert_no_secret_in_argv(kubectl, values["CONDUCTOR_AUTH_SECRET"], sandbox.admin_secret.get_secret_value())

    kubectl.clear_calls()
    second = provision([*card, "--json"], env=env, cwd=tmp_path)
    assert second.returncode == 0, output(second)
    assert json.loads(second.stdout)["changed"] is False
    assert "apply" not in kubectl.verbs()  # the stored key was read back with 'kubectl get' and still works
    assert secret_values(kubectl) == values


def test_rotation_rolls_the_deployment_and_deactivates_the_old_key_only_after_the_rollout(
        sandbox: SandboxProcess, kubectl: Kubectl, env: dict[str, str], tmp_path: Path) -> None:
    created = provision(["app", "greetings-app", "--worker", "--grant", "greetings", "--register-tasks",
                         "--store", STORE], env=env, cwd=tmp_path)
    assert created.returncode == 0, output(created)
    old = secret_values(kubectl)
    deploy(kubectl, "greetings", "greetings-creds", key_id=old["CONDUCTOR_AUTH_KEY"])
    assert checksum(kubectl) == hashlib.sha256(old["CONDUCTOR_AUTH_KEY"].encode()).hexdigest()

    # First the pods do not come up: the rotation stops before the old key is touched.
    kubectl.set(stuck=["greetings"])
    kubectl.clear_calls()
    rotate = ["keys", "rotate", "greetings-app", "--grace", "0s", "--switch-wait", "0"]
    stuck = provision(rotate, env={**env, "ORKES_PROVISION_ROLLOUT_TIMEOUT": "2"}, cwd=tmp_path)
    assert stuck.returncode == 11, output(stuck)
    assert "did not finish rolling out within 2s" in stuck.stderr
    new = secret_values(kubectl)
    assert new["CONDUCTOR_AUTH_KEY"] != old["CONDUCTOR_AUTH_KEY"]
    assert checksum(kubectl) == hashlib.sha256(new["CONDUCTOR_AUTH_KEY"].encode()).hexdigest()
    verbs = kubectl.verbs()
    assert verbs.index("apply") < verbs.index("patch") < verbs.index("rollout")
    credentials = Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret)
    with OrkesClient(credentials) as client:
        app_id = next(a.id for a in client.list_applications() if a.name == "greetings-app")
        assert {k.id: k.status for k in client.list_keys(app_id)}[old["CONDUCTOR_AUTH_KEY"]] == "ACTIVE"

    # Then they do: the rerun resumes, waits for the rollout, and retires the old key.
    kubectl.set(stuck=[])
    rerun = provision([*rotate, "--json"], env=env, cwd=tmp_path)
    assert rerun.returncode == 0, output(rerun)
    report = json.loads(rerun.stdout)
    assert report["newKeyId"] == new["CONDUCTOR_AUTH_KEY"]
    assert report["afterRotation"] == [STORE]
    assert report["deactivated"] == [old["CONDUCTOR_AUTH_KEY"]]
    assert kubectl.state()["rolled"] == ["greetings"]
    assert secret_values(kubectl) == new
    assert_no_secret_in_argv(kubectl, old["CONDUCTOR_AUTH_SECRET"], new["CONDUCTOR_AUTH_SECRET"])
