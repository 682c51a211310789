"""Kubernetes manifests: names checked, objects built as data, written with PyYAML's safe dumper.

Each object is a plain dict dumped by ``to_yaml``: no value can change the document's structure,
and every string value is double-quoted so that kubectl's YAML parser reads back the same string.

The worker's pod passes Pod Security "restricted": non-root with a fixed non-zero user, no
privilege escalation, every capability dropped, the runtime's seccomp profile, and a read-only
root filesystem with a writable ``/tmp`` (an ``emptyDir``).

With the credential agent (``agent_image``), the pod runs ``provision agent`` as a native sidecar
(an init container with ``restartPolicy: Always``, Kubernetes 1.29+): it alone mounts the Secret
and the ConfigMap (one projected volume, read through ``--store mounted-secret:DIR``), and kubelet
refreshes those files when the Secret changes, so a rotation reaches running pods without a
rollout; the pod template then carries no key-id checksum. The worker container gets only the
agent's loopback URL and a local key (``local_agent_key``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import SecretStr

from orkes_provision.errors import UsageError

log = logging.getLogger(__name__)

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "orkes-provision"
APP_ANNOTATION = "orkes-provision/app"
SERVER_ANNOTATION = "orkes-provision/server"
KEY_ID_ANNOTATION = "orkes-provision/key-id"
WORKER_ANNOTATION = "orkes-provision/worker"
CREDENTIALS_ANNOTATION = "orkes-provision/credentials"
CHECKSUM_ANNOTATION = "orkes-provision/key-id-checksum"

SERVER_KEY = "CONDUCTOR_SERVER_URL"
AUTH_KEY = "CONDUCTOR_AUTH_KEY"
AUTH_SECRET = "CONDUCTOR_AUTH_SECRET"

# The user the worker runs as when the image does not matter (distroless images call it "nonroot"):
# "restricted" needs a non-root user the kubelet can check, and a name in the image it cannot.
DEFAULT_RUN_AS_USER = 65532

AGENT_PORT = 8765
AGENT_CONTAINER = "orkes-agent"
KEY_MOUNT = "/var/run/orkes-provision/key"
LOCAL_KEY_VAR = "ORKES_AGENT_LOCAL_KEY"
LOCAL_SECRET_VAR = "ORKES_AGENT_LOCAL_SECRET"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


# --- names ------------------------------------------------------------------------------------


def check_namespace(namespace: str) -> str:
    """``namespace`` if it is a valid Kubernetes namespace name (RFC 1123 label), else ``UsageError``."""
    if not _DNS_LABEL.match(namespace):
        raise UsageError(f"not a Kubernetes namespace name: {namespace[:80]!r}",
                         "use lower-case letters, digits and '-', at most 63 characters, e.g. 'workers'")
    return namespace


def check_object_name(name: str, what: str = "object") -> str:
    """``name`` if it can name a Secret, ConfigMap or Deployment (RFC 1123 subdomain), else ``UsageError``."""
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise UsageError(f"not a valid Kubernetes {what} name: {name[:80]!r}",
                         "use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit")
    return name


def dns_label(value: str) -> str:
    """``value`` turned into an RFC 1123 label (lower case, ``-`` for anything else, at most 63 chars)."""
    label = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")[:63].strip("-")
    return label


def label_value(value: str) -> str | None:
    """``value`` as a label value (63 chars of ``[A-Za-z0-9-_.]``, alphanumeric at both ends), or None."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", value)[:63]
    cleaned = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)
    return cleaned or None


def check_quantity(value: str, what: str) -> str:
    if not _QUANTITY.match(value):
        raise UsageError(f"not a Kubernetes quantity for {what}: {value[:40]!r}",
                         "write it like 100m or 0.5 for CPU, 256Mi or 1Gi for memory")
    return value


def key_id_checksum(key_id: str) -> str:
    """The pod-template annotation value for ``key_id``: its SHA-256, so that a new key rolls the pods.

    Only the key id is hashed, never the secret: the annotation is readable by anyone who can
    read the Deployment.
    """
    return hashlib.sha256(key_id.encode("utf-8")).hexdigest()


def local_agent_key(namespace: str, deployment: str, app: str) -> tuple[str, str]:
    """The local key id and secret the worker container presents to its agent sidecar.

    Derived from the names, so that rendering twice gives the same pod template (no rollout on a
    re-apply) and a rotation leaves it alone. It guards nothing the pod boundary does not: the agent
    answers on the pod's own loopback only, which no one outside the pod reaches, and the server
    and every other agent refuse it. It is never derived from the application's key.
    """
    digest = hashlib.sha256(f"orkes-provision agent\0{namespace}\0{deployment}\0{app}".encode()).hexdigest()
    return f"local-{digest[:16]}", digest[16:]


# --- YAML -------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` with every string value double-quoted.

    PyYAML leaves a string plain when its own YAML 1.1 resolver reads it back as a string, but
    kubectl's go-yaml resolves more forms as numbers (``1e3``, ``0o17``, ``0X1F``): plain, an
    environment value ``1e3`` would reach the API server as the number 1000 and be refused. Quoted,
    every parser reads the same string. Keys keep PyYAML's choice: they are this module's own names.
    """

    def represent_str(self, data: str) -> yaml.ScalarNode:
        return self.represent_scalar("tag:yaml.org,2002:str", data, style='"')

    def ignore_aliases(self, data: Any) -> bool:
        # A dict used twice (the labels) is written out twice, not as an anchor and an alias.
        return True

    def represent_mapping(self, tag: str, mapping: Any, flow_style: bool | None = None) -> yaml.MappingNode:
        node = super().represent_mapping(tag, mapping, flow_style)
        for key, _value in node.value:
            if isinstance(key, yaml.ScalarNode):
                key.style = None
        return node


_Dumper.add_representer(str, _Dumper.represent_str)


def to_yaml(document: Mapping[str, Any], comment: str = "") -> str:
    """``document`` as block YAML (keys in the order given), after ``comment`` as ``#`` lines."""
    text = yaml.dump(dict(document), Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=False, width=1 << 16)
    header = "".join(f"# {line}\n".replace("# \n", "#\n") for line in comment.splitlines())
    return header + text


# --- manifests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """One rendered object. ``text`` may hold a secret (``holds_secret``): it is never in the repr."""

    kind: str
    name: str
    namespace: str
    text: str = field(repr=False)
    holds_secret: bool = False

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.kind.lower()}.yaml"

    @property
    def ref(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


def managed_labels(app: str) -> dict[str, str]:
    labels = {MANAGED_BY_LABEL: MANAGED_BY}
    part_of = label_value(app)
    if part_of is not None:
        labels["app.kubernetes.io/part-of"] = part_of
    return labels


def _metadata(name: str, namespace: str, labels: Mapping[str, str], annotations: Mapping[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(labels), "annotations": dict(annotations)}


def secret_manifest(namespace: str, name: str, *, server: str, app: str, key_id: str,
                    secret: SecretStr) -> Manifest:
    """The Secret holding ``CONDUCTOR_AUTH_KEY`` and ``CONDUCTOR_AUTH_SECRET`` (base64 ``data``).

    ``data``, not ``stringData``: server-side apply tracks ``data`` per key, and reading back
    gives the same field that was written.
    """
    document = {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": _metadata(name, namespace, managed_labels(app),
                              {APP_ANNOTATION: app, SERVER_ANNOTATION: server, KEY_ID_ANNOTATION: key_id}),
        "type": "Opaque",
        "data": {AUTH_KEY: _b64(key_id), AUTH_SECRET: _b64(secret.get_secret_value())},
    }
    comment = ("The key of a Conductor application, written by orkes-provision.\n"
               "It holds the secret: keep any copy of this file private (mode 0600) and out of version control.")
    return Manifest("Secret", name, namespace, to_yaml(document, comment), holds_secret=True)


def configmap_manifest(namespace: str, name: str, *, server: str, app: str) -> Manifest:
    """The ConfigMap holding ``CONDUCTOR_SERVER_URL`` (not a secret, so that it can be read and diffed)."""
    document = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": _metadata(name, namespace, managed_labels(app), {APP_ANNOTATION: app}),
        "data": {SERVER_KEY: server},
    }
    comment = "The Conductor server URL for the workers, written by orkes-provision beside the Secret of this name."
    return Manifest("ConfigMap", name, namespace, to_yaml(document, comment))


@dataclass(frozen=True)
class WorkerDeployment:
    """What a worker's Deployment is made of; ``render`` turns it into a manifest."""

    name: str
    namespace: str
    app: str
    worker: str
    image: str
    command: Sequence[str]
    credentials: str  # the Secret and the ConfigMap (same name)
    key_id: str
    replicas: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    cpu: str = "100m"
    memory: str = "256Mi"
    run_as_user: int = DEFAULT_RUN_AS_USER
    agent_image: str | None = None  # the credential agent as a sidecar, from this image; None: key in env

    def selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.name, "app.kubernetes.io/component": "conductor-worker"}

    def check(self) -> None:
        """``UsageError`` for a field no cluster would accept (before anything is rendered)."""
        check_namespace(self.namespace)
        check_object_name(self.name, "Deployment")
        check_object_name(self.credentials, "Secret")
        check_quantity(self.cpu, "--cpu")
        check_quantity(self.memory, "--memory")
        for image, flag in ((self.image, "--image"), (self.agent_image, "--agent-image")):
            if image is not None and (not image.strip() or any(ch.isspace() for ch in image)):
                raise UsageError(f"not a container image reference: {image[:80]!r}",
                                 f"give {flag} REGISTRY/NAME:TAG, e.g. {flag} ghcr.io/acme/greetings-worker:1.0")
        bad = sorted(n for n in self.env if not _ENV_NAME.match(n))
        if bad:
            raise UsageError(f"worker {self.worker}: {bad[0]!r} is not a valid environment variable name",
                             "rename it in the project file's env table")
        if self.replicas < 0:
            raise UsageError("--replicas must be 0 or more")
        if not 0 < self.run_as_user <= 2**31 - 1:
            raise UsageError(f"--run-as-user {self.run_as_user} is not a non-root user id",
                             "give a user id from 1 to 2147483647 that can read the image's files")

    def document(self) -> dict[str, Any]:
        """The Deployment as data (``check`` first)."""
        self.check()
        labels = {**self.selector(), **managed_labels(self.app)}
        local_id, local_secret = local_agent_key(self.namespace, self.name, self.app)
        credentials: list[dict[str, Any]] = [
            {"name": SERVER_KEY, "value": f"http://127.0.0.1:{AGENT_PORT}/api"},
            {"name": AUTH_KEY, "value": local_id},
            {"name": AUTH_SECRET, "value": local_secret},
        ] if self.agent_image is not None else [
            {"name": SERVER_KEY, "valueFrom": {"configMapKeyRef": {"name": self.credentials, "key": SERVER_KEY}}},
            {"name": AUTH_KEY, "valueFrom": {"secretKeyRef": {"name": self.credentials, "key": AUTH_KEY}}},
            {"name": AUTH_SECRET, "valueFrom": {"secretKeyRef": {"name": self.credentials, "key": AUTH_SECRET}}},
        ]
        env = [*credentials, *({"name": k, "value": v} for k, v in self.env.items())]
        container = {
            "name": dns_label(self.worker) or "worker", "image": self.image, "imagePullPolicy": "IfNotPresent",
            "command": list(self.command), "env": env,
            "resources": {"requests": {"cpu": self.cpu, "memory": self.memory}, "limits": {"memory": self.memory}},
            "securityContext": _RESTRICTED_CONTAINER,
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }
        volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
        pod_annotations = {CHECKSUM_ANNOTATION: key_id_checksum(self.key_id)}
        agent: list[dict[str, Any]] = []
        if self.agent_image is not None:
            agent = [self._agent_container(local_id, local_secret)]
            volumes += [{"name": "agent-tmp", "emptyDir": {}}, self._key_volume()]
            pod_annotations = {}  # the agent follows the mounted Secret: a new key rolls nothing
        return {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _metadata(self.name, self.namespace, labels,
                                  {APP_ANNOTATION: self.app, WORKER_ANNOTATION: self.worker,
                                   CREDENTIALS_ANNOTATION: self.credentials}),
            "spec": {
                "replicas": self.replicas,
                "revisionHistoryLimit": 5,
                "selector": {"matchLabels": self.selector()},
                # One extra pod at a time and none taken away early: old pods keep polling with the
                # old key (still active during a rotation) until their replacements run.
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": labels, "annotations": pod_annotations},
                    "spec": {
                        # A worker talks to Conductor, not to the Kubernetes API.
                        "automountServiceAccountToken": False,
                        "terminationGracePeriodSeconds": 30,
                        "securityContext": {"runAsNonRoot": True, "runAsUser": self.run_as_user,
                                            "runAsGroup": self.run_as_user, "fsGroup": self.run_as_user,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        **({"initContainers": agent} if agent else {}),
                        "containers": [container],
                        # The root filesystem is read-only; SDKs and interpreters still want a /tmp.
                        "volumes": volumes,
                    },
                },
            },
        }

    def _agent_container(self, local_id: str, local_secret: str) -> dict[str, Any]:
        assert self.agent_image is not None
        return {
            "name": AGENT_CONTAINER, "image": self.agent_image, "imagePullPolicy": "IfNotPresent",
            # A native sidecar: started before the worker, restarted whenever it exits, stopped after it.
            "restartPolicy": "Always",
            "command": ["provision", "agent", "--app", self.app, "--store", f"mounted-secret:{KEY_MOUNT}",
                        "--listen", f"127.0.0.1:{AGENT_PORT}"],
            "env": [{"name": LOCAL_KEY_VAR, "value": local_id}, {"name": LOCAL_SECRET_VAR, "value": local_secret},
                    {"name": "HOME", "value": "/tmp"},
                    {"name": "ORKES_PROVISION_STATE_DIR", "value": "/tmp/orkes-provision"}],
            "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "160Mi"}},
            "securityContext": _RESTRICTED_CONTAINER,
            "volumeMounts": [{"name": "agent-tmp", "mountPath": "/tmp"},
                             {"name": "orkes-key", "mountPath": KEY_MOUNT, "readOnly": True}],
        }

    def _key_volume(self) -> dict[str, Any]:
        """The Secret's key and the ConfigMap's server URL as files of one directory, for the agent only."""
        return {"name": "orkes-key", "projected": {"defaultMode": 0o440, "sources": [
            {"secret": {"name": self.credentials, "items": [{"key": AUTH_KEY, "path": AUTH_KEY},
                                                             {"key": AUTH_SECRET, "path": AUTH_SECRET}]}},
            {"configMap": {"name": self.credentials, "items": [{"key": SERVER_KEY, "path": SERVER_KEY}]}},
        ]}}

    def render(self) -> Manifest:
        if self.agent_image is not None:
            comment = ("A Conductor worker with its credential agent, rendered by 'provision deploy kubernetes'.\n"
                       "The agent (a native sidecar, Kubernetes 1.29+) alone reads the key from the Secret, mounted\n"
                       "as files that kubelet refreshes: a key rotation reaches running pods without a restart.\n"
                       "The worker gets the agent's loopback URL and a local key only it accepts.")
            return Manifest("Deployment", self.name, self.namespace, to_yaml(self.document(), comment))
        comment = ("A Conductor worker, rendered by 'provision deploy kubernetes'. It holds no secret: the key id\n"
                   "and secret come from the Secret, the server URL from the ConfigMap, both written by the\n"
                   "credential store. The pod template's key-id checksum changes with the key, so a key\n"
                   "rotation restarts the pods (an SDK worker reads its key only when it starts).")
        return Manifest("Deployment", self.name, self.namespace, to_yaml(self.document(), comment))


_RESTRICTED_CONTAINER: dict[str, Any] = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                         "capabilities": {"drop": ["ALL"]}}


def manifest_stream(manifests: Iterable[Manifest]) -> str:
    """Several manifests as one multi-document YAML stream."""
    return "---\n".join(m.text for m in manifests)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode("utf-8")).decode("ascii")
