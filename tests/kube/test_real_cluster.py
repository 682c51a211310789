"""Against a real kube-apiserver (``tests/kube/cluster.py``): what the stand-in kubectl cannot prove.

The rendered Deployment is admitted under Pod Security "restricted" and rolls out; what the YAML
says is what the API server stores.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.credentials.stores.k8s_secret import K8sSecretStore
from orkes_provision.errors import StoreError
from orkes_provision.kube import manifests
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision
from tests.kube.cluster import Cluster, cluster  # noqa: F401  (the session fixture)

SERVER = "https://conductor.example.com/api"
IMAGE = "ghcr.io/acme/greetings:1.0"
PROJECT = """\
[application]
name = "greetings-app"
grants = ["greetings"]

[[workers]]
name = "greetings"
runtime = "python"
command = ["python3", "main.py"]
replicas = 2
"""


@pytest.fixture
def namespace(cluster: Cluster) -> str:  # noqa: F811
    """A fresh namespace enforcing Pod Security "restricted", for one test."""
    return cluster.namespace(f"t-{uuid.uuid4().hex[:10]}")


def pod_of(deployment: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A bare Pod with the Deployment's pod template: Pod Security rejects a Pod at once (a Deployment's
    pods are refused later, by the ReplicaSet's attempts to create them)."""
    template = deployment["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "probe", "namespace": namespace, "labels": template["metadata"]["labels"]},
            "spec": copy.deepcopy(template["spec"])}


def worker_document(namespace: str) -> dict[str, Any]:
    return manifests.WorkerDeployment(name="greetings", namespace=namespace, app="greetings-app",
                                      worker="greetings", image=IMAGE, command=["python3", "main.py"],
                                      credentials="greetings-app-conductor", key_id="key-1").document()


def test_the_rendered_pod_is_admitted_under_restricted_and_the_old_one_was_not(
        cluster: Cluster, namespace: str) -> None:  # noqa: F811
    pod = pod_of(worker_document(namespace), namespace)
    admitted = cluster.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False)
    assert admitted.returncode == 0, admitted.stderr

    # The pod spec before Pod Security was considered: no non-root user, writable root filesystem.
    old = copy.deepcopy(pod)
    del old["spec"]["securityContext"]["runAsNonRoot"]
    del old["spec"]["securityContext"]["runAsUser"]
    refused = cluster.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(old), check=False)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr
    assert "runAsNonRoot" in refused.stderr


def test_deploy_apply_is_admitted_under_restricted_and_rolls_out(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "orkes-provision.toml").write_text(PROJECT)
    EnvFileStore(tmp_path / "worker.env").save(
        StoredKey(server=SERVER, app="greetings-app", key_id="key-1", secret=SecretStr("real-cluster-secret")))
    result = provision(["deploy", "kubernetes", "greetings", "--server", SERVER, "--image", IMAGE,
                        "--store", "env-file:worker.env", "--namespace", namespace, "--apply", "--wait",
                        "--timeout", "120s"], env={"KUBECONFIG": str(cluster.kubeconfig)}, cwd=tmp_path,
                       timeout=180)
    assert result.returncode == 0, output(result)
    assert "rollout complete" in result.stdout
    assert "Warning" not in result.stderr  # no PodSecurity warning from the API server either
    deployment = cluster.get("deployment", "greetings", namespace)
    status: dict[str, Any] = deployment["status"]  # type: ignore[assignment]
    assert (status.get("readyReplicas"), status.get("updatedReplicas")) == (2, 2)
    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    assert len(pods) == 2
    assert all(p["status"]["phase"] == "Running" for p in pods)
    assert all(p["spec"]["securityContext"]["runAsNonRoot"] is True for p in pods)
    configmap = cluster.get("configmap", "greetings-app-conductor", namespace)
    assert configmap["data"] == {"CONDUCTOR_SERVER_URL": SERVER}


def test_the_agent_sidecar_is_admitted_under_restricted_and_stored_as_a_native_sidecar(
        cluster: Cluster, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    (tmp_path / "orkes-provision.toml").write_text(PROJECT)
    EnvFileStore(tmp_path / "worker.env").save(
        StoredKey(server=SERVER, app="greetings-app", key_id="key-1", secret=SecretStr("sidecar-cluster-secret")))
    result = provision(["deploy", "kubernetes", "greetings", "--server", SERVER, "--image", IMAGE,
                        "--agent-image", "ghcr.io/acme/orkes-provision:1.0", "--store", "env-file:worker.env",
                        "--namespace", namespace, "--apply", "--json"],
                       env={"KUBECONFIG": str(cluster.kubeconfig)}, cwd=tmp_path, timeout=180)
    assert result.returncode == 0, output(result)
    assert "Warning" not in result.stderr  # no PodSecurity warning for the sidecar either
    assert json.loads(result.stdout)["agent"] is True
    deployment: dict[str, Any] = cluster.get("deployment", "greetings", namespace)
    pod = deployment["spec"]["template"]["spec"]
    # The API server kept restartPolicy: it knows native sidecars (it drops the field where it does not).
    [sidecar] = pod["initContainers"]
    assert (sidecar["name"], sidecar["restartPolicy"]) == ("orkes-agent", "Always")
    [container] = pod["containers"]
    assert all("valueFrom" not in e for e in container["env"])  # the worker reads no Secret
    assert "sidecar-cluster-secret" not in json.dumps(deployment)
    # A bare Pod with this template is admitted by Pod Security "restricted" at once.
    probe = json.dumps(pod_of(deployment, namespace))
    admitted = cluster.kubectl("create", "--dry-run=server", "-f", "-", stdin=probe, check=False)
    assert admitted.returncode == 0, admitted.stderr
    # The same sidecar with a writable root filesystem would not be: the check above can fail.
    bad = pod_of(deployment, namespace)
    del bad["spec"]["initContainers"][0]["securityContext"]["capabilities"]
    refused = cluster.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(bad), check=False)
    assert refused.returncode != 0 and 'violates PodSecurity "restricted:latest"' in refused.stderr
    # What a rotation rolls: Deployments reading the Secret through env; this one follows the file instead.
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    assert "greetings" not in K8sSecretStore(namespace, "greetings-app-conductor").deployments_to_roll()


AWKWARD = ["1e3", "0o17", "0X1F", "1_000", "yes", "on", "~", "", "0x_1f", "<<", "= x", "a: b", "- c", "#d",
           "\u2028line", "tab\there", "caf\u00e9", "\U0001f600", "'quoted'", '"double"', "\\back"]


def test_what_the_yaml_says_is_what_the_api_server_stores(cluster: Cluster, namespace: str) -> None:  # noqa: F811
    data = {f"k{i}": value for i, value in enumerate(AWKWARD)}
    document = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "awkward", "namespace": namespace},
                "data": data}
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=manifests.to_yaml(document))
    assert cluster.get("configmap", "awkward", namespace)["data"] == data

    # PyYAML's plain safe_dump is not enough: it leaves 1e3 plain, which kubectl reads as a number.
    plain = yaml.safe_dump({**document, "metadata": {"name": "plain", "namespace": namespace},
                            "data": {"k": "1e3"}})
    assert "k: 1e3" in plain
    refused = cluster.kubectl("apply", "--server-side", "-f", "-", stdin=plain, check=False)
    assert refused.returncode != 0, refused.stdout
    assert ".data.k: expected string" in refused.stderr and "1000" in refused.stderr  # 1e3 read as a number


# ----- the k8s-secret store, rotation and RBAC ------------------------------------------------------

STORE_PROJECT = """\
[application]
name = "greetings-app"
grants = ["greetings"]
store = "k8s-secret:{namespace}/greetings-creds"
"""


@pytest.fixture
def argv_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``kubectl`` first on PATH that writes its arguments to a log and runs the real one."""
    real = shutil.which("kubectl")
    assert real is not None
    bin_dir = tmp_path / "argv-bin"
    bin_dir.mkdir()
    log = tmp_path / "kubectl-argv.log"
    script = bin_dir / "kubectl"
    script.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done >> {log}\necho "--" >> {log}\n'
                      f'exec {real} "$@"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return log


def assert_never_on_argv(log: Path, *secrets: str) -> None:
    argv = log.read_text()
    assert argv.count("--\n") > 0  # kubectl did run
    for secret in secrets:
        assert secret not in argv
        assert base64.b64encode(secret.encode()).decode() not in argv


def test_the_store_creates_updates_and_reads_a_secret_with_the_secret_never_on_argv(
        cluster: Cluster, namespace: str, argv_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    store = K8sSecretStore(namespace, "greetings-creds")
    assert store.read() is None
    first, second = "first-secret-" + uuid.uuid4().hex, "second-secret-" + uuid.uuid4().hex
    store.save(StoredKey(server=SERVER, app="greetings-app", key_id="key-1", secret=SecretStr(first)))
    secret = cluster.get("secret", "greetings-creds", namespace)
    assert base64.b64decode(secret["data"]["CONDUCTOR_AUTH_SECRET"]).decode() == first  # type: ignore[index]
    store.save(StoredKey(server=SERVER, app="greetings-app", key_id="key-2", secret=SecretStr(second)))
    read = store.load(SERVER, "greetings-app")
    assert read is not None
    assert (read.key_id, read.secret.get_secret_value(), read.server) == ("key-2", second, SERVER)
    assert cluster.get("configmap", "greetings-creds", namespace)["data"] == {"CONDUCTOR_SERVER_URL": SERVER}
    stored = json.loads(cluster.kubectl("get", "secret", "greetings-creds", "-n", namespace, "-o", "json",
                                        "--show-managed-fields").stdout)
    metadata: dict[str, Any] = stored["metadata"]
    # Server-side apply: no copy of the manifest, secret included, in an annotation.
    assert "kubectl.kubernetes.io/last-applied-configuration" not in (metadata.get("annotations") or {})
    assert {f["manager"] for f in metadata["managedFields"]} == {"orkes-provision"}
    assert_never_on_argv(argv_log, first, second)


def documented_rbac() -> str:
    """The ServiceAccount, Role and RoleBinding of docs/kubernetes.md, as printed there."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    [rbac] = [b for b in blocks if "kind: Role\n" in b]
    return rbac


def test_a_service_account_with_the_documented_role_can_use_its_secret_and_nothing_else(
        cluster: Cluster, argv_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    rbac = documented_rbac()
    assert "namespace: workers" in rbac and 'resourceNames: ["greetings-creds"]' in rbac
    cluster.namespace("workers")
    cluster.kubectl("apply", "-f", "-", stdin=rbac)
    cluster.kubectl("create", "secret", "generic", "someone-elses", "-n", "workers", "--from-literal=k=other-secret")
    token = cluster.kubectl("create", "token", "greetings-provisioner", "-n", "workers").stdout.strip()
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig_for_token("greetings-provisioner", token)))

    # What the store does: create, read, update, delete.
    store = K8sSecretStore("workers", "greetings-creds")
    assert store.read() is None
    store.save(StoredKey(server=SERVER, app="greetings-app", key_id="key-1", secret=SecretStr("rbac-secret-1")))
    store.save(StoredKey(server=SERVER, app="greetings-app", key_id="key-2", secret=SecretStr("rbac-secret-2")))
    read = store.load(SERVER, "greetings-app")
    assert read is not None and (read.key_id, read.secret.get_secret_value()) == ("key-2", "rbac-secret-2")
    store.delete(SERVER, "greetings-app")
    assert store.read() is None

    # And no more: another Secret can be neither read nor written, Secrets cannot be listed.
    other = K8sSecretStore("workers", "someone-elses")
    with pytest.raises(StoreError, match=r"\(Forbidden\)") as refused:
        other.read()
    assert refused.value.hint.startswith("the current kubectl context lacks the permission")
    with pytest.raises(StoreError, match=r"\(Forbidden\)"):
        K8sSecretStore("workers", "new-one").save(
            StoredKey(server=SERVER, app="greetings-app", key_id="key-3", secret=SecretStr("rbac-secret-3")))
    for verb in (["get", "secrets", "-n", "workers"], ["get", "secret", "greetings-creds", "-n", "default"],
                 ["get", "deployments", "-n", "workers"]):
        assert cluster.kubectl(*verb, kubeconfig=Path(os.environ["KUBECONFIG"]), check=False).returncode != 0
    assert_never_on_argv(argv_log, "rbac-secret-1", "rbac-secret-2", "rbac-secret-3")


def pod_names(cluster: Cluster, namespace: str) -> set[str]:  # noqa: F811
    listing = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)
    return {p["metadata"]["name"] for p in listing["items"] if not p["metadata"].get("deletionTimestamp")}


def test_keys_rotate_updates_the_secret_and_rolls_the_deployment_before_retiring_the_old_key(
        cluster: Cluster, namespace: str, sandbox: SandboxProcess, argv_log: Path,  # noqa: F811
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    (tmp_path / "orkes-provision.toml").write_text(STORE_PROJECT.format(namespace=namespace))
    env = {**sandbox.admin_env, "KUBECONFIG": str(cluster.kubeconfig), "PATH": os.environ["PATH"]}
    created = provision(["app", "greetings-app", "--worker", "--grant", "greetings", "--register-tasks"],
                        env=env, cwd=tmp_path, timeout=120)
    assert created.returncode == 0, output(created)
    store = K8sSecretStore(namespace, "greetings-creds")
    old = store.read()
    assert old is not None
    # The sandbox is on loopback, which deploy refuses for pods; the Deployment is applied directly.
    document = manifests.WorkerDeployment(name="greetings", namespace=namespace, app="greetings-app",
                                          worker="greetings", image=IMAGE, command=["python3", "main.py"],
                                          credentials="greetings-creds", key_id=old.key_id).document()
    cluster.apply(document)
    cluster.kubectl("rollout", "status", "deployment/greetings", "-n", namespace, "--timeout=120s", timeout=150)
    pods_before = pod_names(cluster, namespace)
    assert len(pods_before) == 1

    rotated = provision(["keys", "rotate", "greetings-app", "--grace", "0s", "--switch-wait", "0", "--json"],
                        env={**env, "ORKES_PROVISION_ROLLOUT_TIMEOUT": "120"}, cwd=tmp_path, timeout=240)
    assert rotated.returncode == 0, output(rotated)
    report = json.loads(rotated.stdout)
    new = store.read()
    assert new is not None and new.key_id == report["newKeyId"] != old.key_id
    assert report["deactivated"] == [old.key_id]
    deployment = cluster.get("deployment", "greetings", namespace)
    template: dict[str, Any] = deployment["spec"]["template"]  # type: ignore[index]
    assert template["metadata"]["annotations"][manifests.CHECKSUM_ANNOTATION] == \
        hashlib.sha256(new.key_id.encode()).hexdigest()
    status: dict[str, Any] = deployment["status"]  # type: ignore[assignment]
    assert status["observedGeneration"] == deployment["metadata"]["generation"] == 2  # type: ignore[index]
    assert status.get("updatedReplicas") == status.get("readyReplicas") == 1
    pods_after = pod_names(cluster, namespace)
    assert pods_after and not pods_after & pods_before  # every pod replaced, onto the new key
    assert_never_on_argv(argv_log, old.secret.get_secret_value(), new.secret.get_secret_value(),
                         sandbox.admin_secret.get_secret_value())
