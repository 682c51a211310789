"""Rollouts: move the Deployments that read a Secret onto a new key, and wait for them.

A pod reads its Secret only when it starts, so a rotation changes an annotation of the pod
template (the SHA-256 of the key id, never the secret) and waits for the rollout to finish
before the old key is deactivated.

The pods a rollout replaced are reported once they are gone (``Rollout.replaced_pods``): a pod's
name is its host name, which SDK workers use as their worker id by default, so the tasks a
replaced pod held when it was stopped can be handed to the new pods (``rotation`` does).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from orkes_provision.errors import NotFound, StoreError, VerificationFailed
from orkes_provision.kube.kubectl import first_line, get_object, kubectl, kubectl_failure, parse_json
from orkes_provision.kube.manifests import CHECKSUM_ANNOTATION, check_namespace, check_object_name, key_id_checksum

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rollout:
    """A Deployment moved to a key: ``changed`` when its pods were replaced for it."""

    namespace: str
    deployment: str
    checksum: str
    changed: bool
    replaced_pods: tuple[str, ...] = ()  # pods of before the rollout that are gone since (their names)

    def to_dict(self) -> dict[str, object]:
        return {"namespace": self.namespace, "deployment": self.deployment, "keyIdChecksum": self.checksum,
                "changed": self.changed, "replacedPods": list(self.replaced_pods)}


def set_key_checksum(namespace: str, deployment: str, key_id: str) -> Rollout:
    """Set the pod template's key-id checksum annotation; a changed pod template rolls the pods.

    A merge patch touches only that annotation. The patch holds a hash of the key id, never the
    secret, so it may travel in argv. Setting the value it already has changes nothing, which
    makes a resumed rotation harmless.
    """
    check_namespace(namespace)
    check_object_name(deployment, "Deployment")
    checksum = key_id_checksum(key_id)
    patch = {"spec": {"template": {"metadata": {"annotations": {CHECKSUM_ANNOTATION: checksum}}}}}
    done = kubectl(["patch", "deployment", deployment, "-n", namespace, "--type=merge",
                    "-p", json.dumps(patch, separators=(",", ":"))], check=False)
    if done.returncode != 0:
        line = first_line(done.stderr)
        if "(NotFound)" in line:
            raise NotFound(f"no Deployment {deployment} in namespace {namespace}",
                           "deploy it with 'provision deploy kubernetes WORKER --apply', or check the namespace")
        raise kubectl_failure(f"kubectl patch deployment {deployment}", done.stderr)
    return Rollout(namespace, deployment, checksum, changed="(no change)" not in done.stdout)


def wait_for_rollout(namespace: str, deployment: str, timeout: float) -> None:
    """Block until the Deployment's rollout completes, or ``VerificationFailed`` after ``timeout`` seconds."""
    seconds = max(1, int(timeout + 0.999))
    done = kubectl(["rollout", "status", f"deployment/{deployment}", "-n", namespace, f"--timeout={seconds}s"],
                   timeout=seconds + 30, check=False)
    if done.returncode != 0:
        line = first_line(done.stderr) or first_line(done.stdout) or "no output"
        raise VerificationFailed(
            f"Deployment {namespace}/{deployment} did not finish rolling out within {seconds}s: {line}",
            f"look at 'kubectl -n {namespace} rollout status deployment/{deployment}' and "
            f"'kubectl -n {namespace} get pods'; the old key stays active until the rollout finishes")


def rollout_after_rotation(namespace: str, deployment_name: str, key_id: str, timeout: float) -> Rollout:
    """Roll ``deployment_name`` onto key ``key_id`` and wait for it, at most ``timeout`` seconds.

    Call it after the new key is written to the Secret and before the old key is deactivated:
    pods read the Secret only when they start. Raises ``NotFound`` for a missing Deployment,
    ``VerificationFailed`` when the rollout does not complete in time, ``StoreError`` when kubectl fails.
    """
    rollout = set_key_checksum(namespace, deployment_name, key_id)
    wait_for_rollout(namespace, deployment_name, timeout)
    return rollout


def roll_deployments(namespace: str, deployments: Sequence[str], key_id: str, timeout: float) -> list[Rollout]:
    """``rollout_after_rotation`` for several Deployments: patch all first, then wait within one deadline.

    Each ``Rollout`` lists the pods it replaced that have terminated by then (waiting for them at
    most ``POD_EXIT_WAIT`` seconds, within the deadline); a pod still terminating is left out.
    """
    before = {name: _pods_if_allowed(namespace, name) for name in deployments}
    rollouts = [set_key_checksum(namespace, name, key_id) for name in deployments]
    deadline = time.monotonic() + timeout
    for rollout in rollouts:
        wait_for_rollout(namespace, rollout.deployment, max(1.0, deadline - time.monotonic()))
    exit_deadline = min(deadline, time.monotonic() + POD_EXIT_WAIT)
    # An unchanged pod template (a resumed rotation) replaced nothing: its pods stay, nothing to wait for.
    return [replace(r, replaced_pods=tuple(_gone(namespace, r.deployment, before[r.deployment], exit_deadline)))
            if r.changed else r for r in rollouts]


# After the rollout reports done, old pods may still be terminating (up to their
# terminationGracePeriodSeconds, 30 s by default); an SDK worker killed by SIGTERM is gone in seconds.
POD_EXIT_WAIT = 45.0
POD_POLL = 1.0


def pods_of(namespace: str, deployment: str) -> list[str]:
    """Names of the pods the Deployment's selector matches now (none without ``matchLabels``)."""
    obj = get_object("deployment", namespace, deployment)
    labels = (((obj or {}).get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not isinstance(labels, Mapping) or not labels:
        return []
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    done = kubectl(["get", "pods", "-n", namespace, "-l", selector, "-o", "json"])
    listing = parse_json(done.stdout, "kubectl get pods")
    names = [(item.get("metadata") or {}).get("name") for item in listing.get("items") or [] if isinstance(item, dict)]
    return sorted(n for n in names if isinstance(n, str))


def _pods_if_allowed(namespace: str, deployment: str) -> list[str] | None:
    """``pods_of``, or ``None`` when kubectl cannot tell (no RBAC to list pods): the rollout goes on without."""
    try:
        return pods_of(namespace, deployment)
    except StoreError as err:
        log.warning("cannot list the pods of Deployment %s/%s (%s); the tasks they hold are not handed back",
                    namespace, deployment, err.message)
        return None


def _gone(namespace: str, deployment: str, old: Sequence[str] | None, deadline: float) -> list[str]:
    """Those of ``old`` that no longer exist, waiting until ``deadline`` for the rest to go."""
    if not old:
        return []
    while True:
        now = _pods_if_allowed(namespace, deployment)
        if now is None:
            return []
        left = set(old) & set(now)
        if not left or time.monotonic() >= deadline:
            return [name for name in old if name not in left]
        time.sleep(POD_POLL)


def deployments_using_secret(namespace: str, secret: str) -> list[str]:
    """Names of the Deployments in ``namespace`` whose pods read Secret ``secret`` (env, envFrom or volume)."""
    return _deployments(namespace, lambda item: secret in _secrets_read_by(item))


def deployments_following_secret(namespace: str, secret: str) -> list[str]:
    """Names of the Deployments whose credential agent reads ``secret`` as mounted files (a projected
    volume, as ``deploy kubernetes`` renders it): they take a new key without a rollout, once kubelet
    has refreshed the files."""
    return _deployments(namespace, lambda item: secret in _secrets_projected(item))


def _deployments(namespace: str, chosen: Callable[[Mapping[str, Any]], bool]) -> list[str]:
    done = kubectl(["get", "deployments", "-n", namespace, "-o", "json"])
    listing = parse_json(done.stdout, "kubectl get deployments")
    names: list[str] = []
    for item in listing.get("items") or []:
        if isinstance(item, dict) and chosen(item):
            name = (item.get("metadata") or {}).get("name")
            if isinstance(name, str):
                names.append(name)
    return sorted(names)


def _secrets_projected(deployment: Mapping[str, Any]) -> set[str]:
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    return {name for volume in pod.get("volumes") or []
            for source in ((volume.get("projected") or {}).get("sources") or [])
            if isinstance(name := (source.get("secret") or {}).get("name"), str)}


def _secrets_read_by(deployment: Mapping[str, Any]) -> set[str]:
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    found: set[str] = set()
    for container in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
        for env in container.get("env") or []:
            ref = ((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
            if isinstance(ref, str):
                found.add(ref)
        for source in container.get("envFrom") or []:
            ref = (source.get("secretRef") or {}).get("name")
            if isinstance(ref, str):
                found.add(ref)
    for volume in pod.get("volumes") or []:
        ref = (volume.get("secret") or {}).get("secretName")
        if isinstance(ref, str):
            found.add(ref)
    return found
