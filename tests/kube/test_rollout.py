"""Rotation rollout: a new key id changes the pod template's checksum annotation and waits for the rollout."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pydantic import SecretStr

from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.k8s_secret import K8sSecretStore
from orkes_provision.errors import NotFound, VerificationFailed
from orkes_provision.kube import manifests, rollout
from tests.kube.conftest import Kubectl, load_documents

SERVER = "http://127.0.0.1:8080/api"


def deploy(kubectl: Kubectl, name: str, secret: str, key_id: str = "key-1", replicas: int = 1) -> None:
    """Put a rendered worker Deployment into the stand-in's state, as 'deploy kubernetes --apply' would.

    The CLI refuses a key for the loopback sandbox (no pod could reach it); the stand-in has no pods.
    """
    manifest = manifests.WorkerDeployment(name=name, namespace="workers", app="greetings-app", worker=name,
                                     image="ghcr.io/acme/w:1", command=["python3", "main.py"],
                                     credentials=secret, key_id=key_id, replicas=replicas).render()
    [document] = load_documents(manifest.text)
    kubectl.put(document)


def checksum_of(kubectl: Kubectl, name: str) -> str:
    obj: dict[str, Any] | None = kubectl.object("Deployment", "workers", name)
    assert obj is not None
    return str(obj["spec"]["template"]["metadata"]["annotations"][manifests.CHECKSUM_ANNOTATION])


def test_rotation_changes_the_checksum_annotation_and_waits_for_the_rollout(kubectl: Kubectl) -> None:
    deploy(kubectl, "greetings", "creds", key_id="key-1")
    assert checksum_of(kubectl, "greetings") == hashlib.sha256(b"key-1").hexdigest()
    result = rollout.rollout_after_rotation("workers", "greetings", "key-2", timeout=30)
    assert result.changed
    assert checksum_of(kubectl, "greetings") == hashlib.sha256(b"key-2").hexdigest()
    assert kubectl.state()["rolled"] == ["greetings"]
    argvs = [c.argv for c in kubectl.calls()]
    assert argvs[0][:6] == ["patch", "deployment", "greetings", "-n", "workers", "--type=merge"]
    assert argvs[1] == ["rollout", "status", "deployment/greetings", "-n", "workers", "--timeout=30s"]
    generation = kubectl.object("Deployment", "workers", "greetings")["metadata"]["generation"]  # type: ignore[index]
    assert generation == 2  # the pod template changed: Kubernetes starts new pods


def test_rolling_again_onto_the_same_key_changes_nothing(kubectl: Kubectl) -> None:
    deploy(kubectl, "greetings", "creds", key_id="key-1")
    rollout.rollout_after_rotation("workers", "greetings", "key-2", timeout=30)
    again = rollout.rollout_after_rotation("workers", "greetings", "key-2", timeout=30)
    assert not again.changed
    assert kubectl.object("Deployment", "workers", "greetings")["metadata"]["generation"] == 2  # type: ignore[index]


def test_a_rollout_that_does_not_finish_in_time_fails_verification(kubectl: Kubectl) -> None:
    deploy(kubectl, "greetings", "creds")
    kubectl.set(stuck=["greetings"])
    with pytest.raises(VerificationFailed, match="did not finish rolling out within 5s") as caught:
        rollout.rollout_after_rotation("workers", "greetings", "key-2", timeout=5)
    assert "old key stays active" in caught.value.hint


def test_a_missing_deployment_is_not_found(kubectl: Kubectl) -> None:
    with pytest.raises(NotFound, match="no Deployment ghost in namespace workers"):
        rollout.rollout_after_rotation("workers", "ghost", "key-2", timeout=5)


def test_store_rolls_exactly_the_deployments_that_read_its_secret(kubectl: Kubectl) -> None:
    deploy(kubectl, "greetings", "creds")
    deploy(kubectl, "farewells", "creds")
    deploy(kubectl, "billing", "billing-creds")
    by_hand = {"name": "w", "envFrom": [{"secretRef": {"name": "creds"}}]}
    kubectl.put({"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "by-hand", "namespace": "workers"},
                 "spec": {"template": {"spec": {"containers": [by_hand]}}}})
    store = K8sSecretStore("workers", "creds")
    assert store.deployments_to_roll() == ["by-hand", "farewells", "greetings"]
    store.save(StoredKey(server=SERVER, app="greetings-app", key_id="key-2", secret=SecretStr("new-secret")))
    rollouts = store.restart_consumers("key-2", timeout=30)
    assert [r.deployment for r in rollouts] == ["by-hand", "farewells", "greetings"]
    assert all(r.changed for r in rollouts)
    assert checksum_of(kubectl, "greetings") == hashlib.sha256(b"key-2").hexdigest()
    assert checksum_of(kubectl, "billing") == hashlib.sha256(b"key-1").hexdigest()
    assert sorted(kubectl.state()["rolled"]) == ["by-hand", "farewells", "greetings"]
    assert "new-secret" not in kubectl.argv_text()


def test_a_deployment_whose_agent_follows_the_secret_is_not_rolled_but_waited_for(kubectl: Kubectl) -> None:
    deploy(kubectl, "by-env", "creds")
    manifest = manifests.WorkerDeployment(name="with-agent", namespace="workers", app="greetings-app",
                                          worker="with-agent", image="ghcr.io/acme/w:1", command=["python3"],
                                          credentials="creds", key_id="key-1", agent_image="ghcr.io/acme/a:1").render()
    [document] = load_documents(manifest.text)
    kubectl.put(document)
    store = K8sSecretStore("workers", "creds")
    assert store.deployments_to_roll() == ["by-env"]
    store.agent_refresh_wait = 0  # the wait for kubelet is its own; here only who is waited for
    store.save(StoredKey(server=SERVER, app="greetings-app", key_id="key-2", secret=SecretStr("new-secret")))
    store.after_rotation(StoredKey(server=SERVER, app="greetings-app", key_id="key-2", secret=SecretStr("new-secret")))
    assert sorted(kubectl.state()["rolled"]) == ["by-env"]
    assert store.followers == ["with-agent"]
    assert rollout.deployments_following_secret("workers", "billing-creds") == []
