"""Kubernetes through ``kubectl``: the runner, manifest rendering from templates, and rollouts.

Why ``kubectl`` and not a client library: it is what cluster users already have configured
(context, exec credential plugins, proxies), and it adds no dependency. Secrets reach it only on
stdin (``kubectl apply -f -``), never in argv, where any user of the machine could read them
from ``/proc``; the provisioning credentials of this process are removed from its environment.

Manifests are applied with server-side apply (``--server-side``): client-side apply would copy the
whole manifest, secret included, into the ``kubectl.kubernetes.io/last-applied-configuration``
annotation, and server-side apply also leaves keys of a Secret or ConfigMap that others own alone.

Templates (``kube/templates/*.yaml``) are YAML with ``${name}`` placeholders. Every value is
quoted by ``yaml_scalar`` (a YAML double-quoted string, or a number), so no value can change the
document's structure. A placeholder alone on its line takes a mapping or a list and becomes a
block at that indentation; an empty one removes the line.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from orkes_provision.errors import NotFound, StoreError, UsageError, VerificationFailed

log = logging.getLogger(__name__)

KUBECTL = "kubectl"
FIELD_MANAGER = "orkes-provision"
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

# kubectl needs none of these, and an exec credential plugin it starts would inherit them.
_HIDDEN_FROM_KUBECTL = ("CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET", "CONDUCTOR_AUTH_TOKEN",
                        "CONDUCTOR_SERVER_AUTH_KEY", "CONDUCTOR_SERVER_AUTH_SECRET")
DEFAULT_TIMEOUT = 60.0
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

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


# --- YAML -------------------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
# Words a YAML 1.1 parser (go-yaml in kubectl, PyYAML) reads as booleans or null when unquoted.
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def _printable(ch: str) -> bool:
    # YAML's printable set, minus the characters that a YAML 1.1 parser takes as line breaks.
    code = ord(ch)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return False
    return not (code in (0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF) or 0xD800 <= code <= 0xDFFF)


def yaml_scalar(value: object) -> str:
    """``value`` as a YAML scalar that every parser reads back exactly: strings are always quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    if not isinstance(value, str):
        raise TypeError(f"cannot render {type(value).__name__} as a YAML scalar")
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif _printable(ch):
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _yaml_key(key: str) -> str:
    return key if _PLAIN_KEY.match(key) and key.lower() not in _YAML_WORDS else yaml_scalar(key)


def yaml_flow(value: object) -> str:
    """``value`` on one line: a scalar, or a JSON-like flow collection (which YAML reads too)."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{yaml_scalar(str(k))}: {yaml_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(yaml_flow(v) for v in value) + "]"
    return yaml_scalar(value)


def yaml_block(value: object, indent: int = 0) -> list[str]:
    """``value`` (a mapping or a list) as block YAML lines indented by ``indent`` spaces."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping | list | tuple) and item:
                lines.append(f"{pad}{_yaml_key(str(key))}:")
                lines.extend(yaml_block(item, indent + 2))
            else:
                lines.append(f"{pad}{_yaml_key(str(key))}: {yaml_flow(item)}")
        return lines
    if isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, Mapping | list | tuple) and item:
                inner = yaml_block(item, indent + 2)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines.extend(inner[1:])
            else:
                lines.append(f"{pad}- {yaml_flow(item)}")
        return lines
    raise TypeError(f"cannot render {type(value).__name__} as a YAML block")


_PLACEHOLDER = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")
_BLOCK_LINE = re.compile(r"^(?P<indent>[ ]*)\$\{(?P<name>[a-z_][a-z0-9_]*)\}[ ]*$")


def render_template_text(text: str, values: Mapping[str, object]) -> str:
    """Fill the ``${name}`` placeholders of ``text`` (see the module docstring).

    A placeholder without a value, or a value no placeholder uses, is a bug: ``KeyError``.
    """
    used: set[str] = set()
    out: list[str] = []
    for line in text.splitlines():
        block = _BLOCK_LINE.match(line)
        if block is not None:
            name = block.group("name")
            used.add(name)
            value = values[name]
            if not isinstance(value, Mapping | list | tuple):
                raise TypeError(f"placeholder {name} on its own line needs a mapping or a list")
            out.extend(yaml_block(value, len(block.group("indent"))))
            continue

        def substitute(match: re.Match[str]) -> str:
            used.add(match.group(1))
            return yaml_flow(values[match.group(1)])

        out.append(_PLACEHOLDER.sub(substitute, line))
    unused = set(values) - used
    if unused:
        raise KeyError(f"template values not used: {', '.join(sorted(unused))}")
    return "\n".join(out) + "\n"


def render_template(name: str, values: Mapping[str, object], templates_dir: Path | None = None) -> str:
    """Render ``kube/templates/<name>`` with ``values``."""
    path = (templates_dir or TEMPLATES_DIR) / name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise StoreError(f"cannot read the Kubernetes template {path}: {err.strerror or err}",
                         "reinstall orkes-provision; the templates ship with it") from None
    return render_template_text(text, values)


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


def secret_manifest(namespace: str, name: str, *, server: str, app: str, key_id: str,
                    secret: SecretStr) -> Manifest:
    """The Secret holding ``CONDUCTOR_AUTH_KEY`` and ``CONDUCTOR_AUTH_SECRET`` (base64 ``data``).

    ``data``, not ``stringData``: server-side apply tracks ``data`` per key, and reading back
    gives the same field that was written.
    """
    values = {
        "name": name, "namespace": namespace, "labels": managed_labels(app),
        "annotations": {APP_ANNOTATION: app, SERVER_ANNOTATION: server, KEY_ID_ANNOTATION: key_id},
        "key_id_b64": _b64(key_id), "secret_b64": _b64(secret.get_secret_value()),
    }
    return Manifest("Secret", name, namespace, render_template("secret.yaml", values), holds_secret=True)


def configmap_manifest(namespace: str, name: str, *, server: str, app: str) -> Manifest:
    """The ConfigMap holding ``CONDUCTOR_SERVER_URL`` (not a secret, so that it can be read and diffed)."""
    values = {
        "name": name, "namespace": namespace, "labels": managed_labels(app),
        "annotations": {APP_ANNOTATION: app}, "server": server,
    }
    return Manifest("ConfigMap", name, namespace, render_template("configmap.yaml", values))


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

    def selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.name, "app.kubernetes.io/component": "conductor-worker"}

    def render(self) -> Manifest:
        check_namespace(self.namespace)
        check_object_name(self.name, "Deployment")
        check_object_name(self.credentials, "Secret")
        check_quantity(self.cpu, "--cpu")
        check_quantity(self.memory, "--memory")
        if not self.image.strip() or any(ch.isspace() for ch in self.image):
            raise UsageError(f"not a container image reference: {self.image[:80]!r}",
                             "give --image REGISTRY/NAME:TAG, e.g. --image ghcr.io/acme/greetings-worker:1.0")
        bad = sorted(n for n in self.env if not _ENV_NAME.match(n))
        if bad:
            raise UsageError(f"worker {self.worker}: {bad[0]!r} is not a valid environment variable name",
                             "rename it in the project file's env table")
        if self.replicas < 0:
            raise UsageError("--replicas must be 0 or more")
        labels = {**self.selector(), **managed_labels(self.app)}
        values = {
            "name": self.name, "namespace": self.namespace, "labels": labels, "pod_labels": labels,
            "annotations": {APP_ANNOTATION: self.app, WORKER_ANNOTATION: self.worker,
                            CREDENTIALS_ANNOTATION: self.credentials},
            "selector": self.selector(), "replicas": self.replicas, "key_id_checksum": key_id_checksum(self.key_id),
            "container": dns_label(self.worker) or "worker", "image": self.image, "command": list(self.command),
            "config_map": self.credentials, "secret": self.credentials,
            "extra_env": [{"name": k, "value": v} for k, v in self.env.items()],
            "cpu": self.cpu, "memory": self.memory,
        }
        return Manifest("Deployment", self.name, self.namespace, render_template("deployment.yaml", values))


def manifest_stream(manifests: Iterable[Manifest]) -> str:
    """Several manifests as one multi-document YAML stream."""
    return "---\n".join(m.text for m in manifests)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode("utf-8")).decode("ascii")


# --- the kubectl runner -----------------------------------------------------------------------


def kubectl_path() -> str:
    """The ``kubectl`` on PATH, or ``StoreError`` saying how to get one."""
    found = shutil.which(KUBECTL)
    if found is None:
        raise StoreError("kubectl is not installed or not on PATH",
                         "install kubectl (https://kubernetes.io/docs/tasks/tools/) and point it at your cluster")
    return found


def kubectl(args: Sequence[str], *, stdin: str | None = None, timeout: float = DEFAULT_TIMEOUT,
            redact: Sequence[SecretStr] = (), check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``kubectl ARGS`` with ``stdin`` and return the finished process.

    ``args`` must never hold a secret; secrets go in ``stdin``. With ``check`` a non-zero exit is a
    ``StoreError`` carrying the first line of kubectl's error output, with every secret of
    ``redact`` masked, plain and base64 (kubectl may quote what it was given).
    """
    argv = [kubectl_path(), *args]
    env = {k: v for k, v in os.environ.items() if k not in _HIDDEN_FROM_KUBECTL}
    shown = _shown_command(args)
    log.debug("running %s", shown)
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        raise StoreError(f"{shown} did not answer within {timeout:.0f}s",
                         "check that the cluster is reachable: kubectl cluster-info") from None
    except OSError as err:
        raise StoreError(f"cannot run kubectl: {err.strerror or err}", "check the kubectl installation") from None
    if check and done.returncode != 0:
        raise kubectl_failure(shown, done.stderr, redact)
    return done


def kubectl_failure(shown: str, stderr: str, redact: Sequence[SecretStr] = ()) -> StoreError:
    """The error for a failed kubectl call: its first error line (masked), with a hint for the usual causes."""
    line = first_line(stderr, redact) or "no error output"
    if "(NotFound)" in line and "namespaces" in line:
        hint = "create the namespace first: kubectl create namespace NAME"
    elif "(Forbidden)" in line:
        hint = "the current kubectl context lacks the permission; ask a cluster admin for it (RBAC)"
    elif "connection" in line.lower() or "unable to connect" in line.lower() or "dial tcp" in line:
        hint = "check that the cluster is up and kubectl's context is right: kubectl config current-context"
    else:
        hint = "run the same kubectl command yourself to see the full error"
    return StoreError(f"{shown} failed: {line}", hint)


def first_line(text: str, redact: Sequence[SecretStr] = ()) -> str:
    """The first non-blank line of ``text``, each secret of ``redact`` (and its base64) masked."""
    masks = [form for secret in redact for form in _forms(secret.get_secret_value()) if form]
    for line in text.splitlines():
        line = line.strip()
        if line:
            for mask in masks:
                line = line.replace(mask, "********")
            return line[:300]
    return ""


def _forms(value: str) -> tuple[str, str]:
    return value, _b64(value)


def _shown_command(args: Sequence[str]) -> str:
    return " ".join(["kubectl", *args])[:200]


def get_object(kind: str, namespace: str, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any] | None:
    """``kubectl get KIND NAME -n NS -o json``; ``None`` when it does not exist."""
    done = kubectl(["get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found"], timeout=timeout)
    if not done.stdout.strip():
        return None
    return _parse_json(done.stdout, f"kubectl get {kind} {name}")


def apply_manifests(manifests: Sequence[Manifest], *, timeout: float = DEFAULT_TIMEOUT,
                    redact: Sequence[SecretStr] = ()) -> list[str]:
    """Server-side apply ``manifests`` through stdin; returns kubectl's report lines.

    ``--force-conflicts``: the user named these objects for this tool to write, so fields that an
    earlier ``kubectl create`` or ``apply`` owned are taken over rather than refused.
    """
    if not manifests:
        return []
    done = kubectl(["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts", "-f", "-"],
                   stdin=manifest_stream(manifests), timeout=timeout, redact=redact)
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def _parse_json(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise StoreError(f"{what} did not print JSON", "check the kubectl version (1.24 or later)") from None
    if not isinstance(data, dict):
        raise StoreError(f"{what} printed unexpected JSON", "check the kubectl version (1.24 or later)")
    return data


# --- rollouts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollout:
    """A Deployment moved to a key: ``changed`` when its pods were replaced for it."""

    namespace: str
    deployment: str
    checksum: str
    changed: bool

    def to_dict(self) -> dict[str, object]:
        return {"namespace": self.namespace, "deployment": self.deployment, "keyIdChecksum": self.checksum,
                "changed": self.changed}


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
    """``rollout_after_rotation`` for several Deployments: patch all first, then wait within one deadline."""
    rollouts = [set_key_checksum(namespace, name, key_id) for name in deployments]
    deadline = time.monotonic() + timeout
    for rollout in rollouts:
        wait_for_rollout(namespace, rollout.deployment, max(1.0, deadline - time.monotonic()))
    return rollouts


def deployments_using_secret(namespace: str, secret: str) -> list[str]:
    """Names of the Deployments in ``namespace`` whose pods read Secret ``secret`` (env, envFrom or volume)."""
    done = kubectl(["get", "deployments", "-n", namespace, "-o", "json"])
    listing = _parse_json(done.stdout, "kubectl get deployments")
    names: list[str] = []
    for item in listing.get("items") or []:
        if isinstance(item, dict) and secret in _secrets_read_by(item):
            name = (item.get("metadata") or {}).get("name")
            if isinstance(name, str):
                names.append(name)
    return sorted(names)


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
