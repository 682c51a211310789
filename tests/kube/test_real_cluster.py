"""Against a real kube-apiserver (``tests/kube/cluster.py``): what the stand-in kubectl cannot prove.

The rendered Deployment is admitted under Pod Security "restricted" and rolls out; what the YAML
says is what the API server stores.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.kube import manifests
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
