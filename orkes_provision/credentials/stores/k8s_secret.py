"""The Kubernetes store, ``k8s-secret:NAMESPACE/NAME``: the key in a Secret, the server URL in a ConfigMap.

Secret ``NAME`` holds ``CONDUCTOR_AUTH_KEY`` and ``CONDUCTOR_AUTH_SECRET``; the ConfigMap of the
same ``NAME`` holds ``CONDUCTOR_SERVER_URL``, so that one name is all a Deployment refers to (a
Secret and a ConfigMap may share a name). Both carry the label
``app.kubernetes.io/managed-by=orkes-provision`` and annotations naming the application and
server; the Secret also names the key id (not a secret) so ``kubectl describe`` shows which key it holds.

Everything goes through ``kubectl`` (see ``orkes_provision.kube``): writes pipe a manifest to
``kubectl apply --server-side -f -``, reads use ``kubectl get -o json``. The secret is never in
argv, in a file, or in an error message.

Pods read a Secret through env only when they start, so after ``save`` of a new key the
Deployments using it must be restarted: ``after_rotation`` (rotation calls it before it
deactivates the old key) patches their key-id checksum annotation and waits for the rollouts,
at most ``ORKES_PROVISION_ROLLOUT_TIMEOUT`` seconds (default 300).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import time
from typing import Any

from pydantic import SecretStr

from orkes_provision.credentials.stores.base import StoredKey, canonical_server
from orkes_provision.errors import StoreError, UsageError
from orkes_provision.kube import kubectl, manifests, rollout

log = logging.getLogger(__name__)

PREFIX = "k8s-secret:"
DEFAULT_ROLLOUT_TIMEOUT = 300.0
ROLLOUT_TIMEOUT_VARIABLE = "ORKES_PROVISION_ROLLOUT_TIMEOUT"


def parse_spec(arg: str) -> tuple[str, str]:
    """``NAMESPACE/NAME`` (the part after ``k8s-secret:``) split and checked; ``UsageError`` otherwise."""
    namespace, sep, name = arg.strip().partition("/")
    if not sep or not namespace or not name:
        raise UsageError("--store k8s-secret needs a namespace and a Secret name",
                         "write it as --store k8s-secret:NAMESPACE/NAME, e.g. k8s-secret:workers/conductor-credentials")
    return manifests.check_namespace(namespace), manifests.check_object_name(name, "Secret")


# kubelet's default sync period (60 s) plus its jitter and the Secret cache's propagation.
AGENT_REFRESH_WAIT = 90.0


class K8sSecretStore:
    """One application's key in Secret ``namespace/name`` (and its server URL in the ConfigMap ``name``)."""

    def __init__(self, namespace: str, name: str, *, rollout_timeout: float | None = None) -> None:
        self.namespace = manifests.check_namespace(namespace)
        self.name = manifests.check_object_name(name, "Secret")
        self.spec = f"{PREFIX}{self.namespace}/{self.name}"
        self.rollout_timeout = rollout_timeout if rollout_timeout is not None else _rollout_timeout_from_env()
        # Names of the pods the last after_rotation replaced: the worker ids (host names) under which
        # those pods' SDK workers held tasks, for rotation to hand back to the queue.
        self.replaced_workers: list[str] = []
        # Deployments whose agent sidecar follows the Secret, and how long the last rotation gave them.
        self.followers: list[str] = []
        self.agent_refresh_wait = AGENT_REFRESH_WAIT

    @classmethod
    def from_spec(cls, spec: str) -> K8sSecretStore:
        if not spec.startswith(PREFIX):
            raise UsageError(f"not a k8s-secret store: {spec[:80]!r}", "write it as k8s-secret:NAMESPACE/NAME")
        return cls(*parse_spec(spec[len(PREFIX):]))

    def check_usable(self) -> None:
        """Fail before a key is created when kubectl is missing (cluster access shows on the first read)."""
        kubectl.kubectl_path()

    def read(self) -> StoredKey | None:
        """The key the Secret holds, whatever application and server it is for; ``None`` if there is none."""
        secret = kubectl.get_object("secret", self.namespace, self.name)
        if secret is None:
            return None
        data = secret.get("data") or {}
        key_id = self._decode(data, manifests.AUTH_KEY)
        value = self._decode(data, manifests.AUTH_SECRET)
        if not key_id or not value:
            return None
        annotations = _annotations(secret)
        server = annotations.get(manifests.SERVER_ANNOTATION) or self._configmap_server()
        if not server:
            return None
        try:
            server = canonical_server(server)
        except UsageError:
            return None
        return StoredKey(server=server, app=annotations.get(manifests.APP_ANNOTATION, ""), key_id=key_id,
                         secret=SecretStr(value))

    def load(self, server: str, app: str) -> StoredKey | None:
        key = self.read()
        if key is None or (key.app and key.app != app) or key.server != canonical_server(server):
            return None
        return StoredKey(server=key.server, app=app, key_id=key.key_id, secret=key.secret)

    def save(self, key: StoredKey) -> None:
        self.check_usable()
        current = kubectl.get_object("secret", self.namespace, self.name)
        owner = _annotations(current).get(manifests.APP_ANNOTATION) if current else None
        if owner and owner != key.app:
            raise StoreError(f"Secret {self.namespace}/{self.name} holds the key of application {owner!r}",
                             "give each application its own Secret: --store k8s-secret:NAMESPACE/OTHER-NAME")
        server = canonical_server(key.server)
        objects = [
            manifests.secret_manifest(self.namespace, self.name, server=server, app=key.app, key_id=key.key_id,
                                      secret=key.secret),
            manifests.configmap_manifest(self.namespace, self.name, server=server, app=key.app),
        ]
        kubectl.apply_manifests(objects, redact=[key.secret])

    def delete(self, server: str, app: str) -> None:
        """Remove the key: the objects if this tool made them, else only the entries it wrote."""
        if self.load(server, app) is None:
            return
        secret = kubectl.get_object("secret", self.namespace, self.name)
        configmap = kubectl.get_object("configmap", self.namespace, self.name)
        for kind, obj, entries in (("secret", secret, (manifests.AUTH_KEY, manifests.AUTH_SECRET)),
                                   ("configmap", configmap, (manifests.SERVER_KEY,))):
            if obj is None:
                continue
            if _labels(obj).get(manifests.MANAGED_BY_LABEL) == manifests.MANAGED_BY:
                kubectl.kubectl(["delete", kind, self.name, "-n", self.namespace, "--ignore-not-found"])
                continue
            present = [e for e in entries if e in (obj.get("data") or {})]
            if present:
                ops = [{"op": "remove", "path": f"/data/{e}"} for e in present]
                kubectl.kubectl(["patch", kind, self.name, "-n", self.namespace, "--type=json",
                              "-p", _json(ops)])

    def describe(self, server: str | None = None, app: str | None = None) -> str:
        return f"Kubernetes Secret {self.namespace}/{self.name}"

    # --- rotation -------------------------------------------------------------------------------

    def deployments_to_roll(self) -> list[str]:
        """The Deployments in the namespace whose pods read this Secret: they must restart for a new key."""
        return rollout.deployments_using_secret(self.namespace, self.name)

    def restart_consumers(self, key_id: str, timeout: float | None = None) -> list[rollout.Rollout]:
        """Roll every Deployment that reads this Secret onto ``key_id`` and wait, within ``timeout`` seconds.

        Call after ``save`` of the new key and before deactivating the old one. Idempotent: a
        Deployment already on ``key_id`` is not restarted again. Raises ``VerificationFailed``
        when a rollout does not complete in time (the old key must then stay active).
        """
        wait = self.rollout_timeout if timeout is None else timeout
        return rollout.roll_deployments(self.namespace, self.deployments_to_roll(), key_id, wait)

    def after_rotation(self, key: StoredKey) -> None:
        """The rotation hook (``rotation._Rotation._switch``): restart the pods onto the new key and wait.

        Pods whose credential agent reads the Secret as mounted files are not restarted: kubelet
        rewrites those files within its sync period (about a minute) and the agents switch by
        themselves. Nothing outside the pod can ask an agent which key it uses, so the old key
        stays ACTIVE for ``agent_refresh_wait`` seconds more (``followers`` names those Deployments).
        """
        self.replaced_workers = []
        for done in self.restart_consumers(key.key_id):
            self.replaced_workers.extend(done.replaced_pods)
            log.info("Deployment %s/%s %s key %s", done.namespace, done.deployment,
                     "rolled out onto" if done.changed else "already runs", key.key_id)
        self.followers = rollout.deployments_following_secret(self.namespace, self.name)
        if self.followers and self.agent_refresh_wait > 0:
            log.info("waiting %.0f s for the agents of %s to read key %s from the mounted Secret",
                     self.agent_refresh_wait, ", ".join(self.followers), key.key_id)
            time.sleep(self.agent_refresh_wait)

    def _configmap_server(self) -> str | None:
        configmap = kubectl.get_object("configmap", self.namespace, self.name)
        value = ((configmap or {}).get("data") or {}).get(manifests.SERVER_KEY)
        return value if isinstance(value, str) and value.strip() else None

    def _decode(self, data: dict[str, Any], entry: str) -> str | None:
        raw = data.get(entry)
        if not isinstance(raw, str):
            return None
        try:
            return base64.b64decode(raw, validate=True).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError):
            raise StoreError(f"Secret {self.namespace}/{self.name}: {entry} is not valid base64 UTF-8 text",
                             f"rewrite it: provision keys create APP --store {self.spec}") from None


def _rollout_timeout_from_env() -> float:
    raw = os.environ.get(ROLLOUT_TIMEOUT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_ROLLOUT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= 86400:
        raise UsageError(f"{ROLLOUT_TIMEOUT_VARIABLE}={raw[:20]!r} is not a number of seconds",
                         "set it to the seconds a rollout may take, e.g. 300, or unset it")
    return value


def _annotations(obj: dict[str, Any] | None) -> dict[str, str]:
    value = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    return {k: v for k, v in value.items() if isinstance(v, str)} if isinstance(value, dict) else {}


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    value = (obj.get("metadata") or {}).get("labels") or {}
    return {k: v for k, v in value.items() if isinstance(v, str)} if isinstance(value, dict) else {}


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))
